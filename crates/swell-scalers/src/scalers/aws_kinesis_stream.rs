//! `aws-kinesis-stream`: scale on the number of open shards of a Kinesis data stream
//! (`DescribeStreamSummary`'s `OpenShardCount`), so that there is one consumer per
//! `shardCount` shards.
//!
//! aws-sdk-kinesis speaks awsJson1.1 (no CBOR in the Rust SDK), which moto understands
//! (checked by the e2e test).

use crate::aws::{AwsTrigger, Operation, ShardCount};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput};

const STREAM: Field = Field::new("streamName");
// KEDA reads awsRegion for this scaler from trigger metadata only.
const REGION: Field = Field::new("awsRegion").hint("the stream's region, e.g. eu-west-1");

/// Every parameter but the identity, SDK and shard ones ([`crate::aws::IDENTITY_FIELDS`],
/// [`crate::aws::SDK_FIELDS`], [`crate::aws::SHARD_COUNT_FIELDS`]), for unknown-key warnings.
pub const FIELDS: &[Field] = &[STREAM, REGION];

/// The parsed trigger, before any client exists.
pub struct Config {
    stream: String,
    shards: ShardCount,
}

/// Reads and checks the trigger's parameters without I/O; every problem goes into `p`.
pub fn parse(input: &TriggerInput, p: &mut Params<'_>) -> Config {
    let stream = p.string(STREAM);
    let shards = ShardCount::parse(input, p, REGION);
    Config { stream, shards }
}

pub struct KinesisScaler {
    stream: String,
    aws: AwsTrigger,
}

impl KinesisScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<KinesisScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let c = parse(input, &mut p);
        p.finish()?;
        let metric = format!("aws-kinesis-{}", c.stream);
        Ok(KinesisScaler {
            aws: c.shards.trigger(input, shared, &metric)?,
            stream: c.stream,
        })
    }

    async fn fetch(&self) -> Result<f64, crate::UpstreamError> {
        const DESCRIBE: Operation = Operation::new("kinesis", "DescribeStreamSummary");
        let client = self.aws.client(aws_sdk_kinesis::Client::new).await;
        let resource = format!("stream {} in {}", self.stream, self.aws.region);
        let request = client.describe_stream_summary().stream_name(&self.stream);
        let out = self
            .aws
            .call(DESCRIBE, &resource, 1.0, || request.send())
            .await?;
        out.stream_description_summary
            .map(|s| f64::from(s.open_shard_count))
            .ok_or_else(|| {
                crate::UpstreamError::bad_response(
                    "DescribeStreamSummary returned no StreamDescriptionSummary",
                )
            })
    }
}

#[async_trait::async_trait]
impl Scaler for KinesisScaler {
    fn metric_spec(&self) -> MetricSpec {
        self.aws.metric_spec()
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.aws
            .sample("aws-kinesis-stream", &self.stream, || self.fetch())
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.aws.upstream_key("aws-kinesis-stream", &self.stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{Identity, PodIdentityInput, SdkSettings};
    use crate::trigger_input;

    fn scaler(meta: &[(&str, &str)], pod: PodIdentityInput) -> Result<KinesisScaler, ScalerError> {
        KinesisScaler::new(
            &TriggerInput {
                pod_identity: pod,
                ..trigger_input("aws-kinesis-stream", 0, meta, &[])
            },
            &Shared::default(),
        )
    }

    #[test]
    fn parses_valid_metadata() {
        let s = scaler(
            &[
                ("streamName", "clicks_v2"),
                ("awsRegion", "eu-west-1"),
                ("identityOwner", "operator"),
            ],
            Default::default(),
        )
        .unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s0-aws-kinesis-clicks_v2".into(),
                target: 2.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!((s.aws.target, s.aws.activation), (2.0, 0.0));
        assert_eq!(s.aws.sdk, SdkSettings::default());
        let s = scaler(
            &[
                ("streamName", "clicks"),
                ("awsRegion", "eu-west-1"),
                ("identityOwner", "operator"),
                ("swellAwsConnectTimeout", "1s"),
                ("swellAwsReadTimeout", "1500"),
                ("swellAwsOperationTimeout", "1m"),
                ("swellAwsMaxAttempts", "5"),
            ],
            Default::default(),
        )
        .unwrap();
        let sdk = SdkSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_millis(1500),
            operation_timeout: std::time::Duration::from_secs(60),
            max_attempts: 5,
        };
        assert_eq!(s.aws.sdk, sdk);
        assert_eq!(
            sdk.describe(),
            "swellAwsConnectTimeout 1s, swellAwsReadTimeout 1500ms, swellAwsOperationTimeout 60s, swellAwsMaxAttempts 5"
        );
        let s = scaler(
            &[
                ("streamName", "clicks"),
                ("awsRegion", "eu-west-1"),
                ("shardCount", "4"),
                ("activationShardCount", "3"),
                ("awsEndpoint", "http://127.0.0.1:5000"),
            ],
            PodIdentityInput {
                provider: Some("aws".into()),
                role_arn: Some("arn:aws:iam::1:role/reader".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((s.aws.target, s.aws.activation), (4.0, 3.0));
        assert_eq!(
            s.aws.identity,
            Identity::AssumeRole {
                role_arn: "arn:aws:iam::1:role/reader".into(),
                external_id: None
            }
        );
    }

    /// A loopback listener that accepts connections, holds them and never answers; counts
    /// the connections.
    async fn silent_listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(conn);
            }
        });
        (url, count)
    }

