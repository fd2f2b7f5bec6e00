//! `prometheus`: scale on the value of an instant PromQL query (`/api/v1/query`).

use std::time::Duration;

use serde_json::Value;
use swell_scaling::naming::{metric_name, normalize};

use crate::aws::{Identity, parse_identity};
use crate::http::HttpClientKey;
use crate::http_auth::{self, HttpAuth, Mode};
use crate::{
    Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput, UpstreamError,
};

const SERVER: Field =
    Field::new("serverAddress").hint("the Prometheus base URL, e.g. http://prometheus:9090");
const QUERY: Field = Field::new("query").hint("a PromQL query returning one value");
const THRESHOLD: Field = Field::new("threshold");
const ACTIVATION: Field = Field::new("activationThreshold");
const NAMESPACE: Field = Field::new("namespace");
const CUSTOM_HEADERS: Field = Field::new("customHeaders");
const QUERY_PARAMETERS: Field = Field::new("queryParameters");
const IGNORE_NULL: Field = Field::new("ignoreNullValues");
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const TIMEOUT: Field = Field::new("timeout").hint("a Go duration such as 5s, or milliseconds");
/// Set for Amazon Managed Prometheus: queries are signed with SigV4 (service `aps`) by the
/// trigger's AWS identity, as KEDA does when the trigger metadata has it.
const AWS_REGION: Field = Field::new("awsRegion").hint("the workspace's region, e.g. eu-west-1");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    SERVER,
    QUERY,
    THRESHOLD,
    ACTIVATION,
    NAMESPACE,
    CUSTOM_HEADERS,
    QUERY_PARAMETERS,
    IGNORE_NULL,
    UNSAFE_SSL,
    TIMEOUT,
    AWS_REGION,
];

/// Modes KEDA's prometheus scaler accepts and then never applies.
const UNSUPPORTED: &[(Mode, &str)] = &[(
    Mode::ApiKey,
    "KEDA accepts it and never sends the key; use custom (customAuthHeader, customAuthValue) instead",
)];

pub struct PrometheusScaler {
    server: String,
    query: String,
    threshold: f64,
    activation: f64,
    namespace: Option<String>,
    headers: Vec<(String, String)>,
    parameters: Vec<(String, String)>,
    ignore_null: bool,
    auth: HttpAuth,
    /// Region and identity that sign every query (Amazon Managed Prometheus).
    sigv4: Option<(String, Identity)>,
    client_key: HttpClientKey,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl PrometheusScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<PrometheusScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        built
    }

    /// Reads the trigger's parameters into `p` (every problem with its field) without I/O;
    /// `swell check` and the admission webhook call it too.
    pub fn parse(
        input: &TriggerInput,
        shared: &Shared,
        p: &mut Params<'_>,
    ) -> Result<PrometheusScaler, ScalerError> {
        let server = p.url(SERVER, true);
        let query = p.string(QUERY);
        let threshold = p.target(THRESHOLD);
        let activation = p.float(ACTIVATION, 0.0);
        let namespace = p.opt_string(NAMESPACE);
        let headers = p.map(CUSTOM_HEADERS);
        let parameters = p.map(QUERY_PARAMETERS);
        let ignore_null = p.bool(IGNORE_NULL, true);
        let unsafe_ssl = p.bool(UNSAFE_SSL, false);
        // Without one (or 0), KEDA's global HTTP timeout.
        let timeout = p.duration(TIMEOUT).filter(|t| !t.is_zero());
        let auth = http_auth::parse(p, "prometheus", UNSUPPORTED);
        if !auth.modes.is_empty()
            && input
                .pod_identity
                .provider
                .as_deref()
                .is_some_and(|p| !p.is_empty() && p != "none")
        {
            p.error(
                "authModes",
                "pod identity cannot be enabled with other auth types (as KEDA); remove authModes or the TriggerAuthentication's podIdentity",
            );
        }
        // Offline, an identity from an unread TriggerAuthentication is not known: no signer.
        let sigv4 = p
            .opt_string(AWS_REGION)
            .and_then(|region| parse_identity(input, p).map(|identity| (region, identity)));
        let client_key = auth.client_key(unsafe_ssl, timeout);
        Ok(PrometheusScaler {
            metric: metric_name(input.index, &normalize("prometheus")),
            server: server.trim_end_matches('/').to_string(),
            query,
            threshold,
            activation,
            namespace,
            headers,
            parameters,
            ignore_null,
            auth,
            sigv4,
            client_key,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        })
    }

    /// Everything that identifies the question; holds secrets, so it is only hashed.
    fn coalesce_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &self.auth,
            &self.client_key,
            &self.headers,
            &self.parameters,
            &self.namespace,
            &self.sigv4,
        )
            .hash(&mut h);
        format!("{}|{}|{:x}", self.server, self.query, h.finish())
    }

    async fn fetch(&self) -> Result<f64, UpstreamError> {
        let client = self.shared.http.get(&self.client_key)?;
        let url = format!("{}/api/v1/query", self.server);
        let time = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut query: Vec<(&str, &str)> = vec![("query", &self.query), ("time", &time)];
        if let Some(ns) = &self.namespace {
            query.push(("namespace", ns));
        }
        query.extend(
            self.parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut req = client.get(&url).query(&query);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = self
            .auth
            .apply(req, &client, &self.shared.oauth_tokens)
            .await?;
        let mut request = req.build().map_err(|e| {
            let message = format!("GET {url}: {}", e.without_url());
            UpstreamError::new(crate::UpstreamKind::Other, message)
        })?;
        if let Some((region, identity)) = &self.sigv4 {
            self.shared
                .aws
                .sign(identity, region, "aps", &mut request)
                .await?;
        }
        let resp = crate::observe::request(client.execute(request))
            .await
            .map_err(|e| {
                let e = e.without_url();
                let message = format!("GET {url}: {}", crate::aws::error_chain(&e));
                UpstreamError::reqwest(&e, message)
            })?;
        let status = resp.status().as_u16();
        if status == 401 {
            self.auth.refused(&self.shared.oauth_tokens);
        }
        if !resp.status().is_success() {
            return Err(UpstreamError::http(
                status,
                format!("prometheus query api returned error. status: {status}"),
            ));
        }
        let body = resp.text().await.map_err(|e| {
            let e = e.without_url();
            UpstreamError::reqwest(&e, format!("reading the answer of {url}: {e}"))
        })?;
        let json = parse_answer(&body)?;
        if empty_answer(&json) {
            crate::observe::empty_response(self.ignore_null);
        }
        value_of(&json, &self.query, self.ignore_null)
    }
}

