//! `aws-dynamodb`: scale on the number of items a DynamoDB `Query` matches.
//!
//! The Query asks for `Select: COUNT` (no items are read back) and follows
//! `LastEvaluatedKey`, summing the counts of every page, as KEDA does.
//!
//! aws-sdk-dynamodb speaks awsJson1.0, which moto understands (checked by the e2e test).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use serde_json::Value;
use swell_scaling::naming::{metric_name, normalize};

use crate::aws::{
    AwsTrigger, Identity, Operation, SdkSettings, parse_identity, parse_sdk_settings,
    require_identity,
};
use crate::{
    Field, Invalid, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput,
};

const TABLE: Field = Field::new("tableName");
const REGION: Field = Field::new("awsRegion")
    .from(&[Source::Metadata, Source::Auth])
    .hint("the table's region, e.g. eu-west-1");
const ENDPOINT: Field = Field::new("awsEndpoint");
const KEY_CONDITION: Field =
    Field::new("keyConditionExpression").hint("e.g. #k = :k, with #k and :k defined below");
const NAMES: Field = Field::new("expressionAttributeNames")
    .hint(r##"a JSON object of placeholders to attribute names, e.g. {"#k": "queue"}"##);
const VALUES: Field = Field::new("expressionAttributeValues")
    .hint(r#"a JSON object of placeholders to typed values, e.g. {":k": {"S": "orders"}}"#);
const INDEX: Field = Field::new("indexName");
const FILTER: Field = Field::new("filterExpression");
const TARGET: Field = Field::new("targetValue").hint("the number of items per replica");
const ACTIVATION: Field = Field::new("activationTargetValue");

/// Every parameter but the identity ones ([`crate::aws::IDENTITY_FIELDS`]), for unknown-key
/// warnings.
pub const FIELDS: &[Field] = &[
    TABLE,
    REGION,
    ENDPOINT,
    KEY_CONDITION,
    NAMES,
    VALUES,
    INDEX,
    FILTER,
    TARGET,
    ACTIVATION,
];

/// The Query a trigger asks.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySpec {
    pub table: String,
    pub index: Option<String>,
    pub key_condition: String,
    pub filter: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// The parsed trigger, before any client exists.
pub struct Config {
    query: QuerySpec,
    region: String,
    endpoint: Option<String>,
    identity: Option<Identity>,
    sdk: SdkSettings,
    target: i64,
    activation: i64,
}

/// `expressionAttributeNames`: placeholder to attribute name.
pub type AttributeNames = HashMap<String, String>;

/// `expressionAttributeNames`: a non-empty JSON object of strings.
pub fn parse_names(json: &str) -> Result<AttributeNames, Invalid> {
    let names: AttributeNames = serde_json::from_str(json).map_err(|e| {
        Invalid(format!(
            "is not a JSON object of strings ({e}); write it as {}",
            r##"{"#k": "queue"}"##
        ))
    })?;
    if names.is_empty() {
        return Err(Invalid(
            "is an empty object; name at least one placeholder".into(),
        ));
    }
    Ok(names)
}

/// `expressionAttributeValues`: a non-empty JSON object of DynamoDB typed values, read as
/// KEDA reads them (`S`, `N` as a string, `BOOL`, `B` as the string's bytes, `L`, `M`,
/// `NULL`).
pub fn parse_values(json: &str) -> Result<HashMap<String, AttributeValue>, Invalid> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(json).map_err(|e| {
        Invalid(format!(
            "is not a JSON object ({e}); write it as {}",
            r#"{":k": {"S": "orders"}}"#
        ))
    })?;
    if map.is_empty() {
        return Err(Invalid(
            "is an empty object; give a value for each :placeholder".into(),
        ));
    }
    map.into_iter()
        .map(|(k, v)| {
            let av = attribute_value(&v, 1)
                .map_err(|e| Invalid(format!("entry {}: {e}", crate::metadata::shown(&k))))?;
            Ok((k, av))
        })
        .collect()
}

/// DynamoDB's own limit on nested attribute values.
pub const MAX_VALUE_DEPTH: usize = 32;

fn attribute_value(v: &Value, depth: usize) -> Result<AttributeValue, Invalid> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Invalid(format!(
            "nests L and M deeper than {MAX_VALUE_DEPTH} levels (DynamoDB's limit)"
        )));
    }
    let typed = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next());
    let Some((ty, val)) = typed else {
        return Err(Invalid(format!(
            "{} is not a typed value with one type key, such as {}",
            crate::metadata::cut(&v.to_string()),
            r#"{"S": "text"} or {"N": "42"}"#
        )));
    };
    let wrong = |want: &str| {
        Invalid(format!(
            "{} needs {want}, not {}",
            crate::metadata::shown(ty),
            crate::metadata::cut(&val.to_string())
        ))
    };
    Ok(match ty.as_str() {
        "S" => AttributeValue::S(val.as_str().ok_or_else(|| wrong("a string"))?.into()),
        "N" => {
            let n = val
                .as_str()
                .ok_or_else(|| wrong("a number written as a string, e.g. \"42\""))?;
            if !n.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(wrong("a number written as a string, e.g. \"42\""));
            }
            AttributeValue::N(n.into())
        }
        "BOOL" => AttributeValue::Bool(val.as_bool().ok_or_else(|| wrong("true or false"))?),
        "B" => AttributeValue::B(Blob::new(
            val.as_str().ok_or_else(|| wrong("a string"))?.as_bytes(),
        )),
        "NULL" => AttributeValue::Null(true),
        "L" => AttributeValue::L(
            val.as_array()
                .ok_or_else(|| wrong("a JSON array of typed values"))?
                .iter()
                .map(|v| attribute_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(
            val.as_object()
                .ok_or_else(|| wrong("a JSON object of typed values"))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), attribute_value(v, depth + 1)?)))
                .collect::<Result<_, Invalid>>()?,
        ),
        other => {
            return Err(Invalid(format!(
                "type {} is not supported; use one of S, N, BOOL, B, L, M, NULL",
                crate::metadata::shown(other)
            )));
        }
    })
}

