//! `kubernetes-workload`: scale on the number of pods matching a selector in the
//! ScaledObject's namespace (pods that finished do not count), or with `groupByNode` on the
//! number of nodes they run on, as KEDA's `kubernetes_workload_scaler.go`.

use std::sync::Arc;

use swell_scaling::naming::{metric_name, normalize};

use crate::{
    Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput, UpstreamError,
};

const SELECTOR: Field = Field::new("podSelector").hint("a label selector such as app=worker");
const VALUE: Field = Field::new("value").hint("pods per replica, greater than 0");
const ACTIVATION: Field = Field::new("activationValue");
const GROUP_BY_NODE: Field = Field::new("groupByNode");

/// What the count needs of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `status.phase`.
    pub phase: Option<String>,
    /// `spec.nodeName`; `None` until the pod is scheduled.
    pub node: Option<String>,
}

/// Lists the pods matching a selector; implemented by the operator over its client.
#[async_trait::async_trait]
pub trait PodCounter: Send + Sync {
    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<PodInfo>, UpstreamError>;
}

/// KEDA's reading: the pods that are not Succeeded or Failed, or with `by_node` the distinct
/// nodes such pods are scheduled on.
pub fn count(pods: &[PodInfo], by_node: bool) -> usize {
    let running = pods
        .iter()
        .filter(|p| !matches!(p.phase.as_deref(), Some("Succeeded" | "Failed")));
    if by_node {
        let nodes: std::collections::BTreeSet<&str> = running
            .filter_map(|p| p.node.as_deref().filter(|n| !n.is_empty()))
            .collect();
        nodes.len()
    } else {
        running.count()
    }
}

pub struct WorkloadScaler {
    namespace: String,
    selector: String,
    value: f64,
    activation: f64,
    by_node: bool,
    metric: String,
    metric_type: crate::MetricType,
    counter: Arc<dyn PodCounter>,
}

/// Checks a label selector's syntax (`k=v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`).
pub fn valid_selector(s: &str) -> bool {
    let mut depth = 0i32;
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        if depth < 0 {
            return false;
        }
    }
    parts.push(cur);
    let key_ok = |k: &str| {
        let k = k.trim();
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    depth == 0
        && parts.iter().all(|p| {
            let p = p.trim();
            if let Some((k, _)) = p.split_once("!=") {
                return key_ok(k);
            }
            if let Some((k, _)) = p.split_once("==") {
                return key_ok(k);
            }
            if let Some((k, _)) = p.split_once('=') {
                return key_ok(k);
            }
            if let Some((k, rest)) = p.split_once(" notin ").or_else(|| p.split_once(" in ")) {
                let rest = rest.trim();
                return key_ok(k) && rest.starts_with('(') && rest.ends_with(')');
            }
            key_ok(p.strip_prefix('!').unwrap_or(p))
        })
}

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[SELECTOR, VALUE, ACTIVATION, GROUP_BY_NODE];

/// The trigger's parameters.
pub struct Config {
    selector: String,
    value: f64,
    activation: f64,
    by_node: bool,
}

/// Reads and checks the trigger's parameters; every problem goes into `p`.
pub fn parse(p: &mut Params<'_>) -> Config {
    let selector = p.string(SELECTOR);
    if !selector.is_empty() && !valid_selector(&selector) {
        p.error(
            "podSelector",
            format!("{selector:?} is not a valid label selector"),
        );
    }
    Config {
        selector,
        value: p.target(VALUE),
        activation: p.float(ACTIVATION, 0.0),
        by_node: p.bool(GROUP_BY_NODE, false),
    }
}

impl WorkloadScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<WorkloadScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let Config {
            selector,
            value,
            activation,
            by_node,
        } = parse(&mut p);
        p.finish()?;
        let counter = shared.workloads.clone().ok_or_else(|| {
            ScalerError::Internal("no Kubernetes client for kubernetes-workload".into())
        })?;
        Ok(WorkloadScaler {
            metric: metric_name(
                input.index,
                &normalize(&format!("workload-{}", input.namespace)),
            ),
            namespace: input.namespace.clone(),
            selector,
            value,
            activation,
            by_node,
            metric_type: input.metric_type.unwrap_or_default(),
            counter,
        })
    }
}

