//! A small Azure Storage REST client for the `azure-queue` and `azure-blob` scalers: the
//! connection string as Azure's Go SDK reads it (`azqueue`/`azblob`
//! `…FromConnectionString`), requests authorized with Shared Key (HMAC-SHA256 over the
//! canonicalized request, "Authorize with Shared Key") or a SAS token, and KEDA's `cloud` /
//! `endpointSuffix` rules. One client per service URL and credential, shared by the
//! triggers using it.
//!
//! Hand-written rather than Azure's Rust SDK: its storage crates are in beta, authorize with
//! Microsoft Entra ID only (no Shared Key, which is what a connection string holds), and
//! bring their own HTTP stack; the two calls a scaler needs are a few lines over reqwest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::http::{HttpClientKey, HttpClients};
use crate::metadata::{Invalid, shown};
use crate::tls::Secret;
use crate::upstream::{UpstreamError, UpstreamKind as K};
use crate::{Field, Params, Source, TriggerInput};

/// The REST API version sent as `x-ms-version` (Azurite: `--skipApiVersionCheck` if newer).
pub const API_VERSION: &str = "2024-11-04";

/// Which storage service a connection string is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Blob,
    Queue,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Blob => "blob",
            Service::Queue => "queue",
        }
    }

    fn endpoint_key(self) -> &'static str {
        match self {
            Service::Blob => "BlobEndpoint",
            Service::Queue => "QueueEndpoint",
        }
    }
}

/// How requests are authorized.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    /// `AccountName` + `AccountKey` (the key base64-decoded).
    SharedKey { account: String, key: Secret },
    /// `SharedAccessSignature`: a query string added to every request.
    Sas(Secret),
}

/// A storage account's service endpoint and credential: what one client is made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    /// The service URL, ending in `/` (e.g. `https://acct.queue.core.windows.net/`).
    pub url: String,
    pub credential: Credential,
}

/// Reads a storage connection string as the Go SDK does (`shared.ParseConnectionString`):
/// `Key=Value` pairs split on `;`, `DefaultEndpointsProtocol` (default `https`) and
/// `EndpointSuffix` (default `core.windows.net`) unless the service's own endpoint
/// (`QueueEndpoint`, `BlobEndpoint`) is given, then `AccountName`+`AccountKey` or else
/// `SharedAccessSignature`. Never shows the secret parts in an error.
pub fn parse_connection_string(s: &str, service: Service) -> Result<Account, Invalid> {
    let mut parts: HashMap<&str, &str> = HashMap::new();
    for part in s.trim_end_matches(';').split(';') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(
                "is not a storage connection string (Key=Value pairs separated by ';')".into(),
            );
        };
        // Values trimmed: a key read from a file often ends in a newline (Go's base64 skips it).
        parts.insert(k, v.trim());
    }
    let protocol = parts
        .get("DefaultEndpointsProtocol")
        .copied()
        .unwrap_or("https");
    let suffix = parts
        .get("EndpointSuffix")
        .copied()
        .unwrap_or("core.windows.net");
    let account = parts.get("AccountName").copied();
    let mut url = match (parts.get(service.endpoint_key()), account) {
        (Some(endpoint), _) => endpoint.to_string(),
        (None, Some(a)) => format!("{protocol}://{a}.{}.{suffix}", service.name()),
        (None, None) => {
            return Err(format!(
                "the connection string needs AccountName or {}",
                service.endpoint_key()
            )
            .into());
        }
    };
    if !url.ends_with('/') {
        url.push('/');
    }
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(format!(
                "the {} service URL {} is not an http(s) URL; check DefaultEndpointsProtocol, AccountName, EndpointSuffix or {}",
                service.name(),
                shown(&url),
                service.endpoint_key()
            )
            .into());
        }
    }
    let credential = match (
        account,
        parts.get("AccountKey"),
        parts.get("SharedAccessSignature"),
    ) {
        (Some(a), Some(key), _) => {
            let key = B64
                .decode(key)
                .map_err(|_| Invalid::from("the connection string's AccountKey is not base64"))?;
            // The decoded bytes, kept as base64 text so the key hashes and compares.
            Credential::SharedKey {
                account: a.to_string(),
                key: Secret::new(B64.encode(key)),
            }
        }
        (_, _, Some(sas)) => Credential::Sas(Secret::new(sas.trim_start_matches('?'))),
        _ => {
            return Err(
                "the connection string needs AccountName and AccountKey, or SharedAccessSignature"
                    .into(),
            );
        }
    };
    Ok(Account { url, credential })
}

