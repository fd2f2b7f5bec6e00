//! `aws-sqs-queue`: scale on the number of messages in an SQS queue.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use swell_scaling::naming::{metric_name, normalize};

use crate::aws::{
    Call, Identity, Operation, SdkSettings, parse_identity, parse_sdk_settings, require_identity,
};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const QUEUE_URL: Field = Field::new("queueURL")
    .hint("the queue's URL, e.g. https://sqs.eu-west-1.amazonaws.com/111122223333/orders");
const QUEUE_LENGTH: Field = Field::new("queueLength");
const ACTIVATION: Field = Field::new("activationQueueLength");
const REGION: Field = Field::new("awsRegion")
    .from(&[Source::Metadata, Source::Auth])
    .hint("the queue's region, e.g. eu-west-1");
const ENDPOINT: Field = Field::new("awsEndpoint");
const IN_FLIGHT: Field = Field::new("scaleOnInFlight");
const DELAYED: Field = Field::new("scaleOnDelayed");

/// Queue attributes read once per (queue, identity) and shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
}

pub struct SqsScaler {
    queue_url: String,
    queue_arn_hint: String,
    region: String,
    endpoint: Option<String>,
    identity: Identity,
    sdk: SdkSettings,
    queue_length: i64,
    activation: i64,
    in_flight: bool,
    delayed: bool,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

/// The queue name: the second path segment of `https://host/<account>/<queue>`, or the
/// whole value when it is not a URL (as KEDA does).
pub fn queue_name(url: &str) -> Result<String, crate::Invalid> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Ok(url.to_string());
    };
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [_account, queue] => Ok((*queue).to_string()),
        _ => Err(crate::Invalid(format!(
            "{url:?} is not a queue URL of the form https://sqs.<region>.amazonaws.com/<account>/<queue>"
        ))),
    }
}

/// The region named by an AWS queue URL's host, if any.
pub fn url_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some((*region).to_string()),
        [region, "queue", "amazonaws", ..] => Some((*region).to_string()),
        _ => None,
    }
}

/// Every parameter but the identity ones ([`crate::aws::IDENTITY_FIELDS`]), for unknown-key
/// warnings.
pub const FIELDS: &[Field] = &[
    QUEUE_URL,
    QUEUE_LENGTH,
    ACTIVATION,
    REGION,
    ENDPOINT,
    IN_FLIGHT,
    DELAYED,
];

/// The parsed trigger, before any client exists.
pub struct Config {
    queue_url: String,
    queue: String,
    region: String,
    endpoint: Option<String>,
    identity: Option<Identity>,
    sdk: SdkSettings,
    queue_length: i64,
    activation: i64,
    in_flight: bool,
    delayed: bool,
}

/// Reads and checks the trigger's parameters without I/O; every problem goes into `p`.
pub fn parse(input: &TriggerInput, p: &mut Params<'_>) -> Config {
    let queue_url = p.url(QUEUE_URL, false);
    let queue = if queue_url.is_empty() {
        String::new()
    } else {
        match queue_name(&queue_url) {
            Ok(q) => q,
            Err(e) => {
                p.error("queueURL", e);
                String::new()
            }
        }
    };
    let queue_length: i64 = p.or(QUEUE_LENGTH, "a whole number of messages", 5);
    if queue_length <= 0 {
        p.error("queueLength", "must be greater than 0");
    }
    let activation: i64 = p.or(ACTIVATION, "a whole number of messages", 0);
    let region = p.string(REGION);
    let endpoint = p.opt_url(ENDPOINT, false);
    let in_flight = p.bool(IN_FLIGHT, true);
    let delayed = p.bool(DELAYED, false);
    let identity = parse_identity(input, p);
    let sdk = parse_sdk_settings(p);
    if let Some(url_region) = url_region(&queue_url).filter(|r| !region.is_empty() && *r != region)
    {
        // KEDA lets this through and fails later with NonExistentQueue; say it now.
        p.error(
            "awsRegion",
            format!(
                "{region:?} differs from the queue URL's region {url_region:?}; set awsRegion: {url_region}"
            ),
        );
    }
    Config {
        queue_url,
        queue,
        region,
        endpoint,
        identity,
        sdk,
        queue_length,
        activation,
        in_flight,
        delayed,
    }
}

