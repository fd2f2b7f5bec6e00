//! OAuth 2.0 client-credentials tokens (RFC 6749 §4.4) for scalers that send a bearer token:
//! fetched from the token endpoint as Go's `golang.org/x/oauth2/clientcredentials` does
//! (the client authenticates with HTTP Basic first and, if the endpoint refuses that, in the
//! form body, remembering which worked), cached until 10 s before they expire, and shared by
//! every trigger with the same client, scopes and endpoint parameters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tls::Secret;
use crate::upstream::{UpstreamError, UpstreamKind};

/// Go's `oauth2` treats a token as expired this long before its expiry.
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// One client of one token endpoint, as a TriggerAuthentication's `oauth2` block (or the
/// `oauthTokenURI`, `clientID`, `clientSecret`, `scopes`, `endpointParams` parameters) gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OAuthClient {
    pub token_uri: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// Extra form parameters of the token request (`endpointParams`, URL-encoded pairs).
    pub params: Vec<(String, String)>,
}

/// A token and until when it may be sent.
#[derive(Clone)]
struct Token {
    /// The `Authorization` header value, e.g. `Bearer abc`.
    header: Secret,
    /// `None`: the endpoint gave no `expires_in`, so it never expires (as Go's `oauth2`).
    expiry: Option<Instant>,
}

impl Token {
    fn fresh(&self, now: Instant) -> bool {
        self.expiry.is_none_or(|e| now + EXPIRY_DELTA < e)
    }
}

/// Where the client's credentials go in the token request (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Header,
    Body,
}

#[derive(Default)]
struct Cell {
    token: Option<Token>,
    /// The style the endpoint accepted; unknown until the first token.
    style: Option<Style>,
}

/// The token cache, one cell per client; a cell's lock makes concurrent callers share one
/// token request.
#[derive(Default)]
pub struct Tokens {
    cells: Mutex<HashMap<OAuthClient, Arc<tokio::sync::Mutex<Cell>>>>,
}

impl Tokens {
    fn cell(&self, client: &OAuthClient) -> Arc<tokio::sync::Mutex<Cell>> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry(client.clone()).or_default().clone()
    }

    /// The `Authorization` header value for `client`: the cached token while it is fresh,
    /// else a new one from the token endpoint (over `http`, the scaler's own client).
    pub async fn header(
        &self,
        http: &reqwest::Client,
        client: &OAuthClient,
    ) -> Result<Secret, UpstreamError> {
        let cell = self.cell(client);
        let mut cell = cell.lock().await;
        if let Some(t) = cell.token.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(t.header.clone());
        }
        let (token, style) = fetch(http, client, cell.style).await?;
        let header = token.header.clone();
        *cell = Cell {
            token: Some(token),
            style: Some(style),
        };
        Ok(header)
    }

    /// Drops `client`'s cached token (the server refused it), so the next call fetches one.
    pub fn forget(&self, client: &OAuthClient) {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cells.get(client)
            && let Ok(mut c) = cell.try_lock()
        {
            c.token = None;
        }
    }
}

/// Requests a token in the known style, or header first and then body, as Go's auto-detect.
async fn fetch(
    http: &reqwest::Client,
    client: &OAuthClient,
    known: Option<Style>,
) -> Result<(Token, Style), UpstreamError> {
    if let Some(style) = known {
        return request(http, client, style).await.map(|t| (t, style));
    }
    match request(http, client, Style::Header).await {
        Ok(t) => Ok((t, Style::Header)),
        Err(_) => request(http, client, Style::Body)
            .await
            .map(|t| (t, Style::Body)),
    }
}

async fn request(
    http: &reqwest::Client,
    client: &OAuthClient,
    style: Style,
) -> Result<Token, UpstreamError> {
    let uri = &client.token_uri;
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    let scope = client.scopes.join(" ");
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    form.extend(client.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut req = http
        .post(uri)
        .header(reqwest::header::ACCEPT, "application/json");
    req = match style {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        Style::Header => req.basic_auth(
            form_encode(&client.client_id),
            Some(form_encode(client.client_secret.expose())),
        ),
        Style::Body => {
            form.push(("client_id", &client.client_id));
            form.push(("client_secret", client.client_secret.expose()));
            req
        }
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let resp = req
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let e = e.without_url();
            let why = crate::aws::error_chain(&e);
            UpstreamError::reqwest(&e, format!("oauth2 token from {uri}: {why}"))
        })?;
    let status = resp.status();
    let form_encoded = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = resp.text().await.map_err(|e| {
        let e = e.without_url();
        UpstreamError::reqwest(&e, format!("reading the oauth2 token from {uri}: {e}"))
    })?;
    let fields = if form_encoded {
        form_fields(&body)
    } else {
        json_fields(&body)
    };
    if !status.is_success() {
        return Err(refused(uri, status.as_u16(), &fields));
    }
    token(uri, &fields, Instant::now())
}