/// KEDA's `ParseAzureStorageEndpointSuffix`: the endpoint suffix of `cloud`
/// (`AzurePublicCloud` when unset), or `endpointSuffix` for `cloud: Private`. Only an
/// identity without a connection string would use it; KEDA checks it in every case.
pub fn endpoint_suffix(
    cloud: Option<&str>,
    endpoint_suffix: Option<&str>,
    service: Service,
) -> Result<String, (&'static str, String)> {
    let storage = match cloud.filter(|c| !c.is_empty()) {
        None => "core.windows.net",
        Some(c) if c.eq_ignore_ascii_case("Private") => {
            return match endpoint_suffix.filter(|s| !s.is_empty()) {
                Some(s) => Ok(s.to_string()),
                None => Err((
                    "endpointSuffix",
                    "must be provided for cloud: Private (e.g. queue.core.example.net)".into(),
                )),
            };
        }
        Some(c) => match c.to_ascii_uppercase().as_str() {
            "AZURECLOUD" | "AZUREPUBLICCLOUD" => "core.windows.net",
            "AZUREUSGOVERNMENT" | "AZUREUSGOVERNMENTCLOUD" => "core.usgovcloudapi.net",
            "AZURECHINACLOUD" => "core.chinacloudapi.cn",
            "AZUREGERMANCLOUD" => "core.cloudapi.de",
            "AZURESTACKCLOUD" => return Err(("cloud", "AzureStackCloud reads its endpoints from a file named by the operator's AZURE_ENVIRONMENT_FILEPATH, which Swell does not read; use cloud: Private with endpointSuffix".into())),
            _ => return Err(("cloud", format!("{} is not a cloud: use AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud or Private (with endpointSuffix)", shown(c)))),
        },
    };
    Ok(format!("{}.{storage}", service.name()))
}

/// The connection string: TriggerAuthentication `connection`, metadata `connection` or
/// `connectionFromEnv` (KEDA's order).
pub const CONNECTION: Field = Field::new("connection")
    .from(&[Source::Auth, Source::Metadata])
    .hint("a storage connection string: DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=core.windows.net");
/// Used by KEDA only with Azure workload identity (refused here); checked as KEDA does.
pub const ACCOUNT_NAME: Field = Field::new("accountName");
pub const CLOUD: Field = Field::new("cloud");
pub const ENDPOINT_SUFFIX: Field = Field::new("endpointSuffix");

/// The parameters every storage scaler reads, for unknown-key warnings.
pub const ACCOUNT_FIELDS: &[Field] = &[CONNECTION, ACCOUNT_NAME, CLOUD, ENDPOINT_SUFFIX];

/// The trigger's storage account, as KEDA's `GetStorageQueueClient`/`GetStorageBlobClient`
/// find it: `cloud`/`endpointSuffix` checked, then the connection string (pod identity
/// `none` or unset). `None` when it is wrong (recorded in `p`) or known only at run time.
pub fn trigger_account(
    input: &TriggerInput,
    p: &mut Params<'_>,
    service: Service,
) -> Option<Account> {
    let _ = p.opt_string(ACCOUNT_NAME);
    let cloud = p.opt_string(CLOUD);
    let suffix = p.opt_string(ENDPOINT_SUFFIX);
    if let Err((field, why)) = endpoint_suffix(cloud.as_deref(), suffix.as_deref(), service) {
        p.error(field, why);
    }
    match input.pod_identity.provider.as_deref() {
        None | Some("" | "none") => {}
        Some("azure-workload") => {
            p.trigger_error(
                "authenticationRef",
                "podIdentity provider azure-workload is not supported by Swell (it cannot get Microsoft Entra tokens here); use a connection string with AccountKey or SharedAccessSignature",
            );
            return None;
        }
        Some(other) => {
            p.trigger_error(
                "authenticationRef",
                format!("podIdentity provider {} is not supported for azure storage (use none, with a connection string)", shown(other)),
            );
            return None;
        }
    }
    let conn = p.string(CONNECTION);
    if conn.is_empty() {
        return None;
    }
    parse_connection_string(&conn, service)
        .map_err(|e| p.error(CONNECTION.name, e.0))
        .ok()
}

/// Characters kept as they are in a query value (as Go's `url.QueryEscape`, but `%20`).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one URL path segment or query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// One account's client: signs and sends requests to its service URL.
pub struct StorageClient {
    http: reqwest::Client,
    account: Account,
}

impl std::fmt::Debug for StorageClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageClient")
            .field("url", &self.account.url)
            .finish()
    }
}

impl StorageClient {
    pub fn new(http: reqwest::Client, account: Account) -> StorageClient {
        StorageClient { http, account }
    }

    /// The service URL, for messages (holds no secret: a SAS is never part of it).
    pub fn url(&self) -> &str {
        &self.account.url
    }

