//! `aws-cloudwatch`: scale on a CloudWatch metric (or metric math expression) read with
//! `GetMetricData`.
//!
//! aws-sdk-cloudwatch is pinned to 1.95 in the workspace: it speaks the awsQuery protocol.
//! Later versions speak Smithy RPC v2 CBOR, which AWS accepts but moto 5.2.5 (the local
//! AWS the tests run against) does not (it answers 404).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StandardUnit,
};
use swell_scaling::naming::metric_name;

use crate::aws::cloudwatch_batch::{BatchKey, GET_METRIC_DATA, Member};
use crate::aws::{
    Call, Identity, SdkSettings, parse_identity, parse_sdk_settings, require_identity,
};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const NAMESPACE: Field = Field::new("namespace").hint("e.g. AWS/SQS");
const METRIC_NAME: Field = Field::new("metricName");
const DIMENSION_NAME: Field = Field::new("dimensionName").hint("names separated by ;");
const DIMENSION_VALUE: Field = Field::new("dimensionValue").hint("values separated by ;");
const EXPRESSION: Field = Field::new("expression");
const TARGET: Field = Field::new("targetMetricValue");
const ACTIVATION: Field = Field::new("activationTargetMetricValue");
const MIN_VALUE: Field =
    Field::new("minMetricValue").hint("the value used when CloudWatch has no data");
const IGNORE_NULL: Field = Field::new("ignoreNullValues");
const COLLECTION_TIME: Field = Field::new("metricCollectionTime");
const STAT: Field = Field::new("metricStat");
const UNIT: Field = Field::new("metricUnit");
const STAT_PERIOD: Field = Field::new("metricStatPeriod");
const END_TIME_OFFSET: Field = Field::new("metricEndTimeOffset");
const REGION: Field = Field::new("awsRegion")
    .from(&[Source::Metadata, Source::Auth])
    .hint("the metric's region, e.g. eu-west-1");
const ENDPOINT: Field = Field::new("awsEndpoint");
/// CloudWatch cross-account observability: the account whose metric a monitoring account
/// reads.
const ACCOUNT_ID: Field = Field::new("awsAccountId").hint("a 12-digit AWS account ID");

/// Every parameter but the identity ones ([`crate::aws::IDENTITY_FIELDS`]), for unknown-key
/// warnings.
pub const FIELDS: &[Field] = &[
    NAMESPACE,
    METRIC_NAME,
    DIMENSION_NAME,
    DIMENSION_VALUE,
    EXPRESSION,
    TARGET,
    ACTIVATION,
    MIN_VALUE,
    IGNORE_NULL,
    COLLECTION_TIME,
    STAT,
    UNIT,
    STAT_PERIOD,
    END_TIME_OFFSET,
    REGION,
    ENDPOINT,
    ACCOUNT_ID,
];

/// What to ask CloudWatch.
#[derive(Clone, Debug, PartialEq)]
enum Query {
    Expression(String),
    Stat {
        namespace: String,
        metric: String,
        dimensions: Vec<(String, String)>,
        stat: String,
        unit: Option<String>,
    },
}

pub struct CloudwatchScaler {
    query: Query,
    target: f64,
    activation: f64,
    min_value: f64,
    ignore_null: bool,
    collection_time: i64,
    period: i64,
    end_time_offset: i64,
    region: String,
    endpoint: Option<String>,
    /// `awsAccountId`: set on the query, as KEDA does.
    account_id: Option<String>,
    identity: Identity,
    sdk: SdkSettings,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
    /// A metric query's place in the `GetMetricData` batch of the triggers sharing its
    /// identity, region, endpoint and window; `None` for an expression (one call each).
    batch: Option<Member>,
}