#[async_trait::async_trait]
impl Scaler for WorkloadScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.value,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let pods = self
            .counter
            .pods(&self.namespace, &self.selector)
            .await
            .map_err(|e| UpstreamError {
                message: format!("counting pods matching {:?}: {e}", self.selector),
                ..e
            })?;
        let value = count(&pods, self.by_node) as f64;
        Ok(Sample {
            value,
            active: value > self.activation,
        })
    }

    fn upstream_key(&self) -> Option<String> {
        Some(format!(
            "kubernetes-workload|{}|{}|{}",
            self.namespace, self.selector, self.by_node
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawParams, map};

    struct Fixed(usize);

    #[async_trait::async_trait]
    impl PodCounter for Fixed {
        async fn pods(&self, _: &str, _: &str) -> Result<Vec<PodInfo>, UpstreamError> {
            Ok(vec![PodInfo::default(); self.0])
        }
    }

    /// KEDA's `getCountValue` / `getUniqueNodeCount` cases.
    #[test]
    fn counts_running_pods_or_their_nodes() {
        let pod = |phase: &str, node: &str| PodInfo {
            phase: Some(phase.into()).filter(|p: &String| !p.is_empty()),
            node: Some(node.into()).filter(|n: &String| !n.is_empty()),
        };
        let pods = [
            pod("Running", "n1"),
            pod("Running", "n1"),
            pod("Pending", "n2"),
            pod("Pending", ""),
            pod("Succeeded", "n3"),
            pod("Failed", "n4"),
            pod("", "n5"),
        ];
        assert_eq!(count(&pods, false), 5);
        assert_eq!(count(&pods, true), 3, "n1, n2, n5");
        assert_eq!(count(&[], true), 0);
    }

    fn scaler(meta: &[(&str, &str)], pods: usize) -> Result<WorkloadScaler, ScalerError> {
        WorkloadScaler::new(
            &TriggerInput {
                index: 2,
                namespace: "team-a".into(),
                params: RawParams {
                    trigger_index: 2,
                    metadata: map(meta),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared {
                workloads: Some(Arc::new(Fixed(pods))),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn counts_pods_against_value_and_activation() {
        let s = scaler(
            &[
                ("podSelector", "app=worker"),
                ("value", "2"),
                ("activationValue", "3"),
            ],
            3,
        )
        .unwrap();
        assert_eq!(s.metric_spec().name(), "s2-workload-team-a");
        assert_eq!(
            s.sample().await.unwrap(),
            Sample {
                value: 3.0,
                active: false
            }
        );
        let s = scaler(
            &[("podSelector", "app in (a,b),tier!=db"), ("value", "1")],
            4,
        )
        .unwrap();
        assert_eq!(
            s.sample().await.unwrap(),
            Sample {
                value: 4.0,
                active: true
            }
        );
    }

    #[test]
    fn rejects_bad_metadata() {
        let e = scaler(&[("podSelector", "app in (a"), ("value", "0")], 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("metadata.podSelector: \"app in (a\" is not a valid label selector"),
            "{e}"
        );
        assert!(e.contains("metadata.value: must be greater than 0"), "{e}");
        let e = scaler(&[], 0).err().unwrap().to_string();
        assert!(
            e.contains("podSelector: required") && e.contains("value: required"),
            "{e}"
        );
    }

    #[test]
    fn selectors() {
        for ok in [
            "app=a",
            "app==a,b!=c",
            "env in (prod, qa)",
            "!legacy",
            "app.kubernetes.io/name=x",
        ] {
            assert!(valid_selector(ok), "{ok}");
        }
        for bad in ["", "app in (a", "=x", "a b"] {
            assert!(!valid_selector(bad), "{bad}");
        }
    }
}