    /// Sends a request for `path` (below the service URL, already URL-safe) with `query`,
    /// extra `x-ms-…` `headers` and `body`; an answer that is not 2xx is an error naming
    /// the resource, Azure's error code and message.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let shown_url = format!("{}{path}", self.account.url);
        let mut url = shown_url.clone();
        let mut sep = '?';
        if let Credential::Sas(sas) = &self.account.credential {
            url.push(sep);
            url.push_str(sas.expose());
            sep = '&';
        }
        for (k, v) in query {
            url.push(sep);
            url.push_str(&format!("{k}={}", utf8_percent_encode(v, QUERY)));
            sep = '&';
        }
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
            .unwrap_or_default();
        let mut ms: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        ms.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
        );
        let mut req = self.http.request(method.clone(), &url);
        for (k, v) in &ms {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Credential::SharedKey { account, key } = &self.account.credential {
            let path = reqwest::Url::parse(&shown_url)
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            let to_sign = string_to_sign(&method, body.len(), &ms, account, &path, query);
            req = req.header(
                "Authorization",
                format!("SharedKey {account}:{}", sign(key, &to_sign)),
            );
        }
        if !body.is_empty() || matches!(method, reqwest::Method::PUT | reqwest::Method::POST) {
            req = req.body(body);
        }
        let resp = crate::observe::send(req)
            .await
            .map_err(|e| UpstreamError::reqwest(&e, format!("{shown_url}: {}", cause(&e))))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        Err(answer_error(&shown_url, status, code, &text))
    }
}

/// The error an answer with status `status` says.
fn answer_error(url: &str, status: u16, code: Option<String>, body: &str) -> UpstreamError {
    let code = code.or_else(|| xml_text(body, "Code")).unwrap_or_default();
    let message = xml_text(body, "Message")
        .map(|m| m.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let mut msg = format!("{url}: HTTP {status}");
    if !code.is_empty() {
        msg.push_str(&format!(" {code}"));
    }
    if !message.is_empty() {
        msg.push_str(&format!(": {message}"));
    }
    if status == 403 {
        msg.push_str(" (check the connection string's AccountKey or SharedAccessSignature)");
    }
    let kind = match code.as_str() {
        "AuthenticationFailed" | "AuthorizationFailure" | "AuthorizationPermissionMismatch" => {
            K::Auth
        }
        "QueueNotFound" | "ContainerNotFound" | "ResourceNotFound" => K::NotFound,
        _ => K::from_http_status(status),
    };
    UpstreamError::new(kind, msg).with_status(status)
}

/// Why a request got no answer: the innermost cause (the TLS or connect reason). Never
/// reqwest's own text, which holds the URL and so a SAS token.
fn cause(e: &reqwest::Error) -> String {
    let mut s: &dyn std::error::Error = e;
    let mut root = "no cause given".to_string();
    while let Some(next) = s.source() {
        s = next;
        root = s.to_string();
    }
    if e.is_timeout() {
        "no answer in time (KEDA_HTTP_DEFAULT_TIMEOUT)".to_string()
    } else if e.is_connect() {
        format!("cannot connect: {root}")
    } else {
        format!("the request failed: {root}")
    }
}

/// Shared Key's string to sign for the Blob, Queue and File services (version 2015-02-21
/// and later: an empty Content-Length when 0), with every other standard header empty.
fn string_to_sign(
    method: &reqwest::Method,
    content_length: usize,
    ms_headers: &[(String, String)],
    account: &str,
    path: &str,
    query: &[(&str, &str)],
) -> String {
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut s = format!("{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
    let mut headers: Vec<&(String, String)> = ms_headers.iter().collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in headers {
        s.push_str(&format!("{k}:{}\n", v.trim()));
    }
    s.push_str(&format!("/{account}{path}"));
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    params.sort();
    for (k, v) in params {
        s.push_str(&format!("\n{k}:{v}"));
    }
    s
}

/// Base64 of HMAC-SHA256 of `to_sign` under the (base64) account key (also signs the
/// tests' SAS tokens).
pub fn sign(key: &Secret, to_sign: &str) -> String {
    let raw = B64.decode(key.expose()).unwrap_or_default();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &raw);
    B64.encode(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()).as_ref())
}

/// The unescaped text of the first `<tag>…</tag>` in `xml`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml_unescape(&xml[start..end]))
}

/// XML's five entities and numeric character references.
pub fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One client per account (service URL and credential), made on first use.
#[derive(Default)]
pub struct StorageClients {
    clients: Mutex<HashMap<Account, Arc<StorageClient>>>,
}

impl StorageClients {
    pub fn get(
        &self,
        http: &HttpClients,
        account: &Account,
    ) -> Result<Arc<StorageClient>, UpstreamError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(account) {
            return Ok(c.clone());
        }
        // KEDA's storage clients: the global HTTP timeout.
        let key = HttpClientKey::default();
        let client = Arc::new(StorageClient::new(http.get(&key)?, account.clone()));
        clients.insert(account.clone(), client.clone());
        Ok(client)
    }

    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