    /// The trigger's SDK limits bound a call to an endpoint that never answers, and the
    /// error is a timeout naming them; swellAwsMaxAttempts is the number of connections tried.
    #[tokio::test]
    async fn sdk_limits_bound_a_call_that_gets_no_answer() {
        let cases = [
            // (settings, attempts made, said)
            (
                [
                    ("swellAwsReadTimeout", "200ms"),
                    ("swellAwsMaxAttempts", "1"),
                ],
                1,
                "swellAwsReadTimeout 200ms",
            ),
            (
                [
                    ("swellAwsReadTimeout", "100ms"),
                    ("swellAwsMaxAttempts", "2"),
                ],
                2,
                "swellAwsMaxAttempts 2",
            ),
            (
                [
                    ("swellAwsReadTimeout", "1h"),
                    ("swellAwsOperationTimeout", "300ms"),
                ],
                1,
                "swellAwsOperationTimeout 300ms",
            ),
        ];
        for (settings, attempts, said) in cases {
            let (url, connections) = silent_listener().await;
            let mut meta = vec![
                ("streamName", "clicks"),
                ("awsRegion", "eu-west-1"),
                ("awsEndpoint", url.as_str()),
                ("awsAccessKeyID", "AKIDSWELLTEST"),
                ("awsSecretAccessKey", "secret"),
            ];
            meta.extend(settings);
            let s = scaler(&meta, Default::default()).unwrap();
            let e = s.fetch().await.unwrap_err();
            assert_eq!(e.kind, crate::UpstreamKind::Timeout, "{said}: {e}");
            assert!(
                e.message.contains(said) && e.message.contains("raise them"),
                "{said}: {e}"
            );
            let made = connections.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(made, attempts, "{said}: {e}");
        }
    }

    #[test]
    fn rejects_invalid_metadata() {
        type Pairs = Vec<(&'static str, &'static str)>;
        let cases: Vec<(Pairs, Vec<&str>)> = vec![
            (
                vec![("identityOwner", "operator")],
                vec![
                    "triggers[0].metadata.streamName: required",
                    "triggers[0].metadata.awsRegion: required",
                ],
            ),
            (
                vec![
                    ("streamName", "s"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                    ("shardCount", "-1"),
                ],
                vec!["triggers[0].metadata.shardCount: must be greater than 0, -1 is given"],
            ),
            (
                vec![
                    ("streamName", "s"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                    ("shardCount", "two"),
                    ("activationShardCount", "x"),
                ],
                vec![
                    "triggers[0].metadata.shardCount: \"two\" is not a whole number of shards",
                    "triggers[0].metadata.activationShardCount: \"x\" is not a whole number",
                ],
            ),
            (
                vec![("streamName", "s"), ("awsRegion", "eu-west-1")],
                vec![
                    "triggers[0].metadata.identityOwner: no AWS credentials for identityOwner pod",
                ],
            ),
            (
                vec![
                    ("streamName", "s"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "nobody"),
                ],
                vec!["\"nobody\" is not one of pod, operator"],
            ),
            (
                vec![
                    ("streamName", "s"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                    ("swellAwsConnectTimeout", "soon"),
                    ("swellAwsReadTimeout", "0s"),
                    ("swellAwsOperationTimeout", "-1s"),
                    ("swellAwsMaxAttempts", "0"),
                ],
                vec![
                    "triggers[0].metadata.swellAwsConnectTimeout: \"soon\" is not a duration",
                    "triggers[0].metadata.swellAwsReadTimeout: must be greater than 0",
                    "triggers[0].metadata.swellAwsOperationTimeout: duration cannot be negative",
                    "triggers[0].metadata.swellAwsMaxAttempts: must be from 1 to 10, 0 is given",
                ],
            ),
            (
                vec![
                    ("streamName", "s"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                    ("swellAwsMaxAttempts", "three"),
                ],
                vec![
                    "triggers[0].metadata.swellAwsMaxAttempts: \"three\" is not a whole number of attempts",
                ],
            ),
        ];
        for (meta, wants) in cases {
            let e = scaler(&meta, Default::default())
                .err()
                .expect("invalid")
                .to_string();
            for w in wants {
                assert!(e.contains(w), "want {w:?} in {e}");
            }
        }
    }
}
