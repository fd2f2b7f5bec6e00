//! CloudEvents, as KEDA's `pkg/eventemitter`: every event Swell publishes whose reason KEDA
//! maps to a CloudEvent type also goes to the `http` sink of each CloudEventSource (same
//! namespace) and ClusterCloudEventSource (any namespace) whose filter lets it through.
//!
//! Each sink has a bounded queue (KEDA's 1024) drained by its own task, so publishing never
//! waits on a sink: a full queue drops the event and counts it as failed. An event is tried
//! up to 5 times (KEDA's number); Swell waits 0.5 s, 1 s, 2 s, 4 s between tries where KEDA
//! resends at once. Giving up sets the source's `Active` condition False as KEDA does; a
//! later delivery sets it True again (KEDA keeps it False until the source changes).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use swell_api::{
    CloudEventSource, CloudEventSourceSpec, CloudEventSourceStatus, CloudEventType,
    ClusterCloudEventSource, Condition, ConditionStatus, events,
};
use swell_scalers::http::{HttpClientKey, HttpClients};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CloudEventLabels, Metrics};

/// KEDA's `maxRetryTimes`: tries per event and sink.
pub const MAX_ATTEMPTS: u32 = 5;
/// KEDA's `maxChannelBuffer`: events waiting per sink.
pub const QUEUE_CAPACITY: usize = 1024;
/// The `eventsink` label of the only destination Swell delivers to.
const HTTP_SINK: &str = "http";

/// KEDA's Active condition reasons and messages (`apis/eventing/v1alpha1/condition_types.go`).
pub const ACTIVE_REASON: &str = "CloudEventSourceActive";
pub const FAILED_REASON: &str = "CloudEventSourceFailed";
pub const ACTIVE_MESSAGE: &str = "Is configured to send events to the configured destination";
pub const FAILED_MESSAGE: &str = "Failed to send events to the configured destination";

/// How long to wait after the `failed`-th failed try of an event.
pub fn retry_delay(failed: u32) -> Duration {
    Duration::from_millis(500u64 << failed.saturating_sub(1).min(10))
}

/// The CloudEvent type KEDA emits with an event of `reason` about an object of `kind`, or
/// `None` for the events KEDA only records. The kind matters: KEDA's reason for a
/// TriggerAuthentication update is spelt as the cluster kind's.
pub fn cloud_event_type(kind: &str, reason: &str) -> Option<CloudEventType> {
    use CloudEventType as T;
    use events as e;
    let t = match (kind, reason) {
        ("ScaledObject", e::SCALED_OBJECT_READY) => T::ScaledObjectReady,
        ("ScaledObject", e::SCALED_OBJECT_CHECK_FAILED | e::SCALED_OBJECT_UPDATE_FAILED) => {
            T::ScaledObjectFailed
        }
        ("ScaledObject", e::SCALED_OBJECT_DELETED) => T::ScaledObjectRemoved,
        ("ScaledObject", e::SCALED_OBJECT_PAUSED) => T::ScaledObjectPaused,
        ("ScaledObject", e::SCALED_OBJECT_UNPAUSED) => T::ScaledObjectUnpaused,
        ("ScaledJob", e::SCALED_JOB_READY) => T::ScaledJobReady,
        ("ScaledJob", e::SCALED_JOB_CHECK_FAILED | e::SCALED_JOB_UPDATE_FAILED) => {
            T::ScaledJobFailed
        }
        ("ScaledJob", e::SCALED_JOB_DELETED) => T::ScaledJobRemoved,
        ("ScaledJob", e::SCALED_JOB_PAUSED) => T::ScaledJobPaused,
        ("ScaledJob", e::SCALED_JOB_UNPAUSED) => T::ScaledJobUnpaused,
        ("ScaledJob", e::SCALED_JOB_ROLLOUT_CLEANUP_STARTED) => T::ScaledJobRolloutCleanupStarted,
        ("ScaledJob", e::SCALED_JOB_ROLLOUT_CLEANUP_COMPLETED) => {
            T::ScaledJobRolloutCleanupCompleted
        }
        ("ScaledJob", e::SCALED_JOB_ROLLOUT_CLEANUP_FAILED) => T::ScaledJobRolloutCleanupFailed,
        ("TriggerAuthentication", e::TRIGGER_AUTHENTICATION_ADDED) => {
            T::TriggerAuthenticationCreated
        }
        ("TriggerAuthentication", e::TRIGGER_AUTHENTICATION_UPDATED) => {
            T::TriggerAuthenticationUpdated
        }
        ("TriggerAuthentication", e::TRIGGER_AUTHENTICATION_DELETED) => {
            T::TriggerAuthenticationRemoved
        }
        ("ClusterTriggerAuthentication", e::CLUSTER_TRIGGER_AUTHENTICATION_ADDED) => {
            T::ClusterTriggerAuthenticationCreated
        }
        ("ClusterTriggerAuthentication", e::CLUSTER_TRIGGER_AUTHENTICATION_UPDATED) => {
            T::ClusterTriggerAuthenticationUpdated
        }
        ("ClusterTriggerAuthentication", e::CLUSTER_TRIGGER_AUTHENTICATION_DELETED) => {
            T::ClusterTriggerAuthenticationRemoved
        }
        _ => return None,
    };
    Some(t)
}

