//! Metric values for the external metrics API, from the same per-ScaledObject state the
//! scale loop uses: the last polled value with `useCachedMetrics`, otherwise one live query
//! per request, with concurrent identical requests sharing it; fallback applied as KEDA does.

use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use swell_api::ScaledObject;
use swell_scalers::{MetricSpec, MetricType};
use swell_scaling::fallback::{FallbackBehavior, Health, fallback_metric_value, fallback_replicas};

use crate::context::Ctx;

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

/// The ScaledObject named by an HPA's selector (`scaledobject.keda.sh/name=<name>`).
pub fn scaled_object_from_selector(selector: &str) -> Option<&str> {
    selector.split(',').find_map(|term| {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (k.trim() == swell_api::annotations::labels::SCALED_OBJECT_NAME).then_some(v.trim())
    })
}

impl Ctx {
    pub async fn external_metric(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<MetricValue>, MetricQueryError> {
        let name = scaled_object_from_selector(selector).ok_or_else(|| {
            MetricQueryError::BadRequest(format!(
                "labelSelector {selector:?} must name the ScaledObject ({}=<name>)",
                swell_api::annotations::labels::SCALED_OBJECT_NAME
            ))
        })?;
        let key = ObjectRef::<ScaledObject>::new(name).within(namespace);
        let state = self
            .loops
            .lock()
            .ok()
            .and_then(|l| l.get(&key).map(|h| h.state.clone()))
            .ok_or_else(|| {
                MetricQueryError::NotFound(format!(
                    "ScaledObject {namespace}/{name} is not active in Swell (see its status)"
                ))
            })?;
        let trigger = state
            .triggers
            .iter()
            .find(|t| t.spec.name() == metric)
            .ok_or_else(|| {
                MetricQueryError::NotFound(format!(
                    "ScaledObject {namespace}/{name} has no metric {metric}"
                ))
            })?;
        let result = if trigger.use_cached_metrics {
            state
                .last
                .lock()
                .ok()
                .and_then(|l| l.get(metric).cloned())
                .unwrap_or_else(|| Err("no value polled yet".to_string()))
        } else {
            let (r, upstream) = state
                .live
                .get(&metric.to_string(), Duration::ZERO, || async {
                    trigger.scaler.sample().await.map_err(|e| e.to_string())
                })
                .await;
            if let (true, Ok(mut last)) = (upstream, state.last.lock()) {
                last.insert(metric.to_string(), r.clone());
            }
            r
        };
        match result {
            Ok(s) => Ok(vec![MetricValue {
                name: metric.to_string(),
                value: s.value,
            }]),
            Err(e) => match self.fallback_value(&key, &state, &trigger.spec).await {
                Some(v) => Ok(vec![MetricValue {
                    name: metric.to_string(),
                    value: v,
                }]),
                None => Err(MetricQueryError::Unavailable(format!("{metric}: {e}"))),
            },
        }
    }

    /// KEDA's fallback: once the metric has failed more than failureThreshold times, serve
    /// `target × replicas` so the HPA settles at the fallback replica count.
    async fn fallback_value(
        &self,
        key: &ObjectRef<ScaledObject>,
        state: &crate::scale_loop::LoopState,
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
        let failures = so
            .status
            .as_ref()
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.get(name))
            .and_then(|h| h.number_of_failures)
            .unwrap_or(0);
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
    fn selector_names_the_scaled_object() {
        assert_eq!(
            scaled_object_from_selector("scaledobject.keda.sh/name=demo"),
            Some("demo")
        );
        assert_eq!(
            scaled_object_from_selector("a=b, scaledobject.keda.sh/name == demo"),
            Some("demo")
        );
        assert_eq!(scaled_object_from_selector("app=demo"), None);
    }
}