/// The question: an `expression`, or a metric's statistic (namespace, name, dimensions,
/// `metricStat`, `metricUnit`); the other kind's fields are read so they are not unknown.
fn parse_query(p: &mut Params<'_>) -> Query {
    let query = match p.opt_string(EXPRESSION) {
        Some(e) => {
            // Read so that they are not reported as unknown; an expression ignores them.
            let _ = (p.opt_string(NAMESPACE), p.opt_string(METRIC_NAME));
            let _ = (p.opt_string(DIMENSION_NAME), p.opt_string(DIMENSION_VALUE));
            let _ = p.opt_string(UNIT);
            Query::Expression(e)
        }
        None => {
            let namespace = p.string(NAMESPACE);
            let metric = p.string(METRIC_NAME);
            let split =
                |s: String| -> Vec<String> { s.split(';').map(|x| x.trim().to_string()).collect() };
            let names = split(p.string(DIMENSION_NAME));
            let values = split(p.string(DIMENSION_VALUE));
            if names.len() != values.len() {
                p.error(
                    "dimensionValue",
                    format!(
                        "dimensionName has {} entries and dimensionValue {}; give one value per name",
                        names.len(),
                        values.len()
                    ),
                );
            }
            let unit = p.opt_string(UNIT);
            if let Some(u) = &unit
                && !StandardUnit::values().contains(&u.as_str())
            {
                p.error(
                    "metricUnit",
                    format!("{u:?} is not one of {}", StandardUnit::values().join(", ")),
                );
            }
            Query::Stat {
                namespace,
                metric,
                dimensions: names.into_iter().zip(values).collect(),
                stat: p.opt_string(STAT).unwrap_or_else(|| "Average".into()),
                unit,
            }
        }
    };
    if let Query::Expression(_) = &query {
        let _ = p.opt_string(STAT);
    }
    query
}

/// KEDA's `checkMetricStatPeriod`.
pub fn check_period(period: i64) -> Result<(), crate::Invalid> {
    let invalid = |m: String| Err(crate::Invalid(m));
    if period < 1 {
        return invalid(format!("must be at least 1, {period} is given"));
    }
    if period <= 60 {
        return match period {
            1 | 5 | 10 | 30 | 60 => Ok(()),
            _ => invalid(format!(
                "below 60 it must be one of 1, 5, 10, 30; {period} is given"
            )),
        };
    }
    if period % 60 != 0 {
        return invalid(format!(
            "from 60 on it must be a multiple of 60; {period} is given"
        ));
    }
    Ok(())
}

/// KEDA's query window: the end is now minus the offset, truncated to the period; the
/// start is the collection time before it. Seconds since the epoch.
pub fn query_window(now: i64, period: i64, end_offset: i64, collection: i64) -> (i64, i64) {
    let end = now - end_offset;
    let end = end - end.rem_euclid(period.max(1));
    (end - collection, end)
}