/// A source: a CloudEventSource's namespace and name, or a ClusterCloudEventSource's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl SourceKey {
    /// A CloudEventSource hears about its own namespace only; a cluster one about all.
    pub fn covers(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "CloudEventSource {ns}/{}", self.name),
            None => write!(f, "ClusterCloudEventSource {}", self.name),
        }
    }
}

/// `eventSubscription`, as KEDA's `EventFilter`: included types only, or all but the
/// excluded ones.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    All,
    Include(Vec<CloudEventType>),
    Exclude(Vec<CloudEventType>),
}

impl Filter {
    pub fn passes(&self, t: &CloudEventType) -> bool {
        match self {
            Filter::All => true,
            Filter::Include(types) => types.contains(t),
            Filter::Exclude(types) => !types.contains(t),
        }
    }
}

/// Where and what a source wants, decided from its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkPlan {
    pub uri: String,
    pub cluster_name: String,
    pub filter: Filter,
}

/// Why a source gets no sink; its message goes to the Active condition.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("destination.http.uri {uri:?} is not an absolute URL: {reason}")]
    Uri { uri: String, reason: String },
}

impl SourceError {
    pub fn category(&self) -> &'static str {
        match self {
            SourceError::Invalid(_) => "invalid",
            SourceError::Unsupported(_) => "unsupported",
            SourceError::Uri { .. } => "uri",
        }
    }
}

/// The sink a source's spec describes, after KEDA's webhook checks.
pub fn plan(spec: &CloudEventSourceSpec, default_cluster: &str) -> Result<SinkPlan, SourceError> {
    spec.validate()
        .map_err(|e| SourceError::Invalid(swell_api::validation::format_errors(&e)))?;
    let uri = spec
        .http_uri()
        .map_err(|e| SourceError::Unsupported(e.to_string()))?;
    check_uri(uri)?;
    let subscription = spec.event_subscription.clone().unwrap_or_default();
    // KEDA's filter looks at non-empty lists only.
    let filter = match (
        subscription.included_event_types.filter(|l| !l.is_empty()),
        subscription.excluded_event_types.filter(|l| !l.is_empty()),
    ) {
        (Some(include), _) => Filter::Include(include),
        (None, Some(exclude)) => Filter::Exclude(exclude),
        (None, None) => Filter::All,
    };
    let cluster_name = spec
        .cluster_name
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| default_cluster.to_string());
    Ok(SinkPlan {
        uri: uri.to_string(),
        cluster_name,
        filter,
    })
}

/// KEDA's `url.ParseRequestURI`, narrowed to what an HTTP client can post to.
fn check_uri(uri: &str) -> Result<(), SourceError> {
    let bad = |reason: &str| SourceError::Uri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("it has no host"));
    }
    if uri.chars().any(char::is_whitespace) {
        return Err(bad("it contains whitespace"));
    }
    Ok(())
}