/// Reads and checks the trigger's parameters without I/O; every problem goes into `p`.
pub fn parse(input: &TriggerInput, p: &mut Params<'_>) -> Config {
    let table = p.string(TABLE);
    let region = p.string(REGION);
    let endpoint = p.opt_url(ENDPOINT, false);
    let key_condition = p.string(KEY_CONDITION);
    let names = Some(p.string(NAMES))
        .filter(|json| !json.is_empty())
        .and_then(|json| parse_names(&json).map_err(|e| p.error(NAMES.name, e)).ok())
        .unwrap_or_default();
    let values = Some(p.string(VALUES))
        .filter(|json| !json.is_empty())
        .and_then(|json| {
            parse_values(&json)
                .map_err(|e| p.error(VALUES.name, e))
                .ok()
        })
        .unwrap_or_default();
    let index = p.opt_string(INDEX);
    let filter = p.opt_string(FILTER);
    let target: i64 = p.required(TARGET, "a whole number of items");
    if target <= 0
        && p.opt_string(TARGET)
            .is_some_and(|t| t.trim().parse::<i64>().is_ok())
    {
        p.error(TARGET.name, "must be greater than 0");
    }
    let activation: i64 = p.or(ACTIVATION, "a whole number of items", 0);
    let identity = parse_identity(input, p);
    let sdk = parse_sdk_settings(p);
    Config {
        query: QuerySpec {
            table,
            index,
            key_condition,
            filter,
            names,
            values,
        },
        region,
        endpoint,
        identity,
        sdk,
        target,
        activation,
    }
}

pub struct DynamoDbScaler {
    query: QuerySpec,
    aws: AwsTrigger,
}