fn parse_answer(body: &str) -> Result<Value, UpstreamError> {
    serde_json::from_str(body)
        .map_err(|e| UpstreamError::bad_response(format!("the Prometheus answer is not JSON: {e}")))
}

/// Whether the answer is one KEDA counts in `keda_scaler_empty_upstream_responses_total`:
/// no element, or an element with an empty value list.
pub fn empty_answer(json: &Value) -> bool {
    match json.pointer("/data/result").and_then(Value::as_array) {
        None => true,
        Some(r) => match r.as_slice() {
            [] => true,
            [one] => one
                .get("value")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty),
            _ => false,
        },
    }
}

/// KEDA's reading of a `/api/v1/query` answer: no element is 0 with `ignoreNullValues`
/// (an error otherwise), more than one element is an error, NaN and ±Inf are 0 with
/// `ignoreNullValues` (an error otherwise).
pub fn query_value(body: &str, query: &str, ignore_null: bool) -> Result<f64, UpstreamError> {
    value_of(&parse_answer(body)?, query, ignore_null)
}

fn value_of(json: &Value, query: &str, ignore_null: bool) -> Result<f64, UpstreamError> {
    let bad = |m: String| Err(UpstreamError::bad_response(m));
    let empty = Vec::new();
    let result = json
        .pointer("/data/result")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let first = match result.as_slice() {
        [] if ignore_null => return Ok(0.0),
        [] => {
            return bad(
                "prometheus metrics 'prometheus' target may be lost, the result is empty \
                 (set ignoreNullValues: true to read it as 0)"
                    .into(),
            );
        }
        [one] => one,
        _ => {
            return bad(format!(
                "prometheus query {query} returned multiple elements"
            ));
        }
    };
    let value = first
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let v = match value.as_slice() {
        [] if ignore_null => return Ok(0.0),
        [] => {
            return bad(
                "prometheus metrics 'prometheus' target may be lost, the value list is empty"
                    .into(),
            );
        }
        [_] => {
            return bad(format!(
                "prometheus query {query} didn't return enough values"
            ));
        }
        [_, v, ..] => match v {
            Value::String(s) => parse_go_float(s).ok_or_else(|| {
                UpstreamError::bad_response(format!(
                    "prometheus query {query} returned {s:?}, not a number"
                ))
            })?,
            Value::Null => -1.0,
            other => {
                return bad(format!(
                    "prometheus query {query} returned {other}, not a number"
                ));
            }
        },
    };
    if v.is_nan() || v.is_infinite() {
        if ignore_null {
            return Ok(0.0);
        }
        return bad(format!("prometheus query returns {v}"));
    }
    Ok(v)
}