/// An event Swell published that has a CloudEvent type.
#[derive(Clone, Debug, PartialEq)]
pub struct Occurrence {
    pub type_: CloudEventType,
    /// The object's kind, namespace ("" when cluster-scoped) and name.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    pub time: Timestamp,
}

/// A CloudEvent 1.0 in HTTP binary content mode, as KEDA's cloudevents client sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub subject: String,
    pub type_: String,
    pub time: String,
    pub body: String,
}

/// KEDA's `EmitData`, in its field order.
#[derive(serde::Serialize)]
struct EmitData<'a> {
    reason: &'a str,
    message: &'a str,
}

impl CloudEvent {
    /// KEDA's attributes: source `/<cluster>/<operator namespace>/keda`, subject
    /// `/<cluster>/<namespace>/<kind>/<name>` (lower-cased), data `{reason, message}`.
    pub fn new(o: &Occurrence, cluster: &str, operator_namespace: &str, id: String) -> Self {
        let data = EmitData {
            reason: &o.reason,
            message: &o.message,
        };
        CloudEvent {
            id,
            source: format!("/{cluster}/{operator_namespace}/keda"),
            subject: format!(
                "/{cluster}/{}/{}/{}",
                o.namespace,
                o.kind.to_lowercase(),
                o.name.to_lowercase()
            ),
            type_: o.type_.as_str().to_string(),
            time: o.time.to_string(),
            body: serde_json::to_string(&data).unwrap_or_default(),
        }
    }

    pub fn headers(&self) -> [(&'static str, &str); 7] {
        [
            ("ce-specversion", "1.0"),
            ("ce-id", &self.id),
            ("ce-source", &self.source),
            ("ce-subject", &self.subject),
            ("ce-type", &self.type_),
            ("ce-time", &self.time),
            ("content-type", "application/json"),
        ]
    }
}

/// Why one try to deliver failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Client(#[from] swell_scalers::http::HttpClientError),
    #[error("POST {uri}: {reason}")]
    Send { uri: String, reason: String },
    #[error("POST {uri}: HTTP {code}")]
    Status { uri: String, code: u16 },
}

impl DeliveryError {
    pub fn category(&self) -> &'static str {
        match self {
            DeliveryError::Client(_) => "client",
            DeliveryError::Send { .. } => "connect",
            DeliveryError::Status { .. } => "status",
        }
    }
}

/// A running sink: its plan, queue and delivery task.
struct Sink {
    generation: Option<i64>,
    plan: SinkPlan,
    queue: mpsc::Sender<Occurrence>,
    depth: Arc<AtomicI64>,
    stop: CancellationToken,
}

/// The active sources and their sinks. Empty (and so free) until a source exists.
pub struct Emitter {
    client: Client,
    http: Arc<HttpClients>,
    metrics: Arc<Metrics>,
    /// `--k8s-cluster-name`, for sources without `clusterName`.
    cluster_name: String,
    /// KEDA's namespace in `source` (KEDA_CLUSTER_OBJECT_NAMESPACE or the pod's).
    operator_namespace: String,
    sinks: Mutex<HashMap<SourceKey, Sink>>,
    ids: AtomicU64,
    started: i128,
}

impl Emitter {
    pub fn new(
        client: Client,
        http: Arc<HttpClients>,
        metrics: Arc<Metrics>,
        cluster_name: String,
        operator_namespace: String,
    ) -> Emitter {
        Emitter {
            client,
            http,
            metrics,
            cluster_name,
            operator_namespace,
            sinks: Mutex::default(),
            ids: AtomicU64::new(0),
            started: Timestamp::now().as_nanosecond(),
        }
    }

