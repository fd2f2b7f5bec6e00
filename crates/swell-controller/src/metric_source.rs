//! Metric values for the external metrics API, from the same per-ScaledObject state the
//! scale loop uses: the last polled value with `useCachedMetrics`, otherwise one live query
//! per request, with concurrent identical requests sharing it; fallback applied as KEDA does.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use swell_api::{ScaledObject, events};
use swell_scalers::{MetricSpec, MetricType};
use swell_scaling::fallback::{FallbackBehavior, Health, fallback_metric_value, fallback_replicas};

use crate::composite::{COMPOSITE_METRIC_NAME, Composite, Source, composite_fallback, source};
use crate::context::Ctx;
use crate::loop_state::{LoopState, Reading};
use crate::triggers::TriggerRuntime;

#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricQueryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The ScaledObject an HPA's label selector names, read as KEDA's metrics adapter reads it
/// (`labels.ConvertSelectorToLabelsMap`): comma-separated `key=value` terms, the value of
/// `scaledobject.keda.sh/name` required, other labels ignored. `key==value` is accepted too
/// (the same equality in the selector grammar; KEDA's conversion refuses it by accident).
/// Set-based terms (`in`, `!=`, `!key`) name no single object and are refused.
pub fn scaled_object_from_selector(selector: &str) -> Result<&str, MetricQueryError> {
    const KEY: &str = swell_api::annotations::labels::SCALED_OBJECT_NAME;
    let mut name = None;
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, v)| !k.ends_with('!') && !v.contains('='))
            .ok_or_else(|| {
                MetricQueryError::BadRequest(format!(
                    "labelSelector term {term:?} is not key=value; Swell, like KEDA, reads only \
                     equality terms ({KEY}=<name>)"
                ))
            })?;
        if k.trim() == KEY {
            name = Some(v.trim());
        }
    }
    name.filter(|n| !n.is_empty()).ok_or_else(|| {
        MetricQueryError::BadRequest(format!(
            "labelSelector {selector:?} must name the ScaledObject ({KEY}=<name>)"
        ))
    })
}

/// Metric names compare as KEDA compares them (`strings.EqualFold`): the HPA controller's
/// external metrics client lowercases the name it asks for, while trigger metric names keep
/// the user's capitals (`s0-aws-sqs-Orders`, `s0-cron-Europe-Berlin-…`).
pub fn same_metric(served: &str, asked: &str) -> bool {
    served.eq_ignore_ascii_case(asked)
        || (!served.is_ascii() && served.to_lowercase() == asked.to_lowercase())
}

/// Which of `served` answers a request for `asked`: the exact name first, then ignoring case.
pub fn metric_index<'a>(
    served: impl Iterator<Item = &'a str> + Clone,
    asked: &str,
) -> Option<usize> {
    served
        .clone()
        .position(|n| n == asked)
        .or_else(|| served.into_iter().position(|n| same_metric(n, asked)))
}

impl LoopState {
    /// The trigger serving `metric` (see [`metric_index`]).
    pub fn trigger_for(&self, metric: &str) -> Option<&crate::triggers::TriggerRuntime> {
        let names = self.triggers.iter().map(|t| t.spec.name());
        self.triggers.get(metric_index(names, metric)?)
    }
}

