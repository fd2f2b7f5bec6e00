//! `azure-queue`: scale on an Azure Storage queue's length, as KEDA's
//! `azure_queue_scaler.go`: the queue's approximate message count (`queueLengthStrategy:
//! all`, the default), or with `visibleonly` the messages a peek of 32 sees, falling back to
//! the approximate count when the peek is full. One storage client per account, shared.

use std::time::Duration;

use swell_scaling::naming::metric_name;

use crate::azure_storage::{self as az, Account, Service};
use crate::upstream::UpstreamError;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput};

const QUEUE_NAME: Field = Field::new("queueName");
const QUEUE_LENGTH: Field = Field::new("queueLength");
const ACTIVATION: Field = Field::new("activationQueueLength");
const STRATEGY: Field = Field::new("queueLengthStrategy");

/// Every parameter of its own (the account's are [`az::ACCOUNT_FIELDS`]).
pub const FIELDS: &[Field] = &[QUEUE_NAME, QUEUE_LENGTH, ACTIVATION, STRATEGY];

/// KEDA's `maxPeekMessages`: the most messages one peek returns.
const MAX_PEEK: usize = 32;

pub struct AzureQueueScaler {
    /// `None` only when the connection is known at run time alone (offline `swell check`).
    account: Option<Account>,
    queue: String,
    visible_only: bool,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

/// A whole number of messages (KEDA's int64), at least `min`.
fn count(p: &mut Params<'_>, f: Field, default: i64, min: i64) -> i64 {
    let n = p.or::<i64>(f, "a whole number", default);
    if n < min {
        p.error(
            f.name,
            format!("must be at least {min} (the HPA's target is a positive quantity), got {n}"),
        );
    }
    n
}

impl AzureQueueScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<AzureQueueScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> AzureQueueScaler {
        let queue = p.string(QUEUE_NAME);
        let target = count(p, QUEUE_LENGTH, 5, 1);
        let activation = p.or::<i64>(ACTIVATION, "a whole number", 0);
        let visible_only = p.one_of(STRATEGY, &["all", "visibleonly"], "all") == "visibleonly";
        let account = az::trigger_account(input, p, Service::Queue);
        AzureQueueScaler {
            account,
            metric: metric_name(input.index, &format!("azure-queue-{queue}")),
            queue,
            visible_only,
            target: target as f64,
            activation: activation as f64,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.account.hash(&mut h);
        format!(
            "azure-queue|{:x}|{}|{}",
            h.finish(),
            self.queue,
            self.visible_only
        )
    }

    async fn read(&self) -> Result<f64, UpstreamError> {
        let Some(account) = &self.account else {
            return Err(UpstreamError::new(
                crate::UpstreamKind::Other,
                "azure-queue: the connection is not known",
            ));
        };
        let client = self.shared.azure.get(&self.shared.http, account)?;
        let path = queue_path(&self.queue);
        if self.visible_only {
            let seen = peek(&client, &path).await?;
            // Fewer than a full peek: that is every visible message.
            if seen < MAX_PEEK {
                return Ok(seen as f64);
            }
        }
        approximate_count(&client, &path).await
    }
}

/// The queue's path below the service URL (queue names are lowercase letters, digits, '-').
fn queue_path(queue: &str) -> String {
    az::encode(queue)
}

/// Get Queue Metadata's `x-ms-approximate-messages-count`.
async fn approximate_count(client: &az::StorageClient, path: &str) -> Result<f64, UpstreamError> {
    let resp = client
        .send(
            reqwest::Method::GET,
            path,
            &[("comp", "metadata")],
            &[],
            Vec::new(),
        )
        .await
        .map_err(|e| named(e, "reading the queue's metadata"))?;
    let header = resp
        .headers()
        .get("x-ms-approximate-messages-count")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    header
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| n as f64)
        .ok_or_else(|| {
            UpstreamError::bad_response(format!(
                "azure-queue {}{path}: the answer has no x-ms-approximate-messages-count (got {header:?})",
                client.url()
            ))
        })
}

/// Peek Messages (up to 32): how many messages are visible.
async fn peek(client: &az::StorageClient, path: &str) -> Result<usize, UpstreamError> {
    let max = MAX_PEEK.to_string();
    let resp = client
        .send(
            reqwest::Method::GET,
            &format!("{path}/messages"),
            &[("numofmessages", &max), ("peekonly", "true")],
            &[],
            Vec::new(),
        )
        .await
        .map_err(|e| named(e, "peeking at the queue's messages"))?;
    let body = resp.text().await.map_err(|e| {
        UpstreamError::reqwest(
            &e,
            format!("azure-queue {}{path}: reading the peek: {e}", client.url()),
        )
    })?;
    if !body.contains("<QueueMessagesList") {
        return Err(UpstreamError::bad_response(format!(
            "azure-queue {}{path}: the peek's answer is not a QueueMessagesList",
            client.url()
        )));
    }
    // Message texts are XML-escaped, so the element's tag only appears as a tag.
    Ok(body.matches("<QueueMessage>").count())
}

/// The error, said as the scaler's and what it was doing.
fn named(mut e: UpstreamError, doing: &str) -> UpstreamError {
    e.message = format!("azure-queue: {doing}: {}", e.message);
    e
}

#[async_trait::async_trait]
impl Scaler for AzureQueueScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "azure-queue",
                &self.coalesce_key(),
                self.polling,
                self.activation,
                || self.read(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }
}

#[cfg(test)]
mod tests;