    /// Queues the CloudEvent for an event just published, on every sink that wants it.
    /// Never waits: a full queue drops the event.
    pub fn emit(&self, kind: &str, namespace: Option<&str>, name: &str, reason: &str, note: &str) {
        let Some(type_) = cloud_event_type(kind, reason) else {
            return;
        };
        let Ok(sinks) = self.sinks.lock() else {
            return;
        };
        if sinks.is_empty() {
            return;
        }
        let o = Occurrence {
            type_,
            kind: kind.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: name.to_string(),
            reason: reason.to_string(),
            message: note.to_string(),
            time: Timestamp::now(),
        };
        for (key, sink) in sinks.iter() {
            if !key.covers(&o.namespace) || !sink.plan.filter.passes(&o.type_) {
                continue;
            }
            match sink.queue.try_send(o.clone()) {
                Ok(()) => {
                    sink.depth.fetch_add(1, Ordering::Relaxed);
                    self.queued(key, 1);
                }
                Err(_) => {
                    tracing::warn!(source = %key, type_ = %o.type_, "CloudEvent queue full: event dropped");
                    self.count(key, &o.namespace, "failed");
                }
            }
        }
    }

    fn queued(&self, key: &SourceKey, delta: i64) {
        let ns = key.namespace.clone().unwrap_or_default();
        self.metrics.cloud_events.queued(&ns).inc_by(delta);
    }

    fn count(&self, key: &SourceKey, namespace: &str, state: &'static str) {
        let labels = CloudEventLabels {
            namespace: namespace.to_string(),
            cloudeventsource: key.name.clone(),
            eventsink: HTTP_SINK,
            state,
        };
        self.metrics
            .cloud_events
            .emitted
            .get_or_create(&labels)
            .inc();
    }

    fn next_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{n}", self.started)
    }

    /// Starts (or restarts, when its spec changed) a source's sink; the Active condition
    /// it should have.
    fn upsert(
        self: &Arc<Self>,
        key: &SourceKey,
        generation: Option<i64>,
        spec: &CloudEventSourceSpec,
    ) -> Condition {
        let planned = plan(spec, &self.cluster_name);
        let Ok(mut sinks) = self.sinks.lock() else {
            return active(true, ACTIVE_MESSAGE);
        };
        if let (Some(s), Ok(p)) = (sinks.get(key), &planned)
            && s.generation == generation
            && s.plan == *p
        {
            return active(true, ACTIVE_MESSAGE);
        }
        if let Some(old) = sinks.remove(key) {
            self.retire(key, old);
        }
        match planned {
            Ok(p) => {
                tracing::info!(source = %key, uri = %p.uri, "CloudEvent sink configured");
                sinks.insert(key.clone(), self.start_sink(key, generation, p));
                active(true, ACTIVE_MESSAGE)
            }
            Err(e) => {
                tracing::warn!(source = %key, error = %e, category = e.category(), "CloudEventSource refused");
                active(false, &e.to_string())
            }
        }
    }

    fn start_sink(self: &Arc<Self>, key: &SourceKey, generation: Option<i64>, p: SinkPlan) -> Sink {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let depth = Arc::new(AtomicI64::new(0));
        let stop = CancellationToken::new();
        let task = SinkTask {
            emitter: self.clone(),
            key: key.clone(),
            plan: p.clone(),
            depth: depth.clone(),
        };
        tokio::spawn(task.run(rx, stop.clone()));
        Sink {
            generation,
            plan: p,
            queue,
            depth,
            stop,
        }
    }

    /// Stops a sink; what it still held leaves the queue gauge.
    fn retire(&self, key: &SourceKey, sink: Sink) {
        sink.stop.cancel();
        let left = sink.depth.swap(0, Ordering::Relaxed);
        self.queued(key, -left);
    }

    fn remove(&self, key: &SourceKey) {
        let old = self.sinks.lock().ok().and_then(|mut s| s.remove(key));
        if let Some(old) = old {
            tracing::info!(source = %key, "CloudEvent sink removed");
            self.retire(key, old);
        }
    }

    /// Removes the sinks of one kind (`cluster`) not in `keep` (after a relist).
    fn retain(&self, cluster: bool, keep: &HashSet<SourceKey>) {
        let gone: Vec<SourceKey> = match self.sinks.lock() {
            Ok(s) => s
                .keys()
                .filter(|k| k.namespace.is_none() == cluster && !keep.contains(*k))
                .cloned()
                .collect(),
            Err(_) => return,
        };
        gone.iter().for_each(|k| self.remove(k));
    }

    /// Stops every sink (leadership or the process ended).
    pub fn clear(&self) {
        let all: Vec<(SourceKey, Sink)> = match self.sinks.lock() {
            Ok(mut s) => s.drain().collect(),
            Err(_) => return,
        };
        for (k, s) in all {
            self.retire(&k, s);
        }
    }
}