impl Ctx {
    /// The value of `metric` for ScaledObject `namespace/name` (the name the request's label
    /// selector gives, see [`scaled_object_from_selector`]).
    pub async fn external_metric(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
    ) -> Result<Vec<MetricValue>, MetricQueryError> {
        let key = ObjectRef::<ScaledObject>::new(name).within(namespace);
        let Some(state) = self.loops.get(&key) else {
            let why =
                format!("ScaledObject {namespace}/{name} is not active in Swell (see its status)");
            return Err(self.metric_miss(&key, metric, why).await);
        };
        if let Some(c) = &state.composite
            && same_metric(COMPOSITE_METRIC_NAME, metric)
        {
            return self.composite_metric(&key, &state, c).await;
        }
        let Some(trigger) = state.trigger_for(metric) else {
            let why = format!(
                "ScaledObject {namespace}/{name} has no metric {metric} (it serves: {})",
                state.metric_names().join(", ")
            );
            return Err(self.metric_miss(&key, metric, why).await);
        };
        // From here on, the trigger's own name: state and fallback health are keyed by it.
        let metric = trigger.spec.name();
        let failure = match reading(&state, trigger).await {
            Some(Ok(s)) => {
                return Ok(vec![MetricValue {
                    name: metric.to_string(),
                    value: s.value,
                }]);
            }
            Some(Err(e)) => e.to_string(),
            None => NOT_POLLED_YET.to_string(),
        };
        match self.fallback_value(&key, &state, &trigger.spec).await {
            Some(v) => Ok(vec![MetricValue {
                name: metric.to_string(),
                value: v,
            }]),
            None => Err(MetricQueryError::Unavailable(format!(
                "{metric}: {failure}"
            ))),
        }
    }

    /// `composite-metric`: every external trigger read (as for its own metric), then the
    /// formula over them, with KEDA's fallback (see [`crate::composite`]).
    async fn composite_metric(
        &self,
        key: &ObjectRef<ScaledObject>,
        state: &LoopState,
        composite: &Composite,
    ) -> Result<Vec<MetricValue>, MetricQueryError> {
        let so = self.store.get(key);
        let external: Vec<&TriggerRuntime> = state
            .triggers
            .iter()
            .filter(|t| matches!(t.spec, MetricSpec::External { .. }))
            .collect();
        let readings = join_all(external.iter().map(|t| reading(state, t))).await;
        let failed = readings.iter().any(|r| !matches!(r, Some(Ok(_))));
        let fallback = match so.as_deref() {
            Some(so) if failed && so.spec.fallback.is_some() => {
                let current = state.target.replicas(&self.client).await.unwrap_or(0);
                composite_fallback(so, composite, current)
            }
            _ => None,
        };
        let sources: Vec<(&str, Source)> = external
            .iter()
            .zip(readings)
            .map(|(t, r)| {
                let metric = t.spec.name();
                // This request's failure counts, as the loop would count it.
                let failures = status_failures(so.as_deref(), metric).saturating_add(1);
                let r = match r {
                    Some(r) => r.map(|s| s.value).map_err(|e| e.to_string()),
                    None => Err(NOT_POLLED_YET.to_string()),
                };
                (metric, source(metric, r, failures, fallback.as_ref()))
            })
            .collect();
        let value = composite
            .evaluate(&sources, fallback.as_ref())
            .map_err(|e| MetricQueryError::Unavailable(e.to_string()))?;
        Ok(vec![MetricValue {
            name: COMPOSITE_METRIC_NAME.to_string(),
            value,
        }])
    }

    /// A request this replica cannot answer for a ScaledObject: NotFound for the caller. The
    /// first one per existing ScaledObject (until its loop restarts) is logged at warning and,
    /// by the leader, recorded as a Warning event on it, so an HPA that cannot read its
    /// metric does not go unnoticed behind `Ready=True`. Requests naming objects that do not
    /// exist are not remembered (anyone may send them; the set stays bounded by the store).
    async fn metric_miss(
        &self,
        key: &ObjectRef<ScaledObject>,
        metric: &str,
        why: String,
    ) -> MetricQueryError {
        let Some(so) = self.store.get(key) else {
            tracing::debug!(scaledobject = %key, metric, "{why}");
            return MetricQueryError::NotFound(why);
        };
        let first = self
            .metric_misses
            .lock()
            .map(|mut m| m.insert(key.clone()))
            .unwrap_or(false);
        if first {
            tracing::warn!(scaledobject = %key, metric, "metrics API: {why}");
            if self.leader {
                let note = format!("the external metrics API was asked for {metric}: {why}");
                self.event(
                    so.as_ref(),
                    EventType::Warning,
                    events::METRIC_NOT_SERVED,
                    note,
                )
                .await;
            }
        }
        MetricQueryError::NotFound(why)
    }

