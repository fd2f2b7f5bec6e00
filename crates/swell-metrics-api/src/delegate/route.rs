//! The routing decision and the request sent to a delegate, as pure functions of the
//! request, the authenticated caller and the delegates' metric lists.

use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::catalog::Catalog;
use crate::UserInfo;

/// The selector label the HPAs Swell creates carry (KEDA's).
const SCALED_OBJECT_LABEL: &str = "scaledobject.keda.sh/name";

/// Who answers a metric read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Swell's own ScaledObjects (also every metric no delegate lists: Swell's 404).
    Swell,
    /// The delegate at this index of the catalog.
    Delegate(usize),
}

/// `s<i>-…` or `composite-metric`: the names Swell gives its ScaledObjects' metrics.
pub fn is_swell_metric_name(metric: &str) -> bool {
    if metric.eq_ignore_ascii_case("composite-metric") {
        return true;
    }
    let Some(rest) = metric.strip_prefix('s') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].len() > 1 && rest.as_bytes()[digits] == b'-'
}

/// Whether the selector names a ScaledObject (`scaledobject.keda.sh/name=x`), as the HPA
/// Swell creates for each ScaledObject asks.
fn names_scaled_object(selector: &str) -> bool {
    selector.split(',').any(|term| {
        term.trim()
            .strip_prefix(SCALED_OBJECT_LABEL)
            .is_some_and(|r| r.trim_start().starts_with('='))
    })
}

/// Swell's own metric of one of its ScaledObjects, or one its source says it serves
/// (`served_here`: a k8s-cloudwatch-adapter ExternalMetric), goes to Swell; any other
/// metric goes to the first delegate (in configured order) whose list holds it; the rest get
/// Swell's 404.
pub fn route(metric: &str, selector: &str, catalog: &Catalog, served_here: bool) -> Route {
    if served_here || (is_swell_metric_name(metric) && names_scaled_object(selector)) {
        return Route::Swell;
    }
    catalog
        .position_of(metric)
        .map_or(Route::Swell, Route::Delegate)
}

/// The front-proxy identity headers sent to a delegate, built from the authenticated
/// caller only: nothing the caller sent is copied. Values that cannot be header values
/// are dropped (the delegate then sees fewer groups, never a forged one).
pub fn identity_headers(user: &UserInfo) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let mut push = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.push((name, v));
        }
    };
    push(HeaderName::from_static("x-remote-user"), &user.name);
    for g in &user.groups {
        push(HeaderName::from_static("x-remote-group"), g);
    }
    for (key, values) in &user.extra {
        // As the aggregator: the key is percent-encoded into the header name.
        let key = utf8_percent_encode(key, EXTRA_KEY)
            .to_string()
            .to_ascii_lowercase();
        let Ok(name) = HeaderName::from_bytes(format!("x-remote-extra-{key}").as_bytes()) else {
            continue;
        };
        for v in values {
            push(name.clone(), v);
        }
    }
    out
}

/// Characters kept as they are in an extra key (RFC 7230 token characters, less `%`).
const EXTRA_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Path segment encoding: everything but unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The delegate's URL for one metric read: rebuilt from the parsed namespace, metric and
/// selector, so no other query parameter of the caller's reaches the delegate.
pub fn metric_url(base: &str, namespace: &str, metric: &str, selector: &str) -> String {
    let mut url = format!(
        "{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}",
        utf8_percent_encode(namespace, SEGMENT),
        utf8_percent_encode(metric, SEGMENT)
    );
    if !selector.is_empty() {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", selector)
            .finish();
        url.push('?');
        url.push_str(&q);
    }
    url
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::delegate::catalog::Listing;

    fn catalog(lists: &[(&str, &[&str])]) -> Catalog {
        Catalog {
            delegates: lists
                .iter()
                .map(|(name, metrics)| {
                    let mut l = Listing::new(name);
                    l.metrics = metrics.iter().map(|m| m.to_string()).collect();
                    l
                })
                .collect(),
        }
    }

    #[test]
    fn swell_metric_names() {
        for (name, want) in [
            ("s0-prometheus", true),
            ("s12-metric-api-data-Count", true),
            ("composite-metric", true),
            ("s0-", false),
            ("s-x", false),
            ("sx-1", false),
            ("s0", false),
            ("queue_depth", false),
            ("", false),
        ] {
            assert_eq!(is_swell_metric_name(name), want, "{name}");
        }
    }

    #[test]
    fn routing_table() {
        let cat = catalog(&[
            ("prom", &["queue_depth", "s0-shadow"]),
            ("dd", &["queue_depth", "datadogmetric@default:x"]),
        ]);
        let so = "scaledobject.keda.sh/name=app";
        let cases = [
            // Swell's own: its name shape and a ScaledObject selector, even if listed.
            ("s0-prometheus", so, Route::Swell),
            ("s0-shadow", so, Route::Swell),
            (
                "composite-metric",
                "a=b, scaledobject.keda.sh/name = app",
                Route::Swell,
            ),
            // Swell-shaped but not asked for a ScaledObject: a delegate's if it lists it.
            ("s0-shadow", "", Route::Delegate(0)),
            (
                "s0-shadow",
                "scaledobject.keda.sh/namex=app",
                Route::Delegate(0),
            ),
            // The first delegate in configured order that lists it.
            ("queue_depth", "", Route::Delegate(0)),
            ("queue_depth", so, Route::Delegate(0)),
            ("datadogmetric@default:x", "", Route::Delegate(1)),
            // HPAs ask for names lowercased; lists are matched without case.
            ("QUEUE_DEPTH", "", Route::Delegate(0)),
            // Nobody lists it: Swell answers (its 404 names what it serves).
            ("unknown", "", Route::Swell),
            ("s1-nothing", so, Route::Swell),
        ];
        for (metric, selector, want) in cases {
            assert_eq!(
                route(metric, selector, &cat, false),
                want,
                "{metric} {selector:?}"
            );
        }
        assert_eq!(
            route("queue_depth", "", &Catalog::default(), false),
            Route::Swell
        );
        // What Swell's source serves itself (an ExternalMetric) is never delegated.
        assert_eq!(route("queue_depth", "", &cat, true), Route::Swell);
        assert_eq!(route("s0-shadow", "", &cat, true), Route::Swell);
    }

    #[test]
    fn identity_headers_come_from_the_authenticated_user_only() {
        let user = UserInfo {
            name: "system:serviceaccount:kube-system:horizontal-pod-autoscaler".into(),
            uid: "u-1".into(),
            groups: vec!["system:serviceaccounts".into(), "bad\ngroup".into()],
            extra: BTreeMap::from([("scopes.k8s.io/Pod Name".to_string(), vec!["p".to_string()])]),
        };
        let got: Vec<(String, String)> = identity_headers(&user)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x-remote-user".into(), user.name.clone()),
                ("x-remote-group".into(), "system:serviceaccounts".into()),
                (
                    "x-remote-extra-scopes.k8s.io%2fpod%20name".into(),
                    "p".into()
                ),
            ]
        );
    }

    #[test]
    fn metric_urls_are_rebuilt() {
        assert_eq!(
            metric_url("https://a:1", "ns", "queue_depth", ""),
            "https://a:1/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/queue_depth"
        );
        assert_eq!(
            metric_url("https://a:1/p", "ns", "a/b?c", "x=y,z in (1)"),
            "https://a:1/p/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/a%2Fb%3Fc?labelSelector=x%3Dy%2Cz+in+%281%29"
        );
    }
}
