//! Per-metric health and KEDA's fallback: once a metric has failed more than
//! `failureThreshold` times in a row, serve a synthetic value that makes the HPA settle at
//! the fallback replica count instead of acting on nothing.

/// `status.health[metric].status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    Happy,
    Failing,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Happy => "Happy",
            HealthState::Failing => "Failing",
        }
    }
}

/// `status.health[metric]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub failures: i32,
    pub state: HealthState,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            failures: 0,
            state: HealthState::Happy,
        }
    }
}

impl Health {
    /// The health after one more fetch: success resets, failure counts up.
    pub fn after(self, ok: bool) -> Health {
        if ok {
            Health::default()
        } else {
            Health {
                failures: self.failures.saturating_add(1),
                state: HealthState::Failing,
            }
        }
    }

    /// Fallback applies strictly after `threshold` consecutive failures.
    pub fn in_fallback(self, threshold: i32) -> bool {
        self.failures > threshold
    }
}

/// `spec.fallback.behavior`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FallbackBehavior {
    #[default]
    Static,
    CurrentReplicas,
    CurrentReplicasIfHigher,
    CurrentReplicasIfLower,
    ScalingModifiers,
}

impl FallbackBehavior {
    pub fn parse(s: Option<&str>) -> Option<FallbackBehavior> {
        Some(match s.unwrap_or("static") {
            "static" | "" => FallbackBehavior::Static,
            "currentReplicas" => FallbackBehavior::CurrentReplicas,
            "currentReplicasIfHigher" => FallbackBehavior::CurrentReplicasIfHigher,
            "currentReplicasIfLower" => FallbackBehavior::CurrentReplicasIfLower,
            "scalingModifiers" => FallbackBehavior::ScalingModifiers,
            _ => return None,
        })
    }
}

/// The replica count fallback aims for.
pub fn fallback_replicas(behavior: FallbackBehavior, fallback: i32, current: i32) -> i32 {
    match behavior {
        FallbackBehavior::Static | FallbackBehavior::ScalingModifiers => fallback,
        FallbackBehavior::CurrentReplicas => current,
        FallbackBehavior::CurrentReplicasIfHigher => current.max(fallback),
        FallbackBehavior::CurrentReplicasIfLower => current.min(fallback),
    }
}

/// The metric value that makes the HPA compute `replicas`: for an AverageValue target the
/// HPA divides the value by the target, so serve `target × replicas`; for a Value target it
/// also multiplies by the ready pods, so divide by them.
pub fn fallback_metric_value(
    target: f64,
    replicas: i32,
    value_target_ready_pods: Option<i32>,
) -> f64 {
    let v = target * f64::from(replicas);
    match value_target_ready_pods {
        Some(ready) if ready > 0 => v / f64::from(ready),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_counts_failures_and_resets() {
        let h = Health::default().after(false).after(false);
        assert_eq!(
            h,
            Health {
                failures: 2,
                state: HealthState::Failing
            }
        );
        assert!(!h.in_fallback(2));
        assert!(h.after(false).in_fallback(2));
        assert_eq!(h.after(true), Health::default());
    }

    #[test]
    fn behaviours_pick_replicas() {
        use FallbackBehavior::*;
        assert_eq!(fallback_replicas(Static, 5, 2), 5);
        assert_eq!(fallback_replicas(CurrentReplicas, 5, 2), 2);
        assert_eq!(fallback_replicas(CurrentReplicasIfHigher, 5, 2), 5);
        assert_eq!(fallback_replicas(CurrentReplicasIfHigher, 5, 7), 7);
        assert_eq!(fallback_replicas(CurrentReplicasIfLower, 5, 7), 5);
        assert_eq!(fallback_replicas(CurrentReplicasIfLower, 5, 2), 2);
    }

    #[test]
    fn parses_behaviour_names() {
        assert_eq!(
            FallbackBehavior::parse(None),
            Some(FallbackBehavior::Static)
        );
        assert_eq!(
            FallbackBehavior::parse(Some("currentReplicasIfLower")),
            Some(FallbackBehavior::CurrentReplicasIfLower)
        );
        assert_eq!(FallbackBehavior::parse(Some("sometimes")), None);
    }

    #[test]
    fn metric_value_makes_the_hpa_land_on_the_replicas() {
        assert_eq!(fallback_metric_value(5.0, 3, None), 15.0);
        assert_eq!(fallback_metric_value(6.0, 3, Some(2)), 9.0);
        assert_eq!(fallback_metric_value(6.0, 3, Some(0)), 18.0);
    }
}
