//! `metrics-api`: read a number from an HTTP endpoint (JSON with a GJSON-style
//! `valueLocation`, or Prometheus text exposition).

use serde_json::Value;
use swell_scaling::naming::{metric_name, normalize};
use swell_scaling::quantity::parse_quantity;

use crate::http::HttpClientKey;
use crate::http_auth::{self, HttpAuth};
use crate::{
    Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput, UpstreamError,
};

const URL: Field = Field::new("url").hint("the endpoint's http(s) URL");
const VALUE_LOCATION: Field =
    Field::new("valueLocation").hint("where the number is, e.g. components.worker.tasks");
const TARGET: Field = Field::new("targetValue");
const ACTIVATION: Field = Field::new("activationTargetValue");
const FORMAT: Field = Field::new("format");
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const TIMEOUT: Field = Field::new("timeout").hint("a Go duration such as 5s, or milliseconds");
const AGGREGATE: Field = Field::new("aggregateFromKubeServiceEndpoints");
const AGGREGATION: Field = Field::new("aggregationType");

pub struct MetricsApiScaler {
    url: String,
    location: String,
    prometheus: bool,
    target: f64,
    activation: f64,
    auth: HttpAuth,
    client_key: HttpClientKey,
    metric: String,
    metric_type: crate::MetricType,
    shared: Shared,
}

/// Every parameter, for unknown-key warnings (the authentication ones are
/// [`http_auth::FIELDS`]).
pub const FIELDS: &[Field] = &[
    URL,
    VALUE_LOCATION,
    TARGET,
    ACTIVATION,
    FORMAT,
    UNSAFE_SSL,
    TIMEOUT,
    AGGREGATE,
    AGGREGATION,
];

/// The parsed trigger, before any client exists.
pub struct Config {
    url: String,
    location: String,
    target: f64,
    activation: f64,
    format: &'static str,
    auth: HttpAuth,
    client_key: HttpClientKey,
}

/// Reads and checks the trigger's parameters; every problem goes into `p`.
pub fn parse(p: &mut Params<'_>) -> Config {
    let url = p.url(URL, true);
    let location = p.string(VALUE_LOCATION);
    let target = p.target(TARGET);
    let activation = p.float(ACTIVATION, 0.0);
    let format = p.one_of(FORMAT, &["json", "prometheus", "xml", "yaml"], "json");
    if matches!(format, "xml" | "yaml") {
        p.error(
            "format",
            format!("{format} is not supported by Swell yet; serve json or prometheus"),
        );
    }
    let _ = p.one_of(AGGREGATION, &["average", "sum", "max", "min"], "average");
    if p.bool(AGGREGATE, false) {
        p.error(
            "aggregateFromKubeServiceEndpoints",
            "is not supported by Swell yet; point url at one endpoint that serves the total",
        );
    }
    let unsafe_ssl = p.bool(UNSAFE_SSL, false);
    // Without one (or 0), KEDA's global HTTP timeout.
    let timeout = p.duration(TIMEOUT).filter(|t| !t.is_zero());
    let auth = http_auth::parse(p, "metrics-api", &[]);
    Config {
        url,
        location,
        target,
        activation,
        format,
        client_key: auth.client_key(unsafe_ssl, timeout),
        auth,
    }
}

impl MetricsApiScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<MetricsApiScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let Config {
            url,
            location,
            target,
            activation,
            format,
            auth,
            client_key,
        } = parse(&mut p);
        p.finish()?;
        Ok(MetricsApiScaler {
            metric: metric_name(input.index, &normalize(&format!("metric-api-{location}"))),
            url,
            location,
            prometheus: format == "prometheus",
            target,
            activation,
            auth,
            client_key,
            metric_type: input.metric_type.unwrap_or_default(),
            shared: shared.clone(),
        })
    }

    fn extract(&self, body: &str) -> Result<f64, ScalerError> {
        if self.prometheus {
            return prometheus_value(body, &self.location).ok_or_else(|| {
                UpstreamError::bad_response(format!(
                    "metric {:?} not found in the Prometheus text from {}",
                    self.location, self.url
                ))
                .into()
            });
        }
        let json: Value = serde_json::from_str(body).map_err(|e| {
            UpstreamError::bad_response(format!("{} did not return JSON: {e}", self.url))
        })?;
        json_value(&json, &self.location).ok_or_else(|| {
            UpstreamError::bad_response(format!(
                "valueLocation {:?} holds no number in the JSON from {}",
                self.location, self.url
            ))
            .into()
        })
    }
}

