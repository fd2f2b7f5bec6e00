//! A Jolokia REST read of one MBean attribute, as KEDA's `artemis-queue` and `activemq`
//! scalers make it: a GET with basic auth and an `Origin` header (Jolokia's CORS strict
//! checking refuses a request without an allowed one), answered with
//! `{"value": N, "status": 200, …}`. The HTTP client is the shared one for its TLS settings.

use crate::Shared;
use crate::http::HttpClientKey;
use crate::tls::Secret;
use crate::upstream::{UpstreamError, UpstreamKind as K};

/// One read: what to GET and how. Holds the password, so it is never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Read {
    /// The scaler's type, for messages (`artemis-queue`, `activemq`).
    pub scaler: &'static str,
    pub url: reqwest::Url,
    pub username: String,
    pub password: Secret,
    pub origin: String,
    /// ActiveMQ's scaler also says `Content-Type: application/json`.
    pub json_content_type: bool,
    pub client: HttpClientKey,
}

impl Read {
    /// The URL without credentials or query, for messages.
    pub fn shown(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.to_string()
    }

    /// Everything that identifies the reading; holds secrets, so it is only hashed.
    pub fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        format!("{}|{:x}|{}", self.scaler, h.finish(), self.shown())
    }

    /// The attribute's value: an integer, as KEDA decodes it (into a Go `int`).
    pub async fn get(&self, shared: &Shared) -> Result<f64, UpstreamError> {
        let client = shared.http.get(&self.client)?;
        let what = |why: String| format!("{} GET {}: {why}", self.scaler, self.shown());
        let mut req = client
            .get(self.url.clone())
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ORIGIN, &self.origin);
        if self.json_content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let resp = crate::observe::send(req).await.map_err(|e| {
            // The whole chain without the URL: "error sending request" alone hides the cause.
            let e = e.without_url();
            UpstreamError::reqwest(&e, what(crate::aws::error_chain(&e)))
        })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| {
            let e = e.without_url();
            UpstreamError::reqwest(&e, what(e.to_string()))
        })?;
        if !status.is_success() {
            let mut why = status.to_string();
            if matches!(status.as_u16(), 401 | 403) {
                why.push_str(" (check username and password)");
            }
            return Err(UpstreamError::http(status.as_u16(), what(why)));
        }
        answer(&body).map_err(|(kind, why)| UpstreamError::new(kind, what(why)))
    }
}

/// Jolokia's answer: its own `status` must be 200 (it answers HTTP 200 with `status: 404`
/// for an MBean that does not exist, 403 for a refused origin).
pub fn answer(body: &str) -> Result<f64, (K, String)> {
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        let why = format!(
            "the answer is not Jolokia's JSON ({e}): {}",
            crate::metadata::cut(body.trim())
        );
        (K::BadResponse, why)
    })?;
    let status = json.get("status").and_then(serde_json::Value::as_i64);
    if status != Some(200) {
        let kind = match status {
            Some(401 | 403) => K::Auth,
            Some(404) => K::NotFound,
            _ => K::Other,
        };
        let error = json
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no error given");
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        return Err((kind, format!("Jolokia status {status}: {error}")));
    }
    match json.get("value") {
        // Go leaves the count at 0 when `value` is absent or null.
        None | Some(serde_json::Value::Null) => Ok(0.0),
        Some(v) => v.as_i64().map(|n| n as f64).ok_or_else(|| {
            let why = format!(
                "the value {} is not an integer",
                crate::metadata::cut(&v.to_string())
            );
            (K::BadResponse, why)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jolokia_answers() {
        assert_eq!(
            answer(r#"{"request":{},"value":7,"timestamp":1,"status":200}"#),
            Ok(7.0)
        );
        assert_eq!(answer(r#"{"status":200}"#), Ok(0.0));
        let missing = answer(
            r#"{"error_type":"javax.management.InstanceNotFoundException","error":"javax.management.InstanceNotFoundException : q","status":404}"#,
        );
        assert_eq!(
            missing,
            Err((
                K::NotFound,
                "Jolokia status 404: javax.management.InstanceNotFoundException : q".into()
            ))
        );
        let origin = answer(r#"{"error":"Origin null is not allowed","status":403}"#);
        assert_eq!(origin.unwrap_err().0, K::Auth);
        assert_eq!(
            answer(r#"{"value":1.5,"status":200}"#),
            Err((K::BadResponse, "the value 1.5 is not an integer".into()))
        );
        assert_eq!(
            answer(r#"{"value":"3","status":200}"#).unwrap_err().0,
            K::BadResponse
        );
        let e = answer("<html>oops</html>").unwrap_err();
        assert!(
            e.0 == K::BadResponse && e.1.contains("<html>oops</html>"),
            "{e:?}"
        );
    }
}