    /// KEDA's fallback: once the metric has failed more than failureThreshold times, serve
    /// `target × replicas` so the HPA settles at the fallback replica count.
    async fn fallback_value(
        &self,
        key: &ObjectRef<ScaledObject>,
        state: &LoopState,
        spec: &MetricSpec,
    ) -> Option<f64> {
        let so = self.store.get(key)?;
        let fallback = so.spec.fallback.clone().filter(|f| f.replicas != 0)?;
        let MetricSpec::External {
            name,
            target,
            metric_type,
        } = spec
        else {
            return None;
        };
        let failures = status_failures(Some(&so), name);
        // This request failed too: count it as the loop would.
        let health = Health {
            failures: failures.saturating_add(1),
            ..Health::default()
        };
        if !health.in_fallback(fallback.failure_threshold) {
            return None;
        }
        let behavior = scaling_behavior(fallback.behavior());
        let current = state.target.replicas(&self.client).await.unwrap_or(0);
        let replicas = fallback_replicas(behavior, fallback.replicas, current);
        let per_pod = (*metric_type == MetricType::Value).then_some(current);
        Some(fallback_metric_value(*target, replicas, per_pod))
    }
}

const NOT_POLLED_YET: &str = "no value polled yet (useCachedMetrics)";

/// One trigger's reading for a request: the loop's last with `useCachedMetrics` (`None`
/// before its first poll), else a live read shared with concurrent identical requests.
async fn reading(state: &LoopState, trigger: &TriggerRuntime) -> Option<Reading> {
    let metric = trigger.spec.name();
    if trigger.use_cached_metrics {
        return state.last.lock().ok().and_then(|l| l.get(metric).cloned());
    }
    let (r, upstream) = state
        .live
        .get(&metric.to_string(), Duration::ZERO, || async {
            trigger.sample().await.map_err(Arc::new)
        })
        .await;
    if let (true, Ok(mut last)) = (upstream, state.last.lock()) {
        last.insert(metric.to_string(), r.clone());
    }
    Some(r)
}

/// `status.health[metric].numberOfFailures` as last written.
fn status_failures(so: Option<&ScaledObject>, metric: &str) -> i32 {
    so.and_then(|so| so.status.as_ref())
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.get(metric))
        .and_then(|h| h.number_of_failures)
        .unwrap_or(0)
}