impl CloudwatchScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<CloudwatchScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        built
    }

    /// Reads the trigger's parameters into `p` (every problem with its field) without I/O;
    /// `swell check` and the admission webhook call it too.
    pub fn parse(
        input: &TriggerInput,
        shared: &Shared,
        p: &mut Params<'_>,
    ) -> Result<CloudwatchScaler, ScalerError> {
        let query = parse_query(p);
        let target = p.target(TARGET);
        let activation = p.float(ACTIVATION, 0.0);
        let min_value = p.required::<f64>(MIN_VALUE, "a number");
        let ignore_null = p.bool(IGNORE_NULL, true);
        let period: i64 = p.or(STAT_PERIOD, "a whole number of seconds", 300);
        if let Err(e) = check_period(period) {
            p.error("metricStatPeriod", e);
        }
        let collection_time: i64 = p.or(COLLECTION_TIME, "a whole number of seconds", 300);
        if period >= 1 && (collection_time < 0 || collection_time % period != 0) {
            p.error(
                "metricCollectionTime",
                format!(
                    "must be greater than 0 and a multiple of metricStatPeriod ({period}); {collection_time} is given"
                ),
            );
        }
        let end_time_offset: i64 = p.or(END_TIME_OFFSET, "a whole number of seconds", 0);
        let region = p.string(REGION);
        let endpoint = p.opt_url(ENDPOINT, false);
        let account_id = p.opt_string(ACCOUNT_ID);
        let sdk = parse_sdk_settings(p);
        let identity = require_identity(parse_identity(input, p))?;
        let mut scaler = CloudwatchScaler {
            query,
            target,
            activation,
            min_value,
            ignore_null,
            collection_time,
            period,
            end_time_offset,
            region,
            endpoint,
            account_id,
            identity,
            sdk,
            metric: metric_name(input.index, "aws-cloudwatch"),
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
            batch: None,
        };
        if let Query::Stat { .. } = scaler.query {
            let key = BatchKey {
                identity: scaler.identity.clone(),
                region: scaler.region.clone(),
                endpoint: scaler.endpoint.clone(),
                sdk: scaler.sdk,
                period: scaler.period,
                collection_time: scaler.collection_time,
                end_time_offset: scaler.end_time_offset,
            };
            let member = shared.aws.cloudwatch_batches.join(key, scaler.data_query());
            scaler.batch = Some(member);
        }
        Ok(scaler)
    }

    fn data_query(&self) -> MetricDataQuery {
        let mut q = self.unscoped_query();
        q.account_id.clone_from(&self.account_id);
        q
    }

    fn unscoped_query(&self) -> MetricDataQuery {
        let period = i32::try_from(self.period).unwrap_or(i32::MAX);
        match &self.query {
            Query::Expression(e) => MetricDataQuery::builder()
                .id("q1")
                .expression(e)
                .period(period)
                .build(),
            Query::Stat {
                namespace,
                metric,
                dimensions,
                stat,
                unit,
            } => {
                let mut m = Metric::builder().namespace(namespace).metric_name(metric);
                for (n, v) in dimensions {
                    m = m.dimensions(Dimension::builder().name(n).value(v).build());
                }
                let mut s = MetricStat::builder()
                    .metric(m.build())
                    .period(period)
                    .stat(stat);
                if let Some(u) = unit {
                    s = s.unit(StandardUnit::from(u.as_str()));
                }
                MetricDataQuery::builder()
                    .id("c1")
                    .metric_stat(s.build())
                    .return_data(true)
                    .build()
            }
        }
    }

    fn resource(&self) -> String {
        match &self.query {
            Query::Expression(e) => format!("expression {e:?}"),
            Query::Stat {
                namespace, metric, ..
            } => format!("metric {namespace}/{metric} in {}", self.region),
        }
    }

    fn window(&self) -> (i64, i64) {
        query_window(
            unix_now(),
            self.period,
            self.end_time_offset,
            self.collection_time,
        )
    }

    /// An expression's reading: a call of its own.
    async fn fetch_alone(&self) -> Result<f64, crate::UpstreamError> {
        let call = MetricDataCall {
            identity: &self.identity,
            region: &self.region,
            endpoint: self.endpoint.as_deref(),
            sdk: self.sdk,
            queries: vec![self.data_query()],
            window: self.window(),
            resource: &self.resource(),
        };
        let first = call.first_values(&self.shared.aws).await?;
        self.value_of(first)
    }

    fn value_of(&self, first: Option<Option<Vec<f64>>>) -> Result<f64, crate::UpstreamError> {
        let no_results = first.is_none();
        pick_value(
            no_results,
            first.flatten().as_deref(),
            self.ignore_null,
            self.min_value,
        )
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// One `GetMetricData` call, newest datapoints first; also serves the k8s-cloudwatch-adapter's
/// `ExternalMetric` queries.
pub struct MetricDataCall<'a> {
    pub identity: &'a Identity,
    pub region: &'a str,
    pub endpoint: Option<&'a str>,
    pub sdk: SdkSettings,
    pub queries: Vec<MetricDataQuery>,
    /// Start and end, seconds since the epoch.
    pub window: (i64, i64),
    /// What is read, for messages (`metric AWS/SQS/… in eu-west-1`).
    pub resource: &'a str,
}

impl MetricDataCall<'_> {
    /// The values of the first result (`None`: no result at all; `Some(None)`: a result
    /// without values), as `identity`, with errors that say what to grant or fix.
    pub async fn first_values(
        self,
        aws: &crate::aws::AwsClients,
    ) -> Result<Option<Option<Vec<f64>>>, crate::UpstreamError> {
        let client = aws
            .cloudwatch(self.identity, self.region, self.endpoint, &self.sdk)
            .await;
        let call = Call {
            identity: self.identity,
            region: self.region,
            sdk: &self.sdk,
            operation: GET_METRIC_DATA,
            resource: self.resource,
        };
        let metrics = self.queries.len() as f64;
        let out = aws
            .call(&call, metrics, || {
                client
                    .get_metric_data()
                    .start_time(DateTime::from_secs(self.window.0))
                    .end_time(DateTime::from_secs(self.window.1))
                    .scan_by(ScanBy::TimestampDescending)
                    .set_metric_data_queries(Some(self.queries))
                    .send()
            })
            .await?;
        Ok(out
            .metric_data_results
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|r| r.values))
    }
}

