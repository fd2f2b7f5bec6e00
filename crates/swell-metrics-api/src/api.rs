//! The JSON documents served: discovery, `ExternalMetricValueList` and `metav1.Status`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use serde::Serialize;

use crate::{GROUP, MetricError, MetricValue, VERSION};

pub(crate) fn group_version() -> String {
    format!("{GROUP}/{VERSION}")
}

fn group_doc() -> serde_json::Value {
    let gv = serde_json::json!({"groupVersion": group_version(), "version": VERSION});
    serde_json::json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`: a plain `APIGroupList`, so the aggregator falls back from aggregated
/// discovery to per-version discovery.
pub(crate) fn api_group_list() -> Vec<u8> {
    let list =
        serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_doc()]});
    serde_json::to_vec(&list).unwrap_or_default()
}

/// `GET /apis/external.metrics.k8s.io`.
pub(crate) fn api_group() -> Vec<u8> {
    let mut doc = group_doc();
    if let Some(o) = doc.as_object_mut() {
        o.insert("kind".into(), "APIGroup".into());
        o.insert("apiVersion".into(), "v1".into());
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The `APIResource`s Swell itself lists.
pub(crate) fn own_resources() -> Vec<serde_json::Value> {
    vec![serde_json::json!({
        "name": "externalmetrics",
        "singularName": "",
        "namespaced": true,
        "kind": "ExternalMetricValueList",
        "verbs": ["get"],
    })]
}

/// `GET /apis/external.metrics.k8s.io/v1beta1` listing `resources` (Swell's and its
/// delegates'); also the aggregator's availability probe.
pub(crate) fn api_resource_list_of(resources: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(),
        "resources": resources,
    }))
    .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValueList<'a> {
    kind: &'static str,
    api_version: String,
    metadata: BTreeMap<String, String>,
    items: Vec<ExternalMetricValue<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValue<'a> {
    metric_name: &'a str,
    metric_labels: &'a BTreeMap<String, String>,
    timestamp: String,
    value: String,
}

pub(crate) fn external_metric_value_list(values: &[MetricValue]) -> Vec<u8> {
    let list = ExternalMetricValueList {
        kind: "ExternalMetricValueList",
        api_version: group_version(),
        metadata: BTreeMap::new(),
        items: values
            .iter()
            .map(|v| ExternalMetricValue {
                metric_name: &v.metric_name,
                metric_labels: &v.metric_labels,
                // metav1.Time marshals as RFC 3339 with whole seconds.
                timestamp: v.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                value: swell_scaling::quantity::milli_quantity(v.value),
            })
            .collect(),
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// A `metav1.Status` failure.
pub(crate) fn status_body(code: StatusCode, reason: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    }))
    .unwrap_or_default()
}

/// Always JSON, whatever `Accept` asked for: client-go decodes by the reply's Content-Type.
pub(crate) fn json(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    json(code, status_body(code, reason, message))
}

pub(crate) fn unauthorized() -> Response {
    status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

pub(crate) fn metric_error(e: &MetricError) -> Response {
    let (MetricError::NotFound(m) | MetricError::BadRequest(m) | MetricError::Unavailable(m)) = e;
    status(e.status(), e.reason(), m)
}

/// The `labelSelector` query parameter, decoded; empty when absent.
pub(crate) fn label_selector(query: Option<&str>) -> String {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn metric_list_shape_matches_keda() {
        let ts: jiff::Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        let values = [
            MetricValue {
                metric_name: "s0-demo".into(),
                metric_labels: BTreeMap::new(),
                value: 2.5,
                timestamp: ts,
            },
            MetricValue {
                metric_name: "s0-demo".into(),
                metric_labels: [("a".to_string(), "b".to_string())].into(),
                value: 4.0,
                timestamp: ts,
            },
        ];
        let got = parse(&external_metric_value_list(&values));
        assert_eq!(
            got,
            serde_json::json!({
                "kind": "ExternalMetricValueList",
                "apiVersion": "external.metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": [
                    {"metricName": "s0-demo", "metricLabels": {}, "timestamp": "2026-01-02T03:04:05Z", "value": "2500m"},
                    {"metricName": "s0-demo", "metricLabels": {"a": "b"}, "timestamp": "2026-01-02T03:04:05Z", "value": "4"},
                ]
            })
        );
        let empty = parse(&external_metric_value_list(&[]));
        assert_eq!(empty["items"], serde_json::json!([]));
    }

    #[test]
    fn discovery_documents() {
        let list = parse(&api_group_list());
        assert_eq!(list["kind"], "APIGroupList");
        assert_eq!(list["groups"][0]["name"], GROUP);
        assert_eq!(
            list["groups"][0]["preferredVersion"]["groupVersion"],
            "external.metrics.k8s.io/v1beta1"
        );
        let group = parse(&api_group());
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(group["apiVersion"], "v1");
        assert_eq!(group["preferredVersion"]["version"], "v1beta1");
        let res = parse(&api_resource_list_of(own_resources()));
        assert_eq!(res["groupVersion"], "external.metrics.k8s.io/v1beta1");
        assert_eq!(
            res["resources"][0],
            serde_json::json!({"name": "externalmetrics", "singularName": "", "namespaced": true,
                "kind": "ExternalMetricValueList", "verbs": ["get"]})
        );
    }

    #[test]
    fn status_shape() {
        let s = parse(&status_body(StatusCode::FORBIDDEN, "Forbidden", "no"));
        assert_eq!(
            s,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "no", "reason": "Forbidden", "code": 403})
        );
    }

    #[test]
    fn metric_errors_map_to_codes() {
        assert_eq!(
            metric_error(&MetricError::NotFound("x".into())).status(),
            404
        );
        assert_eq!(
            metric_error(&MetricError::BadRequest("x".into())).status(),
            400
        );
        assert_eq!(
            metric_error(&MetricError::Unavailable("x".into())).status(),
            503
        );
    }

    #[test]
    fn selector_from_query() {
        assert_eq!(
            label_selector(Some("labelSelector=scaledobject.keda.sh%2Fname%3Ddemo&x=1")),
            "scaledobject.keda.sh/name=demo"
        );
        assert_eq!(
            label_selector(Some("labelSelector=a+in+(b,c)")),
            "a in (b,c)"
        );
        assert_eq!(label_selector(Some("other=1")), "");
        assert_eq!(label_selector(None), "");
    }
}