fn active(ok: bool, message: &str) -> Condition {
    let (status, reason) = if ok {
        (ConditionStatus::True, ACTIVE_REASON)
    } else {
        (ConditionStatus::False, FAILED_REASON)
    };
    Condition::new(swell_api::conditions::ACTIVE, status, reason, message)
}

/// One sink's delivery loop.
struct SinkTask {
    emitter: Arc<Emitter>,
    key: SourceKey,
    plan: SinkPlan,
    depth: Arc<AtomicI64>,
}

impl SinkTask {
    async fn run(self, mut rx: mpsc::Receiver<Occurrence>, stop: CancellationToken) {
        let mut delivering = true;
        loop {
            let o = tokio::select! {
                _ = stop.cancelled() => return,
                o = rx.recv() => match o { Some(o) => o, None => return },
            };
            self.depth.fetch_sub(1, Ordering::Relaxed);
            self.emitter.queued(&self.key, -1);
            let id = self.emitter.next_id();
            let event = CloudEvent::new(
                &o,
                &self.plan.cluster_name,
                &self.emitter.operator_namespace,
                id,
            );
            let Some(ok) = self.deliver(&event, &o.namespace, &stop).await else {
                return;
            };
            if ok != delivering {
                delivering = ok;
                let message = if ok { ACTIVE_MESSAGE } else { FAILED_MESSAGE };
                write_active(&self.emitter.client, &self.key, active(ok, message)).await;
            }
        }
    }

    /// Tries up to [`MAX_ATTEMPTS`] times; whether it got through (`None`: stopped).
    async fn deliver(
        &self,
        event: &CloudEvent,
        namespace: &str,
        stop: &CancellationToken,
    ) -> Option<bool> {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.send(event).await {
                Ok(()) => {
                    self.emitter.count(&self.key, namespace, "emitted");
                    return Some(true);
                }
                Err(e) => {
                    self.emitter.count(&self.key, namespace, "failed");
                    tracing::warn!(source = %self.key, type_ = %event.type_, attempt, error = %e, category = e.category(), "delivering CloudEvent");
                }
            }
            if attempt < MAX_ATTEMPTS {
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(retry_delay(attempt)) => {}
                }
            }
        }
        tracing::error!(source = %self.key, type_ = %event.type_, "CloudEvent dropped after {MAX_ATTEMPTS} tries");
        Some(false)
    }

    async fn send(&self, event: &CloudEvent) -> Result<(), DeliveryError> {
        let client = self.emitter.http.get(&HttpClientKey::default())?;
        let mut request = client.post(&self.plan.uri);
        for (name, value) in event.headers() {
            request = request.header(name, value);
        }
        let uri = self.plan.uri.clone();
        let response =
            request
                .body(event.body.clone())
                .send()
                .await
                .map_err(|e| DeliveryError::Send {
                    uri: uri.clone(),
                    reason: e.to_string(),
                })?;
        let code = response.status().as_u16();
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(DeliveryError::Status { uri, code })
        }
    }
}

/// Sets the source's Active condition (KEDA's only one) when it differs.
async fn write_active(client: &Client, key: &SourceKey, condition: Condition) {
    let patch = serde_json::json!({ "status": { "conditions": [condition] } });
    let params = PatchParams::default();
    let result = match &key.namespace {
        Some(ns) => Api::<CloudEventSource>::namespaced(client.clone(), ns)
            .patch_status(&key.name, &params, &Patch::Merge(&patch))
            .await
            .map(drop),
        None => Api::<ClusterCloudEventSource>::all(client.clone())
            .patch_status(&key.name, &params, &Patch::Merge(&patch))
            .await
            .map(drop),
    };
    if let Err(e) = result {
        tracing::warn!(source = %key, error = %crate::kube_message(&e), "writing CloudEventSource status");
    }
}