impl DynamoDbScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<DynamoDbScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let c = parse(input, &mut p);
        p.finish()?;
        let table = &c.query.table;
        Ok(DynamoDbScaler {
            aws: AwsTrigger {
                metric: metric_name(input.index, &normalize(&format!("aws-dynamodb-{table}"))),
                identity: require_identity(c.identity)?,
                sdk: c.sdk,
                region: c.region,
                endpoint: c.endpoint,
                metric_type: input.metric_type.unwrap_or_default(),
                target: c.target as f64,
                activation: c.activation as f64,
                polling: input.polling_interval,
                shared: shared.clone(),
            },
            query: c.query,
        })
    }

    fn resource(&self) -> String {
        let (q, region) = (&self.query, &self.aws.region);
        match &q.index {
            Some(i) => format!("table {} (index {i}) in {region}", q.table),
            None => format!("table {} in {region}", q.table),
        }
    }

    async fn fetch(&self) -> Result<f64, crate::UpstreamError> {
        const QUERY: Operation = Operation::new("dynamodb", "Query");
        let client = self.aws.client(aws_sdk_dynamodb::Client::new).await;
        let q = &self.query;
        let mut total: i64 = 0;
        let mut start = None;
        let resource = self.resource();
        loop {
            let request = client
                .query()
                .table_name(&q.table)
                .set_index_name(q.index.clone())
                .key_condition_expression(&q.key_condition)
                .set_filter_expression(q.filter.clone())
                .set_expression_attribute_names(Some(q.names.clone()))
                .set_expression_attribute_values(Some(q.values.clone()))
                .select(Select::Count)
                .set_exclusive_start_key(start);
            // Billed by read units; a page reads at least one.
            let out = self
                .aws
                .call(QUERY, &resource, 1.0, || request.send())
                .await?;
            total += i64::from(out.count);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total as f64),
            }
        }
    }
}

#[async_trait::async_trait]
impl Scaler for DynamoDbScaler {
    fn metric_spec(&self) -> MetricSpec {
        self.aws.metric_spec()
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let question = format!("{:?}", self.query);
        self.aws
            .sample("aws-dynamodb", &question, || self.fetch())
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        let question = format!("{:?}", self.query);
        Some(self.aws.upstream_key("aws-dynamodb", &question))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger_input;

    fn scaler(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<DynamoDbScaler, ScalerError> {
        DynamoDbScaler::new(
            &trigger_input("aws-dynamodb", 1, meta, auth),
            &Shared::default(),
        )
    }

    type Pairs = Vec<(&'static str, &'static str)>;

    fn base(extra: &[(&'static str, &'static str)]) -> Pairs {
        let mut v = vec![
            ("tableName", "Orders.v2"),
            ("awsRegion", "eu-west-1"),
            ("keyConditionExpression", "#k = :k"),
            ("expressionAttributeNames", r##"{"#k": "queue"}"##),
            ("expressionAttributeValues", r#"{":k": {"S": "orders"}}"#),
            ("targetValue", "3"),
            ("identityOwner", "operator"),
        ];
        for (k, val) in extra {
            v.retain(|(n, _)| n != k);
            v.push((k, val));
        }
        v
    }

    /// DynamoDB's nesting limit bounds the recursion over `expressionAttributeValues`.
    #[test]
    fn attribute_values_nest_at_most_32_deep() {
        let nested = |depth: usize| {
            format!(
                r#"{{":v": {}{{"S": "x"}}{}}}"#,
                r#"{"L": ["#.repeat(depth - 1),
                "]}".repeat(depth - 1)
            )
        };
        assert!(parse_values(&nested(MAX_VALUE_DEPTH)).is_ok());
        let e = parse_values(&nested(MAX_VALUE_DEPTH + 1))
            .err()
            .map(String::from)
            .unwrap_or_default();
        assert!(e.contains("deeper than 32 levels"), "{e}");
        let e = parse_values(r#"{":v": {"N": "NaN"}}"#)
            .err()
            .map(String::from)
            .unwrap_or_default();
        assert!(e.contains("needs a number"), "{e}");
    }

    #[test]
    fn parses_valid_metadata() {
        let s = scaler(&base(&[]), &[]).unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s1-aws-dynamodb-Orders-v2".into(),
                target: 3.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(s.aws.activation, 0.0);
        assert_eq!(s.aws.identity, Identity::Operator);
        assert_eq!(s.query.names.get("#k").map(String::as_str), Some("queue"));
        assert_eq!(
            s.query.values.get(":k"),
            Some(&AttributeValue::S("orders".into()))
        );
        let s = scaler(
            &base(&[
                ("indexName", "by-status"),
                ("filterExpression", "attribute_exists(#k)"),
                ("activationTargetValue", "4"),
                ("awsEndpoint", "http://127.0.0.1:5000"),
                ("identityOwner", "pod"),
            ]),
            &[("awsAccessKeyID", "AKIA1"), ("awsSecretAccessKey", "s")],
        )
        .unwrap();
        assert_eq!(s.query.index.as_deref(), Some("by-status"));
        assert_eq!(s.query.filter.as_deref(), Some("attribute_exists(#k)"));
        assert_eq!(s.aws.activation, 4.0);
        assert!(matches!(s.aws.identity, Identity::Static { .. }));
        assert!(s.resource().contains("index by-status"));
    }

    #[test]
    fn typed_values_as_keda_reads_them() {
        let v = parse_values(
            r#"{":s": {"S": "a"}, ":n": {"N": "1.5"}, ":b": {"BOOL": true}, ":x": {"B": "hi"},
                ":z": {"NULL": true}, ":l": {"L": [{"S": "a"}, {"N": "2"}]},
                ":m": {"M": {"k": {"S": "v"}}}}"#,
        )
        .unwrap();
        assert_eq!(v[":n"], AttributeValue::N("1.5".into()));
        assert_eq!(v[":b"], AttributeValue::Bool(true));
        assert_eq!(v[":x"], AttributeValue::B(Blob::new("hi")));
        assert_eq!(v[":z"], AttributeValue::Null(true));
        assert_eq!(
            v[":l"],
            AttributeValue::L(vec![
                AttributeValue::S("a".into()),
                AttributeValue::N("2".into())
            ])
        );
        assert_eq!(
            v[":m"],
            AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("v".into()))]))
        );
    }

