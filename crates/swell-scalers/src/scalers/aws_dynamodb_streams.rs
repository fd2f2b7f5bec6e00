//! `aws-dynamodb-streams`: scale on the number of shards of a DynamoDB table's latest
//! stream, so that there is one stream consumer per `shardCount` shards.
//!
//! As KEDA (`pkg/scalers/aws_dynamodb_streams_scaler.go`): `DescribeTable` gives the table's
//! `LatestStreamArn`, then `DescribeStream` is paged through (`LastEvaluatedShardId`) and
//! every shard it lists is counted, closed ones too (DynamoDB keeps them for 24 hours), so
//! that a `shardCount` tuned under KEDA gives the same replicas. The ARN is read once and
//! read again after a `DescribeStream` error (the stream may have been replaced).
//!
//! aws-sdk-dynamodb and aws-sdk-dynamodbstreams speak awsJson1.0, which moto understands
//! (checked by the e2e test).

use crate::aws::{AwsTrigger, Operation, ShardCount};
use crate::{
    Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput,
    UpstreamError, UpstreamKind,
};

const TABLE: Field = Field::new("tableName");
const REGION: Field = Field::new("awsRegion")
    .from(&[Source::Metadata, Source::Auth])
    .hint("the table's region, e.g. eu-west-1");

/// Every parameter but the identity, SDK and shard ones ([`crate::aws::IDENTITY_FIELDS`],
/// [`crate::aws::SDK_FIELDS`], [`crate::aws::SHARD_COUNT_FIELDS`]), for unknown-key warnings.
pub const FIELDS: &[Field] = &[TABLE, REGION];

/// A stream listing more pages than this is taken as an endpoint that never ends its
/// answer (DescribeStream gives up to 100 shards a page).
const MAX_PAGES: usize = 1000;

/// The parsed trigger, before any client exists.
pub struct Config {
    table: String,
    shards: ShardCount,
}

/// Reads and checks the trigger's parameters without I/O; every problem goes into `p`.
pub fn parse(input: &TriggerInput, p: &mut Params<'_>) -> Config {
    let table = p.string(TABLE);
    let shards = ShardCount::parse(input, p, REGION);
    Config { table, shards }
}

pub struct DynamoDbStreamsScaler {
    table: String,
    /// The table's `LatestStreamArn`, once read.
    stream_arn: tokio::sync::Mutex<Option<String>>,
    aws: AwsTrigger,
}

impl DynamoDbStreamsScaler {
    pub fn new(
        input: &TriggerInput,
        shared: &Shared,
    ) -> Result<DynamoDbStreamsScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let c = parse(input, &mut p);
        p.finish()?;
        let metric = format!("aws-dynamodb-streams-{}", c.table);
        Ok(DynamoDbStreamsScaler {
            aws: c.shards.trigger(input, shared, &metric)?,
            stream_arn: Default::default(),
            table: c.table,
        })
    }

    fn resource(&self) -> String {
        format!("table {} in {}", self.table, self.aws.region)
    }

    /// The table's latest stream, from `DescribeTable`.
    async fn latest_stream_arn(&self) -> Result<String, UpstreamError> {
        const DESCRIBE_TABLE: Operation = Operation::new("dynamodb", "DescribeTable");
        let client = self.aws.client(aws_sdk_dynamodb::Client::new).await;
        let request = client.describe_table().table_name(&self.table);
        let out = self
            .aws
            .call(DESCRIBE_TABLE, &self.resource(), 1.0, || request.send())
            .await?;
        stream_arn_of(
            &self.resource(),
            out.table.and_then(|t| t.latest_stream_arn),
        )
    }

    /// Every shard of the stream, over all pages.
    async fn count_shards(&self, arn: &str) -> Result<f64, UpstreamError> {
        let client = self.aws.client(aws_sdk_dynamodbstreams::Client::new).await;
        let mut total = 0usize;
        let mut start: Option<String> = None;
        const DESCRIBE_STREAM: Operation = Operation::new("dynamodb", "DescribeStream");
        let resource = format!("stream {arn} of {}", self.resource());
        for _ in 0..MAX_PAGES {
            let request = client
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start);
            let out = self
                .aws
                .call(DESCRIBE_STREAM, &resource, 1.0, || request.send())
                .await?;
            let page = out.stream_description.ok_or_else(|| {
                UpstreamError::bad_response("DescribeStream returned no StreamDescription")
            })?;
            total += page.shards.map_or(0, |s| s.len());
            match page.last_evaluated_shard_id {
                Some(id) if !id.is_empty() => start = Some(id),
                _ => return Ok(total as f64),
            }
        }
        Err(UpstreamError::bad_response(format!(
            "DescribeStream of {arn} listed more than {MAX_PAGES} pages of shards"
        )))
    }

    async fn fetch(&self) -> Result<f64, UpstreamError> {
        let mut held = self.stream_arn.lock().await;
        let arn = match held.as_ref() {
            Some(a) => a.clone(),
            None => held.insert(self.latest_stream_arn().await?).clone(),
        };
        let counted = self.count_shards(&arn).await;
        if counted.is_err() {
            // Read the table again next time: its stream may have been replaced.
            *held = None;
        }
        counted
    }
}