/// One source as both kinds' watches report it.
struct Seen<'a> {
    key: SourceKey,
    generation: Option<i64>,
    spec: &'a CloudEventSourceSpec,
    status: Option<&'a CloudEventSourceStatus>,
}

impl<'a> From<&'a CloudEventSource> for Seen<'a> {
    fn from(s: &'a CloudEventSource) -> Self {
        Seen {
            key: SourceKey {
                namespace: Some(s.namespace().unwrap_or_default()),
                name: s.name_any(),
            },
            generation: s.metadata.generation,
            spec: &s.spec,
            status: s.status.as_ref(),
        }
    }
}

impl<'a> From<&'a ClusterCloudEventSource> for Seen<'a> {
    fn from(s: &'a ClusterCloudEventSource) -> Self {
        Seen {
            key: SourceKey {
                namespace: None,
                name: s.name_any(),
            },
            generation: s.metadata.generation,
            spec: &s.spec.0,
            status: s.status.as_ref(),
        }
    }
}

/// Applies a source's spec and writes its Active condition when that changed.
async fn apply(emitter: &Arc<Emitter>, seen: Seen<'_>) {
    let want = emitter.upsert(&seen.key, seen.generation, seen.spec);
    let current = seen.status.and_then(|s| {
        swell_api::status::find_condition(s.conditions.as_deref(), swell_api::conditions::ACTIVE)
    });
    // A sink that gave up keeps its False until it delivers again.
    let keep = current.is_some_and(|c| c.is_false() && c.reason.as_deref() == Some(FAILED_REASON))
        && want.is_true()
        && current.and_then(|c| c.message.as_deref()) == Some(FAILED_MESSAGE);
    if current != Some(&want) && !keep {
        write_active(&emitter.client, &seen.key, want).await;
    }
}

/// Follows one kind's watch until it ends: sinks for what exists, none for what is gone.
async fn follow<K>(
    emitter: Arc<Emitter>,
    cluster: bool,
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) where
    for<'a> Seen<'a>: From<&'a K>,
{
    let mut listed: HashSet<SourceKey> = HashSet::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(obj)) => apply(&emitter, Seen::from(&obj)).await,
            Ok(watcher::Event::InitApply(obj)) => {
                let seen = Seen::from(&obj);
                listed.insert(seen.key.clone());
                apply(&emitter, seen).await;
            }
            Ok(watcher::Event::Delete(obj)) => emitter.remove(&Seen::from(&obj).key),
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitDone) => emitter.retain(cluster, &listed),
            Err(e) => tracing::warn!(error = %e, cluster, "watching CloudEventSources"),
        }
    }
}