    #[test]
    fn rejects_invalid_metadata() {
        let cases: Vec<(Pairs, Vec<&str>)> = vec![
            (
                vec![("identityOwner", "operator")],
                vec![
                    "triggers[1].metadata.tableName: required",
                    "triggers[1].metadata.awsRegion: required",
                    "triggers[1].metadata.keyConditionExpression: required",
                    "triggers[1].metadata.expressionAttributeNames: required",
                    "triggers[1].metadata.expressionAttributeValues: required",
                    "triggers[1].metadata.targetValue: required",
                ],
            ),
            (
                base(&[("expressionAttributeValues", r#"{":k": {"S": "orders"}"#)]),
                vec!["triggers[1].metadata.expressionAttributeValues: is not a JSON object"],
            ),
            (
                base(&[("expressionAttributeValues", r#"{":k": "orders"}"#)]),
                vec![
                    "triggers[1].metadata.expressionAttributeValues: entry \":k\": \"orders\" is not a typed value",
                ],
            ),
            (
                base(&[("expressionAttributeValues", r#"{":k": {"N": 42}}"#)]),
                vec!["entry \":k\": \"N\" needs a number written as a string"],
            ),
            (
                base(&[("expressionAttributeValues", r#"{":k": {"SS": ["a"]}}"#)]),
                vec!["type \"SS\" is not supported"],
            ),
            (
                base(&[("expressionAttributeValues", "{}")]),
                vec!["expressionAttributeValues: is an empty object"],
            ),
            (
                base(&[("expressionAttributeNames", r##"{"#k": 1}"##)]),
                vec![
                    "triggers[1].metadata.expressionAttributeNames: is not a JSON object of strings",
                ],
            ),
            (
                base(&[("expressionAttributeNames", "{}")]),
                vec!["expressionAttributeNames: is an empty object"],
            ),
            (
                base(&[("targetValue", "many"), ("activationTargetValue", "1.5")]),
                vec![
                    "triggers[1].metadata.targetValue: \"many\" is not a whole number of items",
                    "triggers[1].metadata.activationTargetValue: \"1.5\" is not a whole number",
                ],
            ),
            (
                base(&[("targetValue", "0")]),
                vec!["triggers[1].metadata.targetValue: must be greater than 0"],
            ),
            (
                base(&[("identityOwner", "pod")]),
                vec![
                    "triggers[1].metadata.identityOwner: no AWS credentials for identityOwner pod",
                ],
            ),
        ];
        for (meta, wants) in cases {
            let e = scaler(&meta, &[]).err().expect("invalid").to_string();
            for w in wants {
                assert!(e.contains(w), "want {w:?} in {e}");
            }
        }
    }
}
