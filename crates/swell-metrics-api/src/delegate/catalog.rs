//! What each delegate serves, from its discovery document, and the union Swell lists.

use std::collections::BTreeSet;

/// The delegates' metric lists, in configured order.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub delegates: Vec<Listing>,
}

/// One delegate's last known metric list.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub name: String,
    /// Metric names, lowercased (the HPA asks for them lowercased).
    pub metrics: BTreeSet<String>,
    /// Its `APIResource`s as it sent them, for Swell's discovery document.
    pub resources: Vec<serde_json::Value>,
    /// Why the last refresh failed, while it keeps failing.
    pub error: Option<String>,
}

impl Listing {
    pub fn new(name: &str) -> Listing {
        Listing {
            name: name.to_string(),
            metrics: BTreeSet::new(),
            resources: Vec::new(),
            error: None,
        }
    }

    /// The listing after a refresh: the new list, or on failure the last known one (so a
    /// delegate that is down keeps its metrics, which then get a clear 503 rather than a
    /// 404) with the error.
    pub fn refreshed(&self, result: Result<Vec<serde_json::Value>, String>) -> Listing {
        match result {
            Ok(resources) => Listing {
                name: self.name.clone(),
                metrics: resources
                    .iter()
                    .filter_map(|r| r.get("name")?.as_str())
                    .filter(|n| !n.contains('/'))
                    .map(str::to_ascii_lowercase)
                    .collect(),
                resources,
                error: None,
            },
            Err(e) => Listing {
                error: Some(e),
                ..self.clone()
            },
        }
    }
}

impl Catalog {
    pub fn new(names: impl IntoIterator<Item = String>) -> Catalog {
        Catalog {
            delegates: names.into_iter().map(|n| Listing::new(&n)).collect(),
        }
    }

    /// The first delegate whose list holds `metric` (compared lowercased).
    pub fn position_of(&self, metric: &str) -> Option<usize> {
        let metric = metric.to_ascii_lowercase();
        self.delegates
            .iter()
            .position(|l| l.metrics.contains(&metric))
    }

    /// Swell's `APIResource`s followed by each delegate's not already listed (by name),
    /// in configured order.
    pub fn union(&self, own: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
        let name = |r: &serde_json::Value| {
            r.get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let mut seen: BTreeSet<String> = own.iter().map(name).collect();
        let mut out = own;
        for r in self.delegates.iter().flat_map(|l| &l.resources) {
            if seen.insert(name(r)) {
                out.push(r.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res(name: &str) -> serde_json::Value {
        json!({"name": name, "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]})
    }

    #[test]
    fn refresh_keeps_the_last_list_on_failure() {
        let empty = Listing::new("prom");
        let up = empty.refreshed(Ok(vec![res("Queue_Depth"), res("pods/cpu")]));
        assert_eq!(up.metrics, BTreeSet::from(["queue_depth".to_string()]));
        assert_eq!(up.error, None);
        let down = up.refreshed(Err("connection refused".into()));
        assert_eq!(down.metrics, up.metrics);
        assert_eq!(down.resources, up.resources);
        assert_eq!(down.error.as_deref(), Some("connection refused"));
        let back = down.refreshed(Ok(vec![]));
        assert!(back.metrics.is_empty() && back.error.is_none());
        // Never listed and down: nothing to route there.
        assert!(empty.refreshed(Err("x".into())).metrics.is_empty());
    }

    #[test]
    fn union_lists_swell_first_then_each_new_name() {
        let mut cat = Catalog::new(["a".to_string(), "b".to_string()]);
        cat.delegates[0] = cat.delegates[0].refreshed(Ok(vec![res("externalmetrics"), res("q")]));
        cat.delegates[1] = cat.delegates[1].refreshed(Ok(vec![res("Q"), res("r")]));
        let names: Vec<String> = cat
            .union(vec![res("externalmetrics")])
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["externalmetrics", "q", "r"]);
        assert_eq!(cat.position_of("R"), Some(1));
        assert_eq!(cat.position_of("externalmetrics"), Some(0));
    }
}