/// The API's fallback behaviour as the scaling crate's.
pub fn scaling_behavior(b: swell_api::FallbackBehavior) -> FallbackBehavior {
    use swell_api::FallbackBehavior as B;
    match b {
        B::Static => FallbackBehavior::Static,
        B::CurrentReplicas => FallbackBehavior::CurrentReplicas,
        B::CurrentReplicasIfHigher => FallbackBehavior::CurrentReplicasIfHigher,
        B::CurrentReplicasIfLower => FallbackBehavior::CurrentReplicasIfLower,
        B::ScalingModifiers => FallbackBehavior::ScalingModifiers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_names_the_scaled_object_as_keda_reads_it() {
        let ok = [
            ("scaledobject.keda.sh/name=demo", "demo"),
            ("a=b, scaledobject.keda.sh/name == demo", "demo"),
            ("scaledobject.keda.sh/name=demo,app=x", "demo"),
            // The last value wins, as in KEDA's labels map.
            (
                "scaledobject.keda.sh/name=a,scaledobject.keda.sh/name=b",
                "b",
            ),
        ];
        for (selector, want) in ok {
            assert_eq!(
                scaled_object_from_selector(selector),
                Ok(want),
                "{selector}"
            );
        }
        let refused = [
            ("", "must name the ScaledObject"),
            ("app=demo", "must name the ScaledObject"),
            ("scaledobject.keda.sh/name=", "must name the ScaledObject"),
            ("scaledobject.keda.sh/name!=demo", "is not key=value"),
            ("scaledobject.keda.sh/name in (demo)", "is not key=value"),
            ("!scaledobject.keda.sh/name", "is not key=value"),
            ("scaledobject.keda.sh/name=a=b", "is not key=value"),
        ];
        for (selector, want) in refused {
            match scaled_object_from_selector(selector) {
                Err(MetricQueryError::BadRequest(m)) => assert!(m.contains(want), "{m}"),
                other => panic!("{selector}: {other:?}"),
            }
        }
    }

    #[test]
    fn metric_names_compare_ignoring_case_as_keda() {
        assert!(same_metric(
            "s0-aws-sqs-Orders-Queue-fifo",
            "s0-aws-sqs-orders-queue-fifo"
        ));
        assert!(same_metric(
            "s0-cron-Europe-Berlin-0x",
            "S0-CRON-EUROPE-BERLIN-0X"
        ));
        assert!(same_metric(
            "s0-kafka-Bestellungen-Ä",
            "s0-kafka-bestellungen-ä"
        ));
        assert!(!same_metric("s0-aws-sqs-orders", "s1-aws-sqs-orders"));
        assert!(!same_metric("s0-aws-sqs-orders", "s0-aws-sqs-order"));
    }

    /// Every scaler whose metric name carries user text, built from inputs with capitals:
    /// the name the HPA asks for (lowercased, or any other casing) resolves to the trigger
    /// that made it, never to another trigger of the same ScaledObject.
    #[tokio::test]
    async fn every_scalers_name_resolves_whatever_its_case() {
        let triggers: &[(&str, &[(&str, &str)])] = &[
            (
                "cron",
                &[
                    ("timezone", "Europe/Berlin"),
                    ("start", "0 8 * * 1,3"),
                    ("end", "0 18 * * *"),
                    ("desiredReplicas", "3"),
                ],
            ),
            (
                "aws-sqs-queue",
                &[
                    (
                        "queueURL",
                        "https://sqs.eu-west-1.amazonaws.com/111122223333/Orders-Queue.fifo",
                    ),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                ],
            ),
            (
                "aws-sqs-queue",
                &[
                    (
                        "queueURL",
                        "https://sqs.eu-west-1.amazonaws.com/111122223333/orders-queue.fifo",
                    ),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                ],
            ),
            (
                "aws-dynamodb",
                &[
                    ("tableName", "OrdersTable"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                    ("keyConditionExpression", "#k = :v"),
                    ("expressionAttributeNames", r##"{"#k":"Queue"}"##),
                    ("expressionAttributeValues", r#"{":v":{"S":"Work"}}"#),
                    ("targetValue", "2"),
                ],
            ),
            (
                "aws-dynamodb-streams",
                &[
                    ("tableName", "OrdersTable"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                ],
            ),
            (
                "aws-kinesis-stream",
                &[
                    ("streamName", "Clicks"),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                ],
            ),
            (
                "kafka",
                &[
                    ("bootstrapServers", "localhost:9092"),
                    ("consumerGroup", "Billing"),
                    ("topic", "Orders"),
                ],
            ),
            (
                "kafka",
                &[
                    ("bootstrapServers", "localhost:9092"),
                    ("consumerGroup", "Billing"),
                ],
            ),
            (
                "metrics-api",
                &[
                    ("url", "http://localhost/x"),
                    ("valueLocation", "data.Count"),
                    ("targetValue", "2"),
                ],
            ),
        ];
        let shared = swell_scalers::Shared::default();
        let mut names = Vec::new();
        for (index, (type_, meta)) in triggers.iter().enumerate() {
            let input = swell_scalers::TriggerInput {
                index,
                type_: type_.to_string(),
                params: swell_scalers::RawParams {
                    trigger_index: index,
                    metadata: swell_scalers::map(meta),
                    ..Default::default()
                },
                ..Default::default()
            };
            let scaler =
                swell_scalers::build(&input, &shared).unwrap_or_else(|e| panic!("{type_}: {e}"));
            names.push(scaler.metric_spec().name().to_string());
        }
        for (i, name) in names.iter().enumerate() {
            let served = names.iter().map(String::as_str);
            for asked in [name.clone(), name.to_lowercase(), name.to_uppercase()] {
                assert_eq!(
                    metric_index(served.clone(), &asked),
                    Some(i),
                    "{asked} of {names:?}"
                );
            }
        }
        // Two queues whose names differ only in case stay two metrics (the index prefix).
        assert!(same_metric(&names[1][3..], &names[2][3..]), "{names:?}");
    }
}