/// Go's `strconv.ParseFloat`, for the spellings Prometheus writes (`NaN`, `+Inf`, `-Inf`).
fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

#[async_trait::async_trait]
impl Scaler for PrometheusScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.threshold,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "prometheus",
                &format!("prometheus|{}", self.coalesce_key()),
                self.polling,
                self.activation,
                || self.fetch(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(format!("prometheus|{}", self.coalesce_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_auth::Authorization;
    use crate::tls::Secret;
    use crate::{RawParams, map};

    fn scaler(
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> Result<PrometheusScaler, ScalerError> {
        PrometheusScaler::new(
            &TriggerInput {
                index: 2,
                type_: "prometheus".into(),
                params: RawParams {
                    trigger_index: 2,
                    metadata: map(meta),
                    auth: map(auth),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    const BASE: &[(&str, &str)] = &[
        ("serverAddress", "http://prom:9090/"),
        ("query", "sum(rate(http_requests_total[2m]))"),
        ("threshold", "100.50"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn parses_valid_metadata() {
        struct Case {
            meta: Vec<(&'static str, &'static str)>,
            auth: Vec<(&'static str, &'static str)>,
            check: fn(&PrometheusScaler),
        }
        let cases = [
            Case {
                meta: with(&[]),
                auth: vec![],
                check: |s| {
                    assert_eq!(
                        s.metric_spec(),
                        MetricSpec::External {
                            name: "s2-prometheus".into(),
                            target: 100.5,
                            metric_type: crate::MetricType::AverageValue
                        }
                    );
                    assert_eq!(s.server, "http://prom:9090");
                    assert!(s.ignore_null);
                    assert_eq!(s.activation, 0.0);
                    assert_eq!(s.auth.authorization, Authorization::None);
                    assert!(!s.client_key.unsafe_ssl);
                    assert_eq!(s.client_key.timeout, None);
                },
            },
            Case {
                meta: with(&[
                    ("activationThreshold", "2.5"),
                    ("namespace", "team-a"),
                    ("customHeaders", "X-Org=1, X-Scope = a"),
                    ("queryParameters", "dedup=false,partial_response=true"),
                    ("ignoreNullValues", "false"),
                    ("unsafeSsl", "true"),
                    ("timeout", "1.5s"),
                ]),
                auth: vec![],
                check: |s| {
                    assert_eq!(s.activation, 2.5);
                    assert_eq!(s.namespace.as_deref(), Some("team-a"));
                    assert_eq!(
                        s.headers,
                        vec![("X-Org".into(), "1".into()), ("X-Scope".into(), "a".into())]
                    );
                    assert_eq!(s.parameters.len(), 2);
                    assert!(!s.ignore_null);
                    assert!(s.client_key.unsafe_ssl);
                    assert_eq!(s.client_key.timeout, Some(Duration::from_millis(1500)));
                },
            },
            Case {
                meta: with(&[]),
                auth: vec![("authModes", "bearer"), ("bearerToken", "tok")],
                check: |s| {
                    assert_eq!(
                        s.auth.authorization,
                        Authorization::Bearer(Secret::new("tok"))
                    )
                },
            },
            Case {
                meta: with(&[("authModes", "basic")]),
                auth: vec![("username", "u"), ("password", "p")],
                check: |s| {
                    assert_eq!(
                        s.auth.authorization,
                        Authorization::Basic {
                            user: "u".into(),
                            password: Secret::new("p")
                        }
                    )
                },
            },
            Case {
                meta: with(&[]),
                auth: vec![
                    ("authModes", "tls,custom"),
                    ("ca", "CA"),
                    ("cert", "C"),
                    ("key", "K"),
                    ("customAuthHeader", "X-Key"),
                    ("customAuthValue", "v"),
                ],
                check: |s| {
                    assert_eq!(s.client_key.ca.as_deref(), Some("CA"));
                    assert!(s.client_key.client_cert.is_some());
                    assert!(matches!(&s.auth.custom, Some((header, _)) if header == "X-Key"));
                },
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let s = scaler(&c.meta, &c.auth).unwrap_or_else(|e| panic!("case {i}: {e}"));
            (c.check)(&s);
        }
    }

    type Pairs = Vec<(&'static str, &'static str)>;

    #[test]
    fn rejects_invalid_metadata() {
        // (metadata, authentication parameters, expected messages)
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                vec![],
                vec![],
                vec![
                    "triggers[2].metadata.serverAddress: required",
                    "triggers[2].metadata.query: required",
                    "triggers[2].metadata.threshold: required",
                ],
            ),
            (
                vec![
                    ("serverAddress", "prom:9090"),
                    ("query", "up"),
                    ("threshold", "lots"),
                    ("activationThreshold", "x"),
                    ("ignoreNullValues", "maybe"),
                    ("customHeaders", "novalue"),
                    ("timeout", "-1"),
                ],
                vec![],
                vec![
                    "triggers[2].metadata.serverAddress: \"prom:9090\" is not an http",
                    "triggers[2].metadata.threshold: \"lots\" is not a number",
                    "triggers[2].metadata.activationThreshold: \"x\" is not a number",
                    "triggers[2].metadata.ignoreNullValues: \"maybe\" is not true or false",
                    "triggers[2].metadata.customHeaders: entry 1 is not key=value",
                    "triggers[2].metadata.timeout: duration cannot be negative: \"-1\"",
                ],
            ),
            (
                with(&[("authModes", "oauth")]),
                vec![],
                vec![
                    "triggers[2].authenticationRef (parameter oauthTokenURI): required",
                    "triggers[2].authenticationRef (parameter clientID): required",
                ],
            ),
            (
                with(&[("authModes", "apiKey")]),
                vec![("apiKey", "k")],
                vec![
                    "triggers[2].metadata.authModes: apiKey is not supported by the prometheus scaler",
                ],
            ),
            (
                with(&[("timeout", "a")]),
                vec![],
                vec!["triggers[2].metadata.timeout: \"a\" is not a duration"],
            ),
            (
                with(&[]),
                vec![
                    ("authModes", "bearer,basic"),
                    ("bearerToken", "t"),
                    ("username", "u"),
                ],
                vec![
                    "triggers[2].metadata.authModes: bearer, basic and oauth cannot be used together",
                ],
            ),
            (
                with(&[]),
                vec![("authModes", "bearer")],
                vec!["triggers[2].metadata.authModes: bearer needs bearerToken"],
            ),
            (
                with(&[("authModes", "basic")]),
                vec![],
                vec!["triggers[2].authenticationRef (parameter username): required"],
            ),
        ];
        for (meta, auth, wants) in cases {
            let e = scaler(&meta, &auth).err().expect("invalid").to_string();
            for want in wants {
                assert!(e.contains(want), "want {want:?} in {e}");
            }
        }
    }

    /// KEDA's `checkAuthConfigWithPodIdentity`: a pod identity and an auth mode together
    /// are refused; a pod identity alone is not.
    #[test]
    fn pod_identity_excludes_other_auth_modes() {
        let with_identity = |auth: &[(&str, &str)]| {
            let input = TriggerInput {
                index: 2,
                type_: "prometheus".into(),
                params: RawParams {
                    trigger_index: 2,
                    metadata: map(BASE),
                    auth: map(auth),
                    ..Default::default()
                },
                pod_identity: crate::aws::PodIdentityInput {
                    provider: Some("azure-workload".into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            PrometheusScaler::new(&input, &Shared::default()).map(|_| ())
        };
        let e = with_identity(&[("authModes", "basic"), ("username", "u")])
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("authModes: pod identity cannot be enabled with other auth types"),
            "{e}"
        );
        assert!(with_identity(&[]).is_ok());
    }

    #[test]
    fn secrets_stay_out_of_messages() {
        let e = scaler(
            &with(&[("customHeaders", "Authorization")]),
            &[("authModes", "basic"), ("password", "hunter2")],
        )
        .err()
        .expect("invalid")
        .to_string();
        assert!(
            !e.contains("hunter2") && !e.contains("Authorization"),
            "{e}"
        );
        let s = scaler(
            &with(&[]),
            &[("authModes", "bearer"), ("bearerToken", "hunter2")],
        )
        .unwrap();
        assert!(!format!("{:?}", s.auth).contains("hunter2"));
        assert!(!s.coalesce_key().contains("hunter2"));
    }

    #[test]
    fn reads_results_like_keda() {
        let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"7.5"]}]}}"#;
        let none = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        let inf = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}}"#;
        let short = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}"#;
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(query_value(one, "q", true), Ok(7.5));
        assert_eq!(query_value(one, "q", false), Ok(7.5));
        assert_eq!(query_value(none, "q", true), Ok(0.0));
        assert!(
            query_value(none, "q", false)
                .unwrap_err()
                .message
                .contains("the result is empty")
        );
        assert_eq!(
            query_value(two, "q", true),
            Err(UpstreamError::bad_response(
                "prometheus query q returned multiple elements"
            ))
        );
        assert_eq!(query_value(nan, "q", true), Ok(0.0));
        assert!(
            query_value(nan, "q", false)
                .unwrap_err()
                .message
                .contains("returns NaN")
        );
        assert_eq!(query_value(inf, "q", true), Ok(0.0));
        assert!(
            query_value(inf, "q", false)
                .unwrap_err()
                .message
                .contains("returns inf")
        );
        assert!(
            query_value(short, "q", true)
                .unwrap_err()
                .message
                .contains("enough values")
        );
        // A scalar result is not a list of elements: KEDA cannot read it either.
        assert!(query_value(scalar, "q", true).is_err());
        assert!(query_value("<html>", "q", true).is_err());
        // What KEDA counts as an empty upstream response.
        for (body, empty) in [(one, false), (none, true), (two, false), (short, false)] {
            let json: Value = serde_json::from_str(body).unwrap();
            assert_eq!(empty_answer(&json), empty, "{body}");
        }
        let no_values = r#"{"data":{"result":[{"metric":{},"value":[]}]}}"#;
        assert!(empty_answer(&serde_json::from_str(no_values).unwrap()));
    }

    /// Amazon Managed Prometheus: the query that reaches the server carries a SigV4
    /// signature (service `aps`, the trigger's region, its static key) that verifies
    /// against what was actually sent: path, query string and signed headers.
    #[tokio::test]
    async fn signs_queries_for_amazon_managed_prometheus() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed before the request ended");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(buf).unwrap()
        });
        let server_address = format!("http://{addr}/workspaces/ws-1");
        let s = scaler(
            &[
                ("serverAddress", server_address.as_str()),
                ("query", "sum(up{job=\"a b\"})"),
                ("threshold", "5"),
                ("awsRegion", "eu-west-1"),
            ],
            &[
                ("awsAccessKeyID", "AKIDSWELLTEST"),
                ("awsSecretAccessKey", "c2VjcmV0LWtleQ"),
            ],
        )
        .unwrap();
        assert_eq!(s.fetch().await.unwrap(), 7.0);
        let request = server.await.unwrap();

        let mut lines = request.split("\r\n");
        let mut start = lines.next().unwrap().split(' ');
        let (method, target) = (start.next().unwrap(), start.next().unwrap());
        let headers: Vec<(String, String)> = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header in {request}"))
        };
        let authorization = header("authorization");
        let date = header("x-amz-date");
        let scope = format!(
            "Credential=AKIDSWELLTEST/{}/eu-west-1/aps/aws4_request",
            &date[..8]
        );
        assert!(authorization.contains(&scope), "{authorization}");
        let signed: Vec<&str> = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap()
            .split(';')
            .collect();
        assert!(
            signed.contains(&"host") && signed.contains(&"x-amz-date"),
            "{signed:?}"
        );

        // Sign what arrived, at the time it says, with the secret: the same signature.
        let time = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &date)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        let creds = aws_credential_types::Credentials::new(
            "AKIDSWELLTEST",
            "c2VjcmV0LWtleQ",
            None,
            None,
            "test",
        );
        let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("aps")
            .time(std::time::SystemTime::from(time))
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("http://{}{target}", header("host"));
        let received: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| signed.contains(&k.as_str()) && k != "x-amz-date")
            .cloned()
            .collect();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            method,
            &url,
            received.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            aws_sigv4::http_request::SignableBody::Bytes(&[]),
        )
        .unwrap();
        let (_, signature) = aws_sigv4::http_request::sign(signable, &params)
            .unwrap()
            .into_parts();
        assert!(
            authorization.ends_with(&format!("Signature={signature}")),
            "{authorization} was not signed over what was sent (expected {signature})"
        );
    }

    #[test]
    fn amazon_managed_prometheus_needs_an_identity() {
        let e = scaler(&with(&[("awsRegion", "eu-west-1")]), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("triggers[2].metadata.identityOwner: no AWS credentials"),
            "{e}"
        );
    }
}
