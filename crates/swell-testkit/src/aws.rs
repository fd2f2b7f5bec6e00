use std::sync::OnceLock;

use anyhow::Context as _;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde_json::Value;

/// Access keys of an IAM user, or temporary keys of an assumed role.
#[derive(Clone, Debug)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The local AWS of this test run (moto with IAM enforced, see `hack/aws.sh`).
#[derive(Debug)]
pub struct Aws {
    pub endpoint: String,
    pub region: String,
    pub account_id: String,
    /// moto's request recording (`hack/aws.sh` turns the recorder on).
    pub recording: std::path::PathBuf,
    /// An IAM user allowed everything, for test set-up while IAM is enforced.
    pub admin: AwsKeys,
}

static SHARED: OnceLock<Aws> = OnceLock::new();

impl Aws {
    /// The local AWS named by `SWELL_AWS_ENDPOINT`, or one started now for this process.
    pub fn shared() -> &'static Aws {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("aws.sh", &["--enforce"], "AWS", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Aws> {
        Ok(Aws {
            endpoint: get("SWELL_AWS_ENDPOINT")?,
            region: get("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            account_id: get("MOTO_ACCOUNT_ID").unwrap_or_else(|_| "123456789012".into()),
            recording: std::path::Path::new(&get("SWELL_AWS_DIR")?).join("requests.jsonl"),
            admin: AwsKeys {
                access_key_id: get("SWELL_AWS_ADMIN_ACCESS_KEY_ID")?,
                secret_access_key: get("SWELL_AWS_ADMIN_SECRET_ACCESS_KEY")?,
                session_token: None,
            },
        })
    }

    /// Every request moto has received so far, in order.
    pub fn requests(&self) -> anyhow::Result<Vec<Request>> {
        let text = std::fs::read_to_string(&self.recording)
            .with_context(|| format!("reading moto's recording {}", self.recording.display()))?;
        text.lines().map(Request::parse).collect()
    }

    /// How many requests moto has received for `action` (e.g. `AssumeRole`, `GetQueueAttributes`)
    /// with parameter `param` equal to `value` (e.g. `RoleArn`, `QueueUrl`).
    pub fn count(&self, action: &str, param: &str, value: &str) -> anyhow::Result<usize> {
        Ok(self
            .requests()?
            .iter()
            .filter(|r| r.action == action && r.param(param) == Some(value))
            .count())
    }

    /// Makes moto answer every request signed with `keys` with `Throttling` (`on`), or stop
    /// (hack/moto_launcher.py's throttling layer). Returns how many it has refused so far.
    pub async fn throttle(&self, keys: &AwsKeys, on: Option<bool>) -> anyhow::Result<usize> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = self
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let (method, on) = match on {
            Some(true) => ("POST", "&on=1"),
            Some(false) => ("POST", "&on=0"),
            None => ("GET", ""),
        };
        let mut tcp = tokio::net::TcpStream::connect(host).await?;
        let request = format!(
            "{method} /_swell/throttle?key={}{on} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n",
            keys.access_key_id
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await?;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        body.trim()
            .parse()
            .with_context(|| format!("moto's throttling layer answered {answer:?}"))
    }

    /// SDK configuration for the given keys against the local endpoint.
    pub fn config(&self, keys: &AwsKeys) -> SdkConfig {
        let creds = Credentials::new(
            &keys.access_key_id,
            &keys.secret_access_key,
            keys.session_token.clone(),
            None,
            "swell-testkit",
        );
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
            )
            .build()
    }

    pub fn sqs(&self, keys: &AwsKeys) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config(keys))
    }

    /// An SQS client for another region (moto keeps queues per region, like AWS).
    pub fn sqs_in(&self, keys: &AwsKeys, region: &str) -> aws_sdk_sqs::Client {
        let conf = self
            .config(keys)
            .into_builder()
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_sqs::Client::new(&conf)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config(&self.admin))
    }

    pub fn sts(&self, keys: &AwsKeys) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config(keys))
    }

    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.account_id)
    }

    pub fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account_id)
    }

    pub fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account_id)
    }

    /// Creates an IAM user with an optional inline policy and returns its access keys.
    pub async fn create_user(&self, name: &str, policy: Option<Value>) -> anyhow::Result<AwsKeys> {
        let iam = self.iam();
        iam.create_user()
            .user_name(name)
            .send()
            .await
            .context("CreateUser")?;
        if let Some(doc) = policy {
            iam.put_user_policy()
                .user_name(name)
                .policy_name(format!("{name}-policy"))
                .policy_document(doc.to_string())
                .send()
                .await
                .context("PutUserPolicy")?;
        }
        let key = iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .context("CreateAccessKey")?
            .access_key
            .context("CreateAccessKey returned no key")?;
        Ok(AwsKeys {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            session_token: None,
        })
    }

    /// Creates a role with a trust policy and an optional inline permission policy.
    pub async fn create_role(
        &self,
        name: &str,
        trust: Value,
        policy: Option<Value>,
    ) -> anyhow::Result<String> {
        let iam = self.iam();
        let role = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .context("CreateRole")?
            .role
            .context("CreateRole returned no role")?;
        if let Some(doc) = policy {
            self.put_role_policy(name, &format!("{name}-policy"), doc)
                .await?;
        }
        Ok(role.arn)
    }

    pub async fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        doc: Value,
    ) -> anyhow::Result<()> {
        self.iam()
            .put_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .policy_document(doc.to_string())
            .send()
            .await
            .context("PutRolePolicy")?;
        Ok(())
    }

    /// Creates an SQS queue (as the admin user) and returns its URL.
    pub async fn create_queue(&self, name: &str) -> anyhow::Result<String> {
        self.sqs(&self.admin)
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .context("CreateQueue")?
            .queue_url
            .context("CreateQueue returned no URL")
    }
}

/// An identity policy document allowing `actions` on `resource`.
pub fn allow(actions: &[&str], resource: &str) -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]
    })
}

/// A trust policy letting the given AWS principal ARNs assume a role.
pub fn trust(principals: &[&str]) -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}]
    })
}

/// One request moto received: its action and parameters, whichever protocol carried them
/// (the query protocol's form body, or a JSON body named by `X-Amz-Target`).
#[derive(Clone, Debug)]
pub struct Request {
    pub action: String,
    pub params: serde_json::Map<String, Value>,
    /// The access key the request was signed with (from its Authorization header).
    pub access_key: Option<String>,
}

impl Request {
    fn parse(line: &str) -> anyhow::Result<Request> {
        use base64::Engine as _;
        let entry: Value = serde_json::from_str(line).context("a line of moto's recording")?;
        let body = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .context("a recorded body")?
        } else {
            body.as_bytes().to_vec()
        };
        let header = |name: &str| {
            entry["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
        };
        let access_key = header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(str::to_string);
        let target = header("x-amz-target");
        Ok(match target {
            // JSON protocols: `AmazonSQS.GetQueueAttributes` and a JSON object.
            Some(t) => Request {
                action: t.rsplit('.').next().unwrap_or(t).to_string(),
                params: serde_json::from_slice(&body).unwrap_or_default(),
                access_key,
            },
            None => {
                let params: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                let action = params
                    .get("Action")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Request {
                    action,
                    params,
                    access_key,
                }
            }
        })
    }

    /// A top-level parameter's value, when it is a string.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }
}