/// Watches CloudEventSources (in the watched namespace) and ClusterCloudEventSources until
/// `shutdown`; only the leader runs it, so only the leader delivers.
pub async fn run(emitter: Arc<Emitter>, namespace: Option<String>, shutdown: CancellationToken) {
    let client = emitter.client.clone();
    let sources = crate::watch::all_events(crate::watch::scoped::<CloudEventSource>(
        &client,
        namespace.as_deref(),
    ));
    let cluster_sources =
        crate::watch::all_events(Api::<ClusterCloudEventSource>::all(client.clone()));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = follow(emitter.clone(), false, sources) => {}
        _ = follow(emitter.clone(), true, cluster_sources) => {}
    }
    emitter.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keda_reason_to_type() {
        use CloudEventType as T;
        let cases = [
            (
                "ScaledObject",
                "ScaledObjectReady",
                Some(T::ScaledObjectReady),
            ),
            (
                "ScaledObject",
                "ScaledObjectCheckFailed",
                Some(T::ScaledObjectFailed),
            ),
            (
                "ScaledObject",
                "ScaledObjectUpdateFailed",
                Some(T::ScaledObjectFailed),
            ),
            (
                "ScaledObject",
                "ScaledObjectDeleted",
                Some(T::ScaledObjectRemoved),
            ),
            (
                "ScaledObject",
                "ScaledObjectPaused",
                Some(T::ScaledObjectPaused),
            ),
            (
                "ScaledObject",
                "ScaledObjectUnpaused",
                Some(T::ScaledObjectUnpaused),
            ),
            ("ScaledObject", "KEDAScaleTargetActivated", None),
            ("ScaledObject", "KEDAScalerFailed", None),
            ("ScaledJob", "ScaledJobReady", Some(T::ScaledJobReady)),
            (
                "ScaledJob",
                "ScaledJobCheckFailed",
                Some(T::ScaledJobFailed),
            ),
            (
                "ScaledJob",
                "ScaledJobUpdateFailed",
                Some(T::ScaledJobFailed),
            ),
            ("ScaledJob", "ScaledJobDeleted", Some(T::ScaledJobRemoved)),
            ("ScaledJob", "ScaledJobPaused", Some(T::ScaledJobPaused)),
            ("ScaledJob", "ScaledJobUnpaused", Some(T::ScaledJobUnpaused)),
            (
                "ScaledJob",
                "ScaledJobRolloutCleanupStarted",
                Some(T::ScaledJobRolloutCleanupStarted),
            ),
            (
                "ScaledJob",
                "ScaledJobRolloutCleanupCompleted",
                Some(T::ScaledJobRolloutCleanupCompleted),
            ),
            (
                "ScaledJob",
                "ScaledJobRolloutCleanupFailed",
                Some(T::ScaledJobRolloutCleanupFailed),
            ),
            ("ScaledJob", "KEDAJobsCreated", None),
            ("ScaledJob", "ScaledObjectReady", None),
            (
                "TriggerAuthentication",
                "TriggerAuthenticationAdded",
                Some(T::TriggerAuthenticationCreated),
            ),
            // KEDA's namespaced update reason carries the cluster kind's spelling.
            (
                "TriggerAuthentication",
                "ClusterTriggerAuthenticationUpdated",
                Some(T::TriggerAuthenticationUpdated),
            ),
            (
                "TriggerAuthentication",
                "TriggerAuthenticationDeleted",
                Some(T::TriggerAuthenticationRemoved),
            ),
            (
                "ClusterTriggerAuthentication",
                "ClusterTriggerAuthenticationAdded",
                Some(T::ClusterTriggerAuthenticationCreated),
            ),
            (
                "ClusterTriggerAuthentication",
                "ClusterTriggerAuthenticationUpdated",
                Some(T::ClusterTriggerAuthenticationUpdated),
            ),
            (
                "ClusterTriggerAuthentication",
                "ClusterTriggerAuthenticationDeleted",
                Some(T::ClusterTriggerAuthenticationRemoved),
            ),
            ("TriggerAuthentication", "TriggerAuthenticationFailed", None),
        ];
        for (kind, reason, want) in cases {
            assert_eq!(cloud_event_type(kind, reason), want, "{kind} {reason}");
        }
    }

    fn spec(v: serde_json::Value) -> CloudEventSourceSpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn filters_as_keda() {
        use CloudEventType as T;
        let http = serde_json::json!({"http": {"uri": "http://sink:8080/x"}});
        let cases = [
            (serde_json::json!(null), T::ScaledObjectReady, true),
            (
                serde_json::json!({"includedEventTypes": ["keda.scaledobject.ready.v1"]}),
                T::ScaledObjectReady,
                true,
            ),
            (
                serde_json::json!({"includedEventTypes": ["keda.scaledobject.ready.v1"]}),
                T::ScaledObjectFailed,
                false,
            ),
            (
                serde_json::json!({"excludedEventTypes": ["keda.scaledobject.failed.v1"]}),
                T::ScaledObjectFailed,
                false,
            ),
            (
                serde_json::json!({"excludedEventTypes": ["keda.scaledobject.failed.v1"]}),
                T::ScaledJobFailed,
                true,
            ),
            // An empty list filters nothing (KEDA checks len > 0).
            (
                serde_json::json!({"includedEventTypes": []}),
                T::ScaledJobReady,
                true,
            ),
        ];
        for (subscription, t, want) in cases {
            let s =
                spec(serde_json::json!({"destination": http, "eventSubscription": subscription}));
            let p = plan(&s, "kubernetes-default").expect("plans");
            assert_eq!(p.filter.passes(&t), want, "{subscription} {t}");
        }
    }

    #[test]
    fn plans_refuse_what_swell_cannot_deliver() {
        let cases = [
            (serde_json::json!({"http": {"uri": "http://sink/x"}}), None),
            (
                serde_json::json!({"azureEventGridTopic": {"endpoint": "https://t"}}),
                Some("unsupported"),
            ),
            (serde_json::json!({"http": {"uri": "sink/x"}}), Some("uri")),
            (
                serde_json::json!({"http": {"uri": "http:///x"}}),
                Some("uri"),
            ),
            (
                serde_json::json!({"http": {"uri": ""}}),
                Some("unsupported"),
            ),
        ];
        for (destination, want) in cases {
            let got = plan(&spec(serde_json::json!({"destination": destination})), "c");
            assert_eq!(
                got.as_ref().err().map(SourceError::category),
                want,
                "{destination}"
            );
        }
        let both = spec(serde_json::json!({
            "destination": {"http": {"uri": "http://sink"}},
            "eventSubscription": {"includedEventTypes": [], "excludedEventTypes": []}
        }));
        let e = plan(&both, "c")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("included types and excluded types at the same time"),
            "{e}"
        );
    }

    #[test]
    fn cluster_name_defaults_to_the_operators() {
        let s = spec(serde_json::json!({"destination": {"http": {"uri": "http://s"}}}));
        assert_eq!(
            plan(&s, "kubernetes-default")
                .map(|p| p.cluster_name)
                .ok()
                .as_deref(),
            Some("kubernetes-default")
        );
        let s = spec(
            serde_json::json!({"clusterName": "prod", "destination": {"http": {"uri": "http://s"}}}),
        );
        assert_eq!(
            plan(&s, "kubernetes-default")
                .map(|p| p.cluster_name)
                .ok()
                .as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn sources_cover_their_namespace_or_all() {
        let ns = SourceKey {
            namespace: Some("a".into()),
            name: "s".into(),
        };
        let cluster = SourceKey {
            namespace: None,
            name: "s".into(),
        };
        assert!(ns.covers("a") && !ns.covers("b") && !ns.covers(""));
        assert!(cluster.covers("a") && cluster.covers("b") && cluster.covers(""));
    }

    #[test]
    fn cloud_event_has_kedas_attributes() {
        let o = Occurrence {
            type_: CloudEventType::ScaledObjectReady,
            kind: "ScaledObject".into(),
            namespace: "apps".into(),
            name: "My-App".into(),
            reason: "ScaledObjectReady".into(),
            message: "ScaledObject is ready for scaling".into(),
            time: Timestamp::UNIX_EPOCH,
        };
        let e = CloudEvent::new(&o, "prod", "keda", "1".into());
        assert_eq!(e.source, "/prod/keda/keda");
        assert_eq!(e.subject, "/prod/apps/scaledobject/my-app");
        assert_eq!(e.type_, "keda.scaledobject.ready.v1");
        assert_eq!(e.time, "1970-01-01T00:00:00Z");
        assert_eq!(
            e.body,
            r#"{"reason":"ScaledObjectReady","message":"ScaledObject is ready for scaling"}"#
        );
        let h = e.headers();
        assert!(
            h.contains(&("ce-specversion", "1.0"))
                && h.contains(&("content-type", "application/json"))
        );
    }

    #[test]
    fn retries_back_off() {
        let delays: Vec<u128> = (1..MAX_ATTEMPTS)
            .map(|a| retry_delay(a).as_millis())
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000]);
    }
}
