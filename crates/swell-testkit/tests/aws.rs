//! Proves local AWS is real: SQS counts messages, and with IAM enforced an identity without
//! `sqs:GetQueueAttributes` is denied while one with it succeeds.

#![allow(clippy::unwrap_used)]

use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use aws_sdk_sqs::types::QueueAttributeName;
use swell_testkit::{Aws, AwsKeys, allow, trust, unique_suffix};

async fn queue_length(aws: &Aws, keys: &AwsKeys, url: &str) -> Result<i64, (String, String)> {
    let out = aws
        .sqs(keys)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| {
            let e = e.into_service_error();
            (
                e.code().unwrap_or("?").to_string(),
                e.message().unwrap_or("").to_string(),
            )
        })?;
    let n = out
        .attributes
        .unwrap_or_default()
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .cloned()
        .unwrap_or_default();
    Ok(n.parse().unwrap_or(-1))
}

#[tokio::test]
async fn sqs_counts_messages() {
    let aws = Aws::shared();
    let name = format!("count-{}", unique_suffix());
    let url = aws.create_queue(&name).await.unwrap();
    let sqs = aws.sqs(&aws.admin);
    for i in 0..3 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(queue_length(aws, &aws.admin, &url).await, Ok(3));
}

async fn assume(aws: &Aws, keys: &AwsKeys, role_arn: &str) -> AwsKeys {
    let c = aws
        .sts(keys)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("harness")
        .send()
        .await
        .unwrap_or_else(|e| panic!("AssumeRole {role_arn}: {:?}", e.into_service_error()))
        .credentials
        .expect("AssumeRole returns credentials");
    AwsKeys {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.session_token),
    }
}

#[tokio::test]
async fn iam_is_enforced_for_assumed_roles() {
    let aws = Aws::shared();
    let s = unique_suffix();
    let queue = format!("guarded-{s}");
    let url = aws.create_queue(&queue).await.unwrap();
    aws.sqs(&aws.admin)
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .send()
        .await
        .unwrap();

    let caller = format!("caller-{s}");
    let keys = aws
        .create_user(&caller, Some(allow(&["sts:AssumeRole"], "*")))
        .await
        .unwrap();
    let caller_arn = aws.user_arn(&caller);
    let without = aws
        .create_role(&format!("without-{s}"), trust(&[&caller_arn]), None)
        .await
        .unwrap();
    let with = aws
        .create_role(
            &format!("with-{s}"),
            trust(&[&caller_arn]),
            Some(allow(&["sqs:GetQueueAttributes"], &aws.queue_arn(&queue))),
        )
        .await
        .unwrap();

    let denied = assume(aws, &keys, &without).await;
    let (code, message) = queue_length(aws, &denied, &url)
        .await
        .expect_err("role without the permission is denied");
    assert_eq!(code, "AccessDenied", "{message}");
    assert!(message.contains("sqs:GetQueueAttributes"), "{message}");

    let allowed = assume(aws, &keys, &with).await;
    assert_eq!(queue_length(aws, &allowed, &url).await, Ok(1));

    // A user not named in the trust policy cannot assume the role at all.
    let stranger = aws
        .create_user(
            &format!("stranger-{s}"),
            Some(allow(&["sts:AssumeRole"], "*")),
        )
        .await
        .unwrap();
    let err = aws
        .sts(&stranger)
        .assume_role()
        .role_arn(&with)
        .role_session_name("x")
        .send()
        .await
        .expect_err("not trusted");
    assert_eq!(err.into_service_error().code(), Some("AccessDenied"));
}