/// KEDA's reading of a `GetMetricData` answer: the newest value; with no value, an error
/// when `ignoreNullValues` is false, otherwise `minMetricValue`.
fn pick_value(
    no_results: bool,
    values: Option<&[f64]>,
    ignore_null: bool,
    min_value: f64,
) -> Result<f64, crate::UpstreamError> {
    match values {
        Some([v, ..]) => Ok(*v),
        _ if !no_results && !ignore_null => Err(crate::UpstreamError::bad_response(
            "empty metric data received, ignoreNullValues is false, returning error",
        )),
        _ => Ok(min_value),
    }
}

#[async_trait::async_trait]
impl Scaler for CloudwatchScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        if let Some(member) = &self.batch {
            let (first, upstream) = member
                .values(&self.shared.aws, self.polling, self.window())
                .await;
            if upstream {
                self.shared.count_upstream("aws-cloudwatch");
            }
            let value = first
                .and_then(|f| self.value_of(f))
                .map_err(ScalerError::Upstream)?;
            return Ok(Sample {
                value,
                active: value > self.activation,
            });
        }
        let key = format!(
            "aws-cloudwatch|{:?}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.query,
            self.identity.key(),
            self.region,
            self.endpoint.as_deref().unwrap_or(""),
            self.period,
            self.collection_time,
            self.end_time_offset,
            self.ignore_null,
            self.min_value,
        );
        self.shared
            .sample_value(
                "aws-cloudwatch",
                &key,
                self.polling,
                self.activation,
                || self.fetch_alone(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(format!(
            "aws-cloudwatch|{:?}|{:?}|{}",
            self.query,
            self.account_id,
            self.identity.key()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger_input;

    fn scaler(
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> Result<CloudwatchScaler, ScalerError> {
        CloudwatchScaler::new(
            &trigger_input("aws-cloudwatch", 3, meta, auth),
            &Shared::default(),
        )
    }

    type Pairs = Vec<(&'static str, &'static str)>;

    fn base(extra: &[(&'static str, &'static str)]) -> Pairs {
        let mut v = vec![
            ("namespace", "AWS/SQS"),
            ("dimensionName", "QueueName"),
            ("dimensionValue", "keda"),
            ("metricName", "ApproximateNumberOfMessagesVisible"),
            ("targetMetricValue", "2"),
            ("minMetricValue", "0"),
            ("awsRegion", "eu-west-1"),
            ("identityOwner", "operator"),
        ];
        v.extend_from_slice(extra);
        v
    }

    /// KEDA sets `awsAccountId` on the query (cross-account observability), for a metric
    /// and for an expression alike; without it the query names no account.
    #[test]
    fn aws_account_id_scopes_the_query() {
        let s = scaler(&base(&[]), &[]).unwrap();
        assert_eq!(s.data_query().account_id, None);
        let s = scaler(&base(&[("awsAccountId", "123456789012")]), &[]).unwrap();
        assert_eq!(s.data_query().account_id.as_deref(), Some("123456789012"));
        assert!(s.data_query().metric_stat.is_some());
        let s = scaler(
            &[
                ("expression", "SELECT MAX(x) FROM y"),
                ("targetMetricValue", "2"),
                ("minMetricValue", "0"),
                ("awsRegion", "eu-west-1"),
                ("identityOwner", "operator"),
                ("awsAccountId", "123456789012"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.data_query().account_id.as_deref(), Some("123456789012"));
    }

    #[test]
    fn parses_valid_metadata() {
        let s = scaler(&base(&[]), &[]).unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s3-aws-cloudwatch".into(),
                target: 2.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(
            (s.period, s.collection_time, s.end_time_offset),
            (300, 300, 0)
        );
        assert!(s.ignore_null);
        assert_eq!(s.identity, Identity::Operator);
        assert_eq!(
            s.query,
            Query::Stat {
                namespace: "AWS/SQS".into(),
                metric: "ApproximateNumberOfMessagesVisible".into(),
                dimensions: vec![("QueueName".into(), "keda".into())],
                stat: "Average".into(),
                unit: None,
            }
        );
        let s = scaler(
            &base(&[
                ("dimensionName", "A;B"),
                ("dimensionValue", "1;2"),
                ("metricStat", "Maximum"),
                ("metricUnit", "Count"),
                ("metricStatPeriod", "60"),
                ("metricCollectionTime", "120"),
                ("metricEndTimeOffset", "30"),
                ("activationTargetMetricValue", "1.5"),
                ("ignoreNullValues", "false"),
                ("awsEndpoint", "http://127.0.0.1:5000"),
            ]),
            &[],
        )
        .unwrap();
        assert!(
            matches!(&s.query, Query::Stat { dimensions, unit, stat, .. }
            if dimensions.len() == 2 && unit.as_deref() == Some("Count") && stat == "Maximum")
        );
        assert_eq!(s.activation, 1.5);
        assert!(!s.ignore_null);
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let s = scaler(
            &[
                ("expression", "SELECT MAX(x) FROM y"),
                ("targetMetricValue", "2"),
                ("minMetricValue", "0"),
                ("awsRegion", "eu-west-1"),
            ],
            &[("awsAccessKeyID", "AKIA1"), ("awsSecretAccessKey", "s")],
        )
        .unwrap();
        assert_eq!(s.query, Query::Expression("SELECT MAX(x) FROM y".into()));
        assert!(matches!(s.identity, Identity::Static { .. }));
    }

    #[test]
    fn rejects_invalid_metadata() {
        let cases: Vec<(Pairs, Vec<&str>)> = vec![
            (
                vec![("awsRegion", "eu-west-1"), ("identityOwner", "operator")],
                vec![
                    "triggers[3].metadata.namespace: required",
                    "triggers[3].metadata.metricName: required",
                    "triggers[3].metadata.dimensionName: required",
                    "triggers[3].metadata.dimensionValue: required",
                    "triggers[3].metadata.targetMetricValue: required",
                    "triggers[3].metadata.minMetricValue: required",
                ],
            ),
            (
                base(&[("dimensionValue", "a;b")]),
                vec![
                    "triggers[3].metadata.dimensionValue: dimensionName has 1 entries and dimensionValue 2",
                ],
            ),
            (
                base(&[("metricUnit", "Hour")]),
                vec!["triggers[3].metadata.metricUnit: \"Hour\" is not one of"],
            ),
            (
                base(&[("metricStatPeriod", "25")]),
                vec![
                    "triggers[3].metadata.metricStatPeriod: below 60 it must be one of 1, 5, 10, 30",
                ],
            ),
            (
                base(&[("metricStatPeriod", "90")]),
                vec![
                    "triggers[3].metadata.metricStatPeriod: from 60 on it must be a multiple of 60",
                ],
            ),
            (
                base(&[("metricStatPeriod", "60"), ("metricCollectionTime", "90")]),
                vec![
                    "triggers[3].metadata.metricCollectionTime: must be greater than 0 and a multiple of metricStatPeriod (60)",
                ],
            ),
            (
                base(&[("targetMetricValue", "x"), ("ignoreNullValues", "no")]),
                vec![
                    "triggers[3].metadata.targetMetricValue: \"x\" is not a number",
                    "triggers[3].metadata.ignoreNullValues: \"no\" is not true or false",
                ],
            ),
            (
                base(&[("identityOwner", "pod")]),
                vec![
                    "triggers[3].metadata.identityOwner: no AWS credentials for identityOwner pod",
                ],
            ),
        ];
        for (meta, wants) in cases {
            let e = scaler(&meta, &[]).err().expect("invalid").to_string();
            for w in wants {
                assert!(e.contains(w), "want {w:?} in {e}");
            }
        }
        let e = scaler(&base(&[("awsRegion", "")]), &[])
            .err()
            .expect("invalid")
            .to_string();
        assert!(
            e.contains("triggers[3].metadata.awsRegion: required"),
            "{e}"
        );
    }

    #[test]
    fn window_and_values_like_keda() {
        // 12:00:45 with period 60, offset 0, collection 300 → [11:55:00, 12:00:00).
        let now = 12 * 3600 + 45;
        assert_eq!(query_window(now, 60, 0, 300), (now - 45 - 300, now - 45));
        assert_eq!(query_window(now, 1, 30, 60), (now - 30 - 60, now - 30));
        assert_eq!(pick_value(false, Some(&[3.0, 1.0]), true, 0.0), Ok(3.0));
        assert_eq!(pick_value(false, Some(&[]), true, 7.0), Ok(7.0));
        assert!(pick_value(false, Some(&[]), false, 7.0).is_err());
        assert_eq!(pick_value(true, None, false, 7.0), Ok(7.0));
    }
}