/// The answer's fields, from a JSON object (numbers as their text).
fn json_fields(body: &str) -> HashMap<String, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return HashMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect()
}

fn form_fields(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An error answer (RFC 6749 §5.2): its `error` and `error_description`, never the body
/// (which could echo what was sent).
fn refused(uri: &str, status: u16, fields: &HashMap<String, String>) -> UpstreamError {
    let code = fields.get("error").map_or("", String::as_str);
    let mut message = format!("oauth2 token endpoint {uri} refused the client: {status}");
    if !code.is_empty() {
        message.push_str(&format!(" {code}"));
    }
    if let Some(d) = fields.get("error_description") {
        message.push_str(&format!(" ({d})"));
    }
    let mut e = UpstreamError::http(status, message);
    if matches!(
        code,
        "invalid_client" | "unauthorized_client" | "invalid_grant"
    ) {
        e.kind = UpstreamKind::Auth;
    }
    e
}

/// A successful answer (RFC 6749 §5.1) read as a token; `now` is when it arrived.
fn token(
    uri: &str,
    fields: &HashMap<String, String>,
    now: Instant,
) -> Result<Token, UpstreamError> {
    let access = fields
        .get("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            UpstreamError::bad_response(format!(
                "oauth2 token endpoint {uri} answered without an access_token"
            ))
        })?;
    // As Go's `Token.Type`: "bearer" in any case is sent as "Bearer", other types as given.
    let kind = match fields.get("token_type").map(String::as_str) {
        None | Some("") => "Bearer",
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer",
        Some(t) => t,
    };
    let expiry = fields
        .get("expires_in")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(|s| now + Duration::from_secs(s));
    Ok(Token {
        header: Secret::new(format!("{kind} {access}")),
        expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tokens_are_read_as_go_oauth2_reads_them() {
        let now = Instant::now();
        let t = token(
            "u",
            &fields(&[
                ("access_token", "abc"),
                ("token_type", "bearer"),
                ("expires_in", "60"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(t.header.expose(), "Bearer abc");
        assert!(t.fresh(now + Duration::from_secs(49)));
        assert!(!t.fresh(now + Duration::from_secs(50)), "10 s early");
        let t = token(
            "u",
            &fields(&[("access_token", "abc"), ("token_type", "MAC")]),
            now,
        )
        .unwrap();
        assert_eq!(t.header.expose(), "MAC abc");
        assert!(
            t.fresh(now + Duration::from_secs(86_400 * 365)),
            "no expiry"
        );
        let e = token("u", &fields(&[("token_type", "bearer")]), now)
            .err()
            .unwrap();
        assert_eq!(e.kind, UpstreamKind::BadResponse);
    }

    #[test]
    fn refusals_name_the_error_and_never_the_body() {
        let e = refused(
            "https://idp/token",
            401,
            &fields(&[
                ("error", "invalid_client"),
                ("error_description", "bad secret"),
            ]),
        );
        assert_eq!(e.kind, UpstreamKind::Auth);
        assert_eq!(
            e.message,
            "oauth2 token endpoint https://idp/token refused the client: 401 invalid_client (bad secret)"
        );
        assert_eq!(
            refused("u", 503, &HashMap::new()).kind,
            UpstreamKind::from_http_status(503)
        );
    }

    #[test]
    fn answers_are_read_as_json_or_form() {
        let f = json_fields(r#"{"access_token":"a","expires_in":3600,"x":{"y":1}}"#);
        assert_eq!(f.get("expires_in").map(String::as_str), Some("3600"));
        assert!(!f.contains_key("x"));
        let f = form_fields("access_token=a%2Fb&token_type=bearer");
        assert_eq!(f.get("access_token").map(String::as_str), Some("a/b"));
        assert_eq!(form_encode("id:with space"), "id%3Awith+space");
    }
}