/// `LatestStreamArn`, or an error saying the table has no stream (KEDA: "dynamodb stream
/// arn for the table … is empty").
fn stream_arn_of(resource: &str, arn: Option<String>) -> Result<String, UpstreamError> {
    arn.filter(|a| !a.is_empty()).ok_or_else(|| {
        UpstreamError::new(
            UpstreamKind::NotFound,
            format!(
                "{resource} has no stream (its LatestStreamArn is empty); enable DynamoDB Streams on it \
                 (StreamSpecification StreamEnabled: true)"
            ),
        )
    })
}

#[async_trait::async_trait]
impl Scaler for DynamoDbStreamsScaler {
    fn metric_spec(&self) -> MetricSpec {
        self.aws.metric_spec()
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.aws
            .sample("aws-dynamodb-streams", &self.table, || self.fetch())
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.aws.upstream_key("aws-dynamodb-streams", &self.table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{Identity, PodIdentityInput};
    use crate::trigger_input;

    fn scaler(
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> Result<DynamoDbStreamsScaler, ScalerError> {
        DynamoDbStreamsScaler::new(
            &trigger_input("aws-dynamodb-streams", 0, meta, auth),
            &Shared::default(),
        )
    }

    const KEYS: &[(&str, &str)] = &[("awsAccessKeyID", "none"), ("awsSecretAccessKey", "none")];

    /// KEDA's parse cases (aws_dynamodb_streams_scaler_test.go) that succeed.
    #[test]
    fn parses_valid_metadata() {
        let base = [("tableName", "smalltable"), ("awsRegion", "ap-northeast-1")];
        // (extra metadata, (target, activation), endpoint)
        type Case = (
            Vec<(&'static str, &'static str)>,
            (f64, f64),
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![("shardCount", "2"), ("activationShardCount", "1")],
                (2.0, 1.0),
                None,
            ),
            (
                vec![
                    ("shardCount", "2"),
                    ("activationShardCount", "1"),
                    ("awsEndpoint", "http://localhost:4566"),
                ],
                (2.0, 1.0),
                Some("http://localhost:4566"),
            ),
            (vec![("shardCount", "")], (2.0, 0.0), None),
            (vec![], (2.0, 0.0), None),
        ];
        for (extra, (target, activation), endpoint) in cases {
            let meta: Vec<_> = base.iter().copied().chain(extra.clone()).collect();
            let s = scaler(&meta, KEYS).unwrap();
            assert_eq!(
                (s.aws.target, s.aws.activation),
                (target, activation),
                "{extra:?}"
            );
            assert_eq!(s.aws.endpoint.as_deref(), endpoint, "{extra:?}");
            assert!(matches!(s.aws.identity, Identity::Static { .. }));
            assert_eq!(
                s.metric_spec(),
                MetricSpec::External {
                    name: "s0-aws-dynamodb-streams-smalltable".into(),
                    target,
                    metric_type: crate::MetricType::AverageValue
                }
            );
        }
        // awsRegion from the TriggerAuthentication, as KEDA's order=triggerMetadata;authParams.
        let s = scaler(
            &[("tableName", "t")],
            &[
                ("awsRegion", "eu-west-1"),
                ("awsRoleArn", "arn:aws:iam::1:role/r"),
            ],
        )
        .unwrap();
        assert_eq!(s.aws.region, "eu-west-1");
        assert_eq!(
            s.aws.identity,
            Identity::AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                external_id: None
            }
        );
        let s = DynamoDbStreamsScaler::new(
            &TriggerInput {
                pod_identity: PodIdentityInput {
                    provider: Some("aws-eks".into()),
                    workload_role_arn: Some("arn:aws:iam::1:role/app".into()),
                    ..Default::default()
                },
                ..trigger_input("aws-dynamodb-streams", 3, &base, &[])
            },
            &Shared::default(),
        )
        .unwrap();
        assert!(matches!(s.aws.identity, Identity::AssumeRole { .. }));
        assert_eq!(
            s.aws.metric, "s3-aws-dynamodb-streams-smalltable",
            "the trigger index names the metric"
        );
    }

    #[test]
    fn rejects_invalid_metadata() {
        type Pairs = Vec<(&'static str, &'static str)>;
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                vec![],
                KEYS.to_vec(),
                vec![
                    "triggers[0].metadata.tableName: required",
                    "triggers[0].metadata.awsRegion: required",
                ],
            ),
            (
                vec![("tableName", ""), ("awsRegion", "r")],
                KEYS.to_vec(),
                vec!["triggers[0].metadata.tableName: required"],
            ),
            (
                vec![("tableName", "t"), ("shardCount", "a"), ("awsRegion", "r")],
                KEYS.to_vec(),
                vec!["triggers[0].metadata.shardCount: \"a\" is not a whole number of shards"],
            ),
            (
                vec![("tableName", "t"), ("shardCount", "0"), ("awsRegion", "r")],
                KEYS.to_vec(),
                vec!["triggers[0].metadata.shardCount: must be greater than 0, 0 is given"],
            ),
            (
                vec![("tableName", "t"), ("awsRegion", "r")],
                vec![("awsSecretAccessKey", "s")],
                vec!["no AWS credentials for identityOwner pod"],
            ),
            (
                vec![("tableName", "t"), ("awsRegion", "r")],
                vec![("awsAccessKeyID", "id")],
                vec!["awsSecretAccessKey is missing"],
            ),
            (
                vec![
                    ("tableName", "t"),
                    ("awsRegion", "r"),
                    ("swellAwsReadTimeout", "fast"),
                ],
                KEYS.to_vec(),
                vec!["triggers[0].metadata.swellAwsReadTimeout: \"fast\" is not a duration"],
            ),
        ];
        for (meta, auth, wants) in cases {
            let e = scaler(&meta, &auth).err().expect("invalid").to_string();
            for w in wants {
                assert!(e.contains(w), "want {w:?} in {e}");
            }
        }
    }

    #[test]
    fn a_table_without_a_stream_says_so() {
        assert_eq!(
            stream_arn_of("table t in r", Some("arn:s".into())).unwrap(),
            "arn:s"
        );
        for arn in [None, Some(String::new())] {
            let e = stream_arn_of("table t in r", arn).unwrap_err();
            assert_eq!(e.kind, UpstreamKind::NotFound);
            assert!(
                e.message.starts_with("table t in r has no stream")
                    && e.message.contains("enable DynamoDB Streams"),
                "{e}"
            );
        }
    }
}