impl SqsScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<SqsScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let c = parse(input, &mut p);
        p.finish()?;
        let identity = require_identity(c.identity)?;
        let Config {
            queue_url,
            queue,
            region,
            ..
        } = c;
        let account = queue_url.split('/').rev().nth(1).unwrap_or("");
        Ok(SqsScaler {
            metric: metric_name(input.index, &normalize(&format!("aws-sqs-{queue}"))),
            queue_arn_hint: format!("arn:aws:sqs:{region}:{account}:{queue}"),
            queue_url,
            region,
            endpoint: c.endpoint,
            identity,
            sdk: c.sdk,
            queue_length: c.queue_length,
            activation: c.activation,
            in_flight: c.in_flight,
            delayed: c.delayed,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        })
    }

    async fn fetch(&self) -> Result<QueueCounts, crate::UpstreamError> {
        let client = self
            .shared
            .aws
            .sqs(
                &self.identity,
                &self.region,
                self.endpoint.as_deref(),
                &self.sdk,
            )
            .await;
        let request = client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        let call = Call {
            identity: &self.identity,
            region: &self.region,
            sdk: &self.sdk,
            operation: Operation::new("sqs", "GetQueueAttributes"),
            resource: &self.queue_arn_hint,
        };
        let out = self.shared.aws.call(&call, 1.0, || request.send()).await?;
        let attrs = out.attributes.unwrap_or_default();
        let get = |n: QueueAttributeName| -> Result<i64, crate::UpstreamError> {
            let bad = |what: &str| {
                crate::UpstreamError::bad_response(format!("GetQueueAttributes returned {what}"))
            };
            attrs
                .get(&n)
                .ok_or_else(|| bad(&format!("no {}", n.as_str())))?
                .parse()
                .map_err(|_| bad(&format!("a non-number for {}", n.as_str())))
        };
        Ok(QueueCounts {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }

    /// The messages this trigger counts.
    pub fn count(&self, c: QueueCounts) -> i64 {
        c.visible
            + if self.in_flight { c.in_flight } else { 0 }
            + if self.delayed { c.delayed } else { 0 }
    }
}

#[async_trait::async_trait]
impl Scaler for SqsScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.queue_length as f64,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let key = format!(
            "{}|{}|{}|{}",
            self.queue_url,
            self.identity.key(),
            self.region,
            self.endpoint.as_deref().unwrap_or("")
        );
        let (counts, upstream) = self
            .shared
            .sqs_counts
            .get(&key, self.polling, || self.fetch())
            .await;
        if upstream {
            self.shared.count_upstream("aws-sqs-queue");
        }
        let n = self.count(counts.map_err(ScalerError::Upstream)?);
        Ok(Sample {
            value: n as f64,
            active: n > self.activation,
        })
    }

    fn upstream_key(&self) -> Option<String> {
        Some(format!(
            "aws-sqs|{}|{}",
            self.queue_url,
            self.identity.key()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::PodIdentityInput;
    use crate::{RawParams, map};

    fn scaler(
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
        pod: PodIdentityInput,
    ) -> Result<SqsScaler, ScalerError> {
        SqsScaler::new(
            &TriggerInput {
                index: 0,
                type_: "aws-sqs-queue".into(),
                params: RawParams {
                    metadata: map(meta),
                    auth: map(auth),
                    ..Default::default()
                },
                pod_identity: pod,
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    const URL: &str = "https://sqs.ca-central-1.amazonaws.com/111122223333/demo-app-sqs";

    #[test]
    fn parses_the_seed_trigger() {
        let pod = PodIdentityInput {
            provider: Some("aws-eks".into()),
            workload_role_arn: Some("arn:aws:iam::111122223333:role/demo-app".into()),
            ..Default::default()
        };
        let s = scaler(
            &[
                ("queueURL", URL),
                ("queueLength", "2"),
                ("awsRegion", "ca-central-1"),
                ("identityOwner", "pod"),
            ],
            &[],
            pod,
        )
        .unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s0-aws-sqs-demo-app-sqs".into(),
                target: 2.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(
            s.identity,
            Identity::AssumeRole {
                role_arn: "arn:aws:iam::111122223333:role/demo-app".into(),
                external_id: None
            }
        );
        assert!(s.in_flight && !s.delayed);
        assert_eq!(s.activation, 0);
    }

    #[test]
    fn defaults_and_counting() {
        let s = scaler(
            &[
                ("queueURL", URL),
                ("awsRegion", "ca-central-1"),
                ("identityOwner", "operator"),
                ("scaleOnDelayed", "true"),
                ("scaleOnInFlight", "false"),
            ],
            &[],
            Default::default(),
        )
        .unwrap();
        assert_eq!(s.queue_length, 5);
        assert_eq!(
            s.count(QueueCounts {
                visible: 1,
                in_flight: 10,
                delayed: 100
            }),
            101
        );
        let s = scaler(
            &[
                ("queueURL", "orders.fifo"),
                ("awsRegion", "eu-west-1"),
                ("identityOwner", "operator"),
            ],
            &[],
            Default::default(),
        )
        .unwrap();
        assert_eq!(s.metric_spec().name(), "s0-aws-sqs-orders-fifo");
        assert_eq!(
            s.count(QueueCounts {
                visible: 1,
                in_flight: 10,
                delayed: 100
            }),
            11
        );
    }

    #[test]
    fn rejects_bad_metadata() {
        let e = scaler(
            &[
                ("queueURL", "https://sqs.x.amazonaws.com/a/b/c"),
                ("queueLength", "0"),
                ("identityOwner", "nobody"),
            ],
            &[],
            Default::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains(
                "metadata.queueURL: \"https://sqs.x.amazonaws.com/a/b/c\" is not a queue URL"
            ),
            "{e}"
        );
        assert!(
            e.contains("metadata.queueLength: must be greater than 0"),
            "{e}"
        );
        assert!(e.contains("metadata.awsRegion: required"), "{e}");
        assert!(e.contains("\"nobody\" is not one of pod, operator"), "{e}");
        let e = scaler(
            &[
                ("queueURL", URL),
                ("awsRegion", "us-east-1"),
                ("identityOwner", "operator"),
            ],
            &[],
            Default::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains(
                "awsRegion: \"us-east-1\" differs from the queue URL's region \"ca-central-1\""
            ),
            "{e}"
        );
        let e = scaler(
            &[("queueURL", URL), ("awsRegion", "ca-central-1")],
            &[],
            Default::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("no AWS credentials for identityOwner pod"),
            "{e}"
        );
    }

    #[test]
    fn static_keys_from_authentication() {
        let s = scaler(
            &[("queueURL", URL), ("awsRegion", "ca-central-1")],
            &[("awsAccessKeyID", "AKIA9"), ("awsSecretAccessKey", "shh")],
            Default::default(),
        )
        .unwrap();
        assert!(
            matches!(&s.identity, Identity::Static { access_key_id, .. } if access_key_id == "AKIA9")
        );
    }

    #[test]
    fn urls() {
        assert_eq!(url_region(URL).as_deref(), Some("ca-central-1"));
        assert_eq!(
            url_region("https://eu-west-1.queue.amazonaws.com/1/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(url_region("http://127.0.0.1:5000/1/q"), None);
        assert_eq!(
            queue_name("http://127.0.0.1:5000/123456789012/q1"),
            Ok("q1".into())
        );
    }
}