/// Follows a GJSON-style path (`a.b.0.c`, `\.` for a literal dot, `#` for an array's
/// length) and reads a number or a quantity string.
pub fn json_value(root: &Value, path: &str) -> Option<f64> {
    let mut keys = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            '.' => keys.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    keys.push(cur);
    let mut v = root;
    let mut length = None;
    for k in &keys {
        match v {
            Value::Array(items) if k == "#" => length = Some(items.len() as f64),
            Value::Array(items) => v = items.get(k.parse::<usize>().ok()?)?,
            Value::Object(map) => v = map.get(k)?,
            _ => return None,
        }
    }
    if length.is_some() {
        return length;
    }
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_quantity(s),
        _ => None,
    }
}

/// The value of the first sample whose name (with labels, if given) is `location`.
pub fn prometheus_value(text: &str, location: &str) -> Option<f64> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| {
            let (series, rest) = match l.find('}') {
                Some(i) => (&l[..=i], &l[i + 1..]),
                None => l.split_once(char::is_whitespace)?,
            };
            let series = series.trim();
            let name = series.split('{').next().unwrap_or(series);
            if series == location || name == location {
                rest.split_whitespace().next()?.parse().ok()
            } else {
                None
            }
        })
}

#[async_trait::async_trait]
impl Scaler for MetricsApiScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let client = self
            .shared
            .http
            .get(&self.client_key)
            .map_err(UpstreamError::from)?;
        let req = self
            .auth
            .apply(client.get(&self.url), &client, &self.shared.oauth_tokens)
            .await?;
        // Never echo the request (it may carry a key); the URL alone names the source.
        let resp = crate::observe::send(req).await.map_err(|e| {
            // The whole chain: "error sending request" alone hides a timeout or refusal.
            let e = e.without_url();
            let why = crate::aws::error_chain(&e);
            UpstreamError::reqwest(&e, format!("GET {}: {why}", self.url))
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.auth.refused(&self.shared.oauth_tokens);
        }
        if !status.is_success() {
            let message = format!("GET {} returned {status}", self.url);
            return Err(UpstreamError::http(status.as_u16(), message).into());
        }
        let body = resp.text().await.map_err(|e| {
            let e = e.without_url();
            UpstreamError::reqwest(&e, format!("reading {}: {e}", self.url))
        })?;
        let value = self.extract(&body)?;
        Ok(Sample {
            value,
            active: value > self.activation,
        })
    }

    /// The URL, where the value is and how the request authenticates and connects
    /// (credentials hashed, never shown).
    fn upstream_key(&self) -> Option<String> {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.auth, &self.client_key, self.prometheus).hash(&mut h);
        Some(format!(
            "metrics-api|{}|{}|{:x}",
            self.url,
            self.location,
            h.finish()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::http_auth::{ApiKey, Authorization};
    use crate::tls::Secret;
    use crate::{RawParams, map};
    use serde_json::json;

    fn scaler(
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> Result<MetricsApiScaler, ScalerError> {
        MetricsApiScaler::new(
            &TriggerInput {
                type_: "metrics-api".into(),
                params: RawParams {
                    metadata: map(meta),
                    auth: map(auth),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    #[test]
    fn json_paths() {
        let v = json!({"components": {"worker": {"tasks": 12, "q": "2500m"}}, "list": [{"n": 3}, {"n": 4}], "a.b": 7});
        assert_eq!(json_value(&v, "components.worker.tasks"), Some(12.0));
        assert_eq!(json_value(&v, "components.worker.q"), Some(2.5));
        assert_eq!(json_value(&v, "list.1.n"), Some(4.0));
        assert_eq!(json_value(&v, "list.#"), Some(2.0));
        assert_eq!(json_value(&v, "a\\.b"), Some(7.0));
        assert_eq!(json_value(&v, "components.worker"), None);
        assert_eq!(json_value(&v, "missing.path"), None);
    }

    #[test]
    fn prometheus_text() {
        let t = "# HELP q depth\nq{queue=\"a\"} 3\nq{queue=\"b\"} 9\nother 1.5\n";
        assert_eq!(prometheus_value(t, "q{queue=\"b\"}"), Some(9.0));
        assert_eq!(prometheus_value(t, "q"), Some(3.0));
        assert_eq!(prometheus_value(t, "other"), Some(1.5));
        assert_eq!(prometheus_value(t, "none"), None);
    }

    #[test]
    fn parses_metadata() {
        let s = scaler(
            &[
                ("url", "http://h/m"),
                ("valueLocation", "a.b"),
                ("targetValue", "5"),
                ("activationTargetValue", "2"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s0-metric-api-a-b".into(),
                target: 5.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(s.activation, 2.0);
        let s = scaler(
            &[
                ("url", "https://h"),
                ("valueLocation", "v"),
                ("targetValue", "1"),
                ("method", "query"),
            ],
            &[("authMode", "apiKey"), ("apiKey", "k")],
        )
        .unwrap();
        assert_eq!(
            s.auth.api_key,
            Some(ApiKey::Query {
                name: "api_key".into(),
                key: Secret::new("k")
            })
        );
        let s = scaler(
            &[
                ("url", "https://h"),
                ("valueLocation", "v"),
                ("targetValue", "1"),
                ("authMode", "bearer"),
            ],
            &[("token", "t")],
        )
        .unwrap();
        assert_eq!(
            s.auth.authorization,
            Authorization::Bearer(Secret::new("t"))
        );
        let s = scaler(
            &[
                ("url", "https://h"),
                ("valueLocation", "v"),
                ("targetValue", "1"),
                ("timeout", "750ms"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.client_key.timeout, Some(Duration::from_millis(750)));
    }

    #[test]
    fn rejects_bad_metadata() {
        let e = scaler(
            &[
                ("url", "ftp://x"),
                ("targetValue", "many"),
                ("format", "csv"),
            ],
            &[],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("metadata.url: \"ftp://x\" is not an http"),
            "{e}"
        );
        assert!(e.contains("metadata.valueLocation: required"), "{e}");
        assert!(
            e.contains("metadata.targetValue: \"many\" is not a number"),
            "{e}"
        );
        assert!(
            e.contains("metadata.format: \"csv\" is not one of json, prometheus, xml, yaml"),
            "{e}"
        );
        let e = scaler(
            &[
                ("url", "http://x"),
                ("valueLocation", "v"),
                ("targetValue", "1"),
            ],
            &[("authMode", "basic")],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("parameter username): required; set username in the TriggerAuthentication"),
            "{e}"
        );
        let e = scaler(
            &[
                ("url", "http://x"),
                ("valueLocation", "v"),
                ("targetValue", "1"),
                ("timeout", "-1s"),
                ("aggregateFromKubeServiceEndpoints", "true"),
                ("aggregationType", "median"),
            ],
            &[("authModes", "bearer,oauth")],
        )
        .err()
        .unwrap()
        .to_string();
        for want in [
            "metadata.timeout: duration cannot be negative",
            "metadata.aggregateFromKubeServiceEndpoints: is not supported by Swell yet",
            "metadata.aggregationType: \"median\" is not one of average, sum, max, min",
            "metadata.authModes: bearer, basic and oauth cannot be used together",
        ] {
            assert!(e.contains(want), "want {want:?} in {e}");
        }
    }
}
