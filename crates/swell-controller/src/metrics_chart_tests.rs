//! The chart's Grafana dashboard and PrometheusRule alerts name only metrics Swell exports.

use super::Metrics;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../../charts/swell/files/grafana-dashboard.json");
const RULES: &str = include_str!("../../../charts/swell/files/prometheus-rules.yaml");

/// PromQL words that are not metric names.
const KEYWORDS: [&str; 14] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "humanizeDuration",
];

/// Removes `open`…`close` spans (label matchers, ranges, strings) from `s`.
fn strip(s: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars() {
        if c == open && (depth == 0 || open != close) {
            depth += 1;
            out.push(' ');
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The metric names an expression selects: identifiers left once strings, label matchers,
/// ranges, Grafana variables and grouping label lists are gone, and not called as functions.
fn metric_names(expr: &str) -> Vec<String> {
    let s = strip(&strip(&strip(expr, '"', '"'), '{', '}'), '[', ']');
    // `by (a, b)` and friends list labels, not metrics.
    let mut cleaned = String::new();
    let mut rest = s.as_str();
    while let Some((before, after)) = split_grouping(rest) {
        cleaned.push_str(before);
        rest = after.split_once(')').map_or("", |(_, r)| r);
    }
    cleaned.push_str(rest);
    let chars: Vec<char> = cleaned.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:$".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let called = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            let numeric = start > 0 && chars[start - 1].is_ascii_digit();
            if !called && !numeric && !word.starts_with('$') && !KEYWORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The text before the next `by (`/`without (`/`on (`/`ignoring (`/`group_*(`, and the text
/// from its `(` on.
fn split_grouping(s: &str) -> Option<(&str, &str)> {
    let words = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut best: Option<(usize, usize)> = None;
    for w in words {
        let mut from = 0;
        while let Some(at) = s[from..].find(w).map(|i| i + from) {
            let before_ok =
                at == 0 || !s[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            let after = s[at + w.len()..].trim_start();
            if before_ok && after.starts_with('(') {
                let paren = s.len() - after.len();
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, paren));
                }
                break;
            }
            from = at + w.len();
        }
    }
    best.map(|(at, paren)| (&s[..at], &s[paren..]))
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Whether `name` is a series of one of `families` (histograms' `_bucket`, `_sum`, `_count`).
fn exported(name: &str, families: &[String]) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    families.iter().any(|f| f == name || f == base)
}

#[test]
fn promql_names_are_found() {
    let cases: [(&str, &[&str]); 5] = [
        (
            "sum by(scaler) (rate(keda_scaler_detail_errors_total{exported_namespace=~\"$namespace\"}[5m]))",
            &["keda_scaler_detail_errors_total"],
        ),
        (
            "histogram_quantile(0.95, sum by (le, scaler) (rate(x_bucket[10m]))) > 2.5",
            &["x_bucket"],
        ),
        ("absent(keda_build_info) == 1", &["keda_build_info"]),
        ("a / on(job) group_left b offset 5m", &["a", "b"]),
        (
            "label_values(keda_scaler_active{ns=\"$namespace\"}, scaledObject)",
            &["keda_scaler_active", "scaledObject"],
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(metric_names(expr), want, "{expr}");
    }
}

#[test]
fn chart_dashboard_and_alerts_use_exported_metrics() {
    let families = Metrics::new().family_names();
    for want in [
        "keda_scaler_http_requests_total",
        "keda_scaler_http_request_duration_seconds",
        "keda_scaler_empty_upstream_responses_total",
        "keda_webhook_scaled_object_validations_total",
        "keda_webhook_scaled_object_validation_errors_total",
    ] {
        assert!(
            families.iter().any(|f| f == want),
            "{want} not in {families:?}"
        );
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let groups: Value = serde_saphyr::from_str(RULES).expect("the rules are YAML");
    let rules = groups.as_array().expect("a list of groups");
    for g in rules {
        for r in g["rules"].as_array().expect("rules") {
            assert!(
                r["alert"].is_string() && r["labels"]["severity"].is_string(),
                "{r}"
            );
            exprs.push(r["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() > 20, "{exprs:?}");
    let mut seen = 0;
    for expr in &exprs {
        let names = metric_names(expr);
        // label_values(metric, label): the second argument is a label.
        let names = if expr.starts_with("label_values(") {
            &names[..1]
        } else {
            &names[..]
        };
        assert!(!names.is_empty(), "no metric in {expr}");
        for n in names {
            assert!(
                exported(n, &families),
                "{n} (in {expr}) is not a metric Swell exports"
            );
            seen += 1;
        }
    }
    assert!(seen >= exprs.len());
}
