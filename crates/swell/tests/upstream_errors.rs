//! Upstream failures keep their structure from the SDK call to the scaler's error: each AWS
//! scaler family, read by the scaler itself against the local AWS (moto with IAM enforced),
//! reports the service's error code, the HTTP status and its category, and a message that
//! names the permission and never the secret key.

#![allow(clippy::unwrap_used)]

use swell_scalers::upstream::{Code, UpstreamKind};
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput};
use swell_testkit::{Aws, AwsKeys, unique_suffix};

/// Trigger 0 of `type_` with `metadata`, reading with static `keys`.
fn input(type_: &str, metadata: &[(&str, &str)], keys: &AwsKeys) -> TriggerInput {
    let auth = [
        ("awsAccessKeyID", keys.access_key_id.as_str()),
        ("awsSecretAccessKey", keys.secret_access_key.as_str()),
    ];
    TriggerInput {
        type_: type_.into(),
        namespace: "ns".into(),
        scaled_object: "so".into(),
        params: RawParams {
            metadata: swell_scalers::map(metadata),
            auth: swell_scalers::map(&auth),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The error of one reading of `input`'s scaler.
async fn sample_error(input: &TriggerInput) -> ScalerError {
    let scaler = swell_scalers::build(input, &Shared::default()).unwrap();
    match scaler.sample().await {
        Ok(s) => panic!("the reading succeeded: {s:?}"),
        Err(e) => e,
    }
}

/// `e` is an upstream `kind` with the AWS code `code`, said with `said` and without `secret`.
fn assert_upstream(e: &ScalerError, kind: UpstreamKind, code: &str, said: &str, secret: &str) {
    let u = e
        .upstream()
        .unwrap_or_else(|| panic!("not upstream: {e:?}"));
    assert_eq!(u.kind, kind, "{e}");
    assert_eq!(e.category(), kind.category(), "{e}");
    assert_eq!(e.reason(), "KEDAScalerFailed");
    assert_eq!(u.code, Some(Code::Aws(code.into())), "{e}");
    assert!(u.status.is_some_and(|s| s >= 400), "{u:?}");
    let text = e.to_string();
    assert!(text.contains(said), "{text}");
    assert!(
        !text.contains(secret),
        "the secret key is in the message: {text}"
    );
    eprintln!("{}: {text}", e.category());
}

/// An IAM user without any permission.
async fn denied_user(aws: &Aws) -> AwsKeys {
    let name = format!("denied-{}", unique_suffix());
    aws.create_user(&name, None).await.unwrap()
}

#[tokio::test]
async fn sqs_access_denied_and_missing_queue_keep_their_code() {
    let aws = Aws::shared();
    let queue = format!("upstream-{}", unique_suffix());
    let url = aws.create_queue(&queue).await.unwrap();
    let keys = denied_user(aws).await;
    let meta = [
        ("queueURL", url.as_str()),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
    ];
    let e = sample_error(&input("aws-sqs-queue", &meta, &keys)).await;
    assert_upstream(
        &e,
        UpstreamKind::Auth,
        "AccessDenied",
        "lacks sqs:GetQueueAttributes",
        &keys.secret_access_key,
    );

    let missing = url.replace(&queue, "does-not-exist");
    let meta = [
        ("queueURL", missing.as_str()),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
    ];
    let e = sample_error(&input("aws-sqs-queue", &meta, &aws.admin)).await;
    assert_upstream(
        &e,
        UpstreamKind::NotFound,
        "AWS.SimpleQueueService.NonExistentQueue",
        "does-not-exist does not exist; check queueURL",
        &aws.admin.secret_access_key,
    );
}

#[tokio::test]
async fn cloudwatch_access_denied_keeps_its_code() {
    let aws = Aws::shared();
    let keys = denied_user(aws).await;
    let meta = [
        ("namespace", "Swell/Test"),
        ("metricName", "QueueDepth"),
        ("dimensionName", "QueueName"),
        ("dimensionValue", "x"),
        ("targetMetricValue", "2"),
        ("minMetricValue", "0"),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
    ];
    let e = sample_error(&input("aws-cloudwatch", &meta, &keys)).await;
    assert_upstream(
        &e,
        UpstreamKind::Auth,
        "AccessDenied",
        "lacks cloudwatch:GetMetricData",
        &keys.secret_access_key,
    );
}

#[tokio::test]
async fn dynamodb_access_denied_keeps_its_code() {
    let aws = Aws::shared();
    let keys = denied_user(aws).await;
    let meta = [
        ("tableName", "Orders"),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
        ("keyConditionExpression", "#q = :q"),
        ("expressionAttributeNames", r##"{"#q": "queue"}"##),
        ("expressionAttributeValues", r#"{":q": {"S": "work"}}"#),
        ("targetValue", "2"),
    ];
    let e = sample_error(&input("aws-dynamodb", &meta, &keys)).await;
    assert_upstream(
        &e,
        UpstreamKind::Auth,
        "AccessDeniedException",
        "lacks dynamodb:Query",
        &keys.secret_access_key,
    );
}

#[tokio::test]
async fn kinesis_access_denied_keeps_its_code() {
    let aws = Aws::shared();
    let keys = denied_user(aws).await;
    let meta = [
        ("streamName", "Clicks"),
        ("shardCount", "1"),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
    ];
    let e = sample_error(&input("aws-kinesis-stream", &meta, &keys)).await;
    assert_upstream(
        &e,
        UpstreamKind::Auth,
        "AccessDeniedException",
        "lacks kinesis:DescribeStreamSummary",
        &keys.secret_access_key,
    );
}

#[tokio::test]
async fn dynamodb_streams_access_denied_keeps_its_code() {
    let aws = Aws::shared();
    let keys = denied_user(aws).await;
    let meta = [
        ("tableName", "Events"),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", aws.endpoint.as_str()),
    ];
    let e = sample_error(&input("aws-dynamodb-streams", &meta, &keys)).await;
    assert_upstream(
        &e,
        UpstreamKind::Auth,
        "AccessDeniedException",
        "lacks dynamodb:DescribeTable",
        &keys.secret_access_key,
    );
}

/// A port nobody listens on: no answer at all is a connection failure, without a code.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_connection_failure() {
    let aws = Aws::shared();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let meta = [
        (
            "queueURL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        ),
        ("awsRegion", aws.region.as_str()),
        ("awsEndpoint", closed.as_str()),
    ];
    let e = sample_error(&input("aws-sqs-queue", &meta, &aws.admin)).await;
    let u = e.upstream().unwrap();
    assert_eq!(
        (u.kind, &u.code, u.status),
        (UpstreamKind::Connect, &None, None),
        "{e}"
    );
    assert_eq!(e.category(), "connect");
}

/// Prometheus refuses a query it cannot parse with HTTP 400: the status is kept, and the
/// message is KEDA's.
#[tokio::test]
async fn prometheus_keeps_the_http_status() {
    let prom = swell_testkit::Prometheus::shared();
    let meta = [
        ("serverAddress", prom.url.as_str()),
        ("query", "sum(("),
        ("threshold", "1"),
    ];
    let input = TriggerInput {
        type_: "prometheus".into(),
        params: RawParams {
            metadata: swell_scalers::map(&meta),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = sample_error(&input).await;
    let u = e.upstream().unwrap();
    assert_eq!((u.kind, u.status), (UpstreamKind::Other, Some(400)), "{e}");
    assert_eq!(e.category(), "upstream");
    assert_eq!(
        e.to_string(),
        "prometheus query api returned error. status: 400"
    );
}
