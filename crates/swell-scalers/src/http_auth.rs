//! How an HTTP scaler's requests authenticate: KEDA's `authentication.Config`
//! (`pkg/scalers/authentication`), read from the trigger's metadata and TriggerAuthentication
//! with KEDA's names, enum, exclusive set and `Validate` rules, then applied to each request.
//! `oauth` is KEDA's mode too, but KEDA's prometheus and metrics-api scalers only check its
//! parameters; Swell fetches the client-credentials token ([`crate::oauth`]) and sends it.

use std::collections::BTreeSet;

use crate::oauth::{OAuthClient, Tokens};
use crate::tls::Secret;
use crate::{Field, Params, Source, UpstreamError};

const AUTH_MODES: Field = Field::new("authModes").from(&[Source::Metadata, Source::Auth]);
const AUTH_MODE: Field = Field::new("authMode").from(&[Source::Metadata, Source::Auth]);
const BEARER: Field = Field::new("bearerToken").from(&[Source::Auth]);
const TOKEN: Field = Field::new("token").from(&[Source::Auth]);
const USERNAME: Field = Field::new("username").from(&[Source::Auth]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth]);
const CA: Field = Field::new("ca").from(&[Source::Auth]);
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const CUSTOM_HEADER: Field = Field::new("customAuthHeader").from(&[Source::Auth]);
const CUSTOM_VALUE: Field = Field::new("customAuthValue").from(&[Source::Auth]);
const API_KEY: Field = Field::new("apiKey").from(&[Source::Metadata, Source::Auth]);
const METHOD: Field = Field::new("method").from(&[Source::Metadata, Source::Auth]);
const KEY_PARAM: Field = Field::new("keyParamName").from(&[Source::Metadata, Source::Auth]);
const TOKEN_URI: Field = Field::new("oauthTokenURI").from(&[Source::Auth]);
const CLIENT_ID: Field = Field::new("clientID").from(&[Source::Auth]);
const CLIENT_SECRET: Field = Field::new("clientSecret").from(&[Source::Auth]);
const SCOPES: Field = Field::new("scopes").from(&[Source::Auth]);
const SCOPE: Field = Field::new("scope").from(&[Source::Auth]);
const ENDPOINT_PARAMS: Field = Field::new("endpointParams").from(&[Source::Auth]);

/// Every parameter, for the scalers' unknown-key warnings.
pub const FIELDS: &[Field] = &[
    AUTH_MODES,
    AUTH_MODE,
    BEARER,
    TOKEN,
    USERNAME,
    PASSWORD,
    CA,
    CERT,
    KEY,
    CUSTOM_HEADER,
    CUSTOM_VALUE,
    API_KEY,
    METHOD,
    KEY_PARAM,
    TOKEN_URI,
    CLIENT_ID,
    CLIENT_SECRET,
    SCOPES,
    SCOPE,
    ENDPOINT_PARAMS,
];

/// KEDA's `authModes` values, in its enum's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    ApiKey,
    Basic,
    Tls,
    Bearer,
    Custom,
    OAuth,
}

const MODES: &[(&str, Mode)] = &[
    ("apiKey", Mode::ApiKey),
    ("basic", Mode::Basic),
    ("tls", Mode::Tls),
    ("bearer", Mode::Bearer),
    ("custom", Mode::Custom),
    ("oauth", Mode::OAuth),
];

/// At most one of these (KEDA's `exclusiveSet`): each sets the `Authorization` header.
const EXCLUSIVE: &[Mode] = &[Mode::Bearer, Mode::Basic, Mode::OAuth];

/// Where an API key goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApiKey {
    Header { name: String, key: Secret },
    Query { name: String, key: Secret },
}

/// What each request carries. Secrets are redacted in Debug.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpAuth {
    pub modes: BTreeSet<Mode>,
    pub authorization: Authorization,
    pub custom: Option<(String, Secret)>,
    pub api_key: Option<ApiKey>,
    /// A PEM CA bundle the server (and the token endpoint) is checked against.
    pub ca: Option<String>,
    /// `tls`: a client certificate and key (PEM).
    pub client_cert: Option<(String, Secret)>,
}

/// The `Authorization` header: from one of the exclusive modes at most.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Authorization {
    #[default]
    None,
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
    OAuth(OAuthClient),
}

/// Reads the trigger's authentication as KEDA does; `unsupported` are modes KEDA accepts
/// but this scaler cannot apply, each refused with why.
pub fn parse(p: &mut Params<'_>, scaler: &str, unsupported: &[(Mode, &str)]) -> HttpAuth {
    let modes = modes(p);
    for (mode, why) in unsupported {
        if modes.contains(mode) {
            let name = MODES.iter().find(|(_, m)| m == mode).map_or("", |(n, _)| n);
            p.error(
                "authModes",
                format!("{name} is not supported by the {scaler} scaler: {why}"),
            );
        }
    }
    let on = |m| modes.contains(&m);
    let authorization = if on(Mode::Bearer) {
        let token = p.opt_string(BEARER).or_else(|| p.opt_string(TOKEN));
        if token.is_none() && !(p.is_deferred("bearerToken") || p.is_deferred("token")) {
            p.error(
                "authModes",
                "bearer needs bearerToken (or token) in the TriggerAuthentication",
            );
        }
        Authorization::Bearer(Secret::new(token.unwrap_or_default()))
    } else if on(Mode::Basic) {
        Authorization::Basic {
            user: p.string(USERNAME),
            password: Secret::new(p.opt_string(PASSWORD).unwrap_or_default()),
        }
    } else if on(Mode::OAuth) {
        Authorization::OAuth(oauth_client(p))
    } else {
        Authorization::None
    };
    let custom =
        on(Mode::Custom).then(|| (p.string(CUSTOM_HEADER), Secret::new(p.string(CUSTOM_VALUE))));
    let api_key = api_key(p, on(Mode::ApiKey));
    let client_cert = on(Mode::Tls).then(|| (p.string(CERT), Secret::new(p.string(KEY))));
    HttpAuth {
        modes,
        authorization,
        custom,
        api_key,
        ca: p.opt_string(CA),
        client_cert,
    }
}

/// `authModes` (or `authMode`): a comma-separated list of KEDA's modes, at most one of
/// bearer, basic and oauth.
fn modes(p: &mut Params<'_>) -> BTreeSet<Mode> {
    let Some(raw) = p.opt_string(AUTH_MODES).or_else(|| p.opt_string(AUTH_MODE)) else {
        return BTreeSet::new();
    };
    let mut modes = BTreeSet::new();
    for m in raw.split(',').map(str::trim) {
        match MODES.iter().find(|(n, _)| *n == m) {
            Some((_, mode)) => {
                modes.insert(*mode);
            }
            None => {
                let names: Vec<&str> = MODES.iter().map(|(n, _)| *n).collect();
                p.error(
                    "authModes",
                    format!("{m:?} is not one of {}", names.join(", ")),
                );
            }
        }
    }
    if EXCLUSIVE.iter().filter(|m| modes.contains(m)).count() > 1 {
        p.error(
            "authModes",
            "bearer, basic and oauth cannot be used together; keep one",
        );
    }
    modes
}

/// `oauth`: the client of KEDA's `OAuth` parameters (what a TriggerAuthentication's `oauth2`
/// block resolves to); `oauthTokenURI` and `clientID` are required, as KEDA's `Validate`.
fn oauth_client(p: &mut Params<'_>) -> OAuthClient {
    let token_uri = p.url(TOKEN_URI, true);
    let client_id = p.string(CLIENT_ID);
    let client_secret = Secret::new(p.opt_string(CLIENT_SECRET).unwrap_or_default());
    let scopes = p
        .opt_string(SCOPES)
        .or_else(|| p.opt_string(SCOPE))
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let params = p
        .opt_string(ENDPOINT_PARAMS)
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    OAuthClient {
        token_uri,
        client_id,
        client_secret,
        scopes,
        params,
    }
}

/// `apiKey`: the key in a header (`X-API-KEY` unless `keyParamName`) or the query
/// (`api_key` unless `keyParamName`), per `method` (checked whenever it is given, as KEDA).
fn api_key(p: &mut Params<'_>, on: bool) -> Option<ApiKey> {
    let method = p.one_of(METHOD, &["header", "query"], "header");
    if !on {
        return None;
    }
    let key = Secret::new(p.string(API_KEY));
    let name = p.opt_string(KEY_PARAM);
    Some(match method {
        "query" => ApiKey::Query {
            name: name.unwrap_or_else(|| "api_key".into()),
            key,
        },
        _ => ApiKey::Header {
            name: name.unwrap_or_else(|| "X-API-KEY".into()),
            key,
        },
    })
}

impl HttpAuth {
    /// The TLS settings of the scaler's HTTP client.
    pub fn client_key(
        &self,
        unsafe_ssl: bool,
        timeout: Option<std::time::Duration>,
    ) -> crate::http::HttpClientKey {
        crate::http::HttpClientKey {
            unsafe_ssl,
            timeout,
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
        }
    }

    /// Adds the credentials to a request; an `oauth` token is fetched (or taken from the
    /// cache) over `http`, the scaler's own client.
    pub async fn apply(
        &self,
        mut req: reqwest::RequestBuilder,
        http: &reqwest::Client,
        tokens: &Tokens,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        req = match &self.authorization {
            Authorization::None => req,
            Authorization::Bearer(t) => req.bearer_auth(t.expose()),
            Authorization::Basic { user, password } => {
                req.basic_auth(user, Some(password.expose()))
            }
            Authorization::OAuth(client) => {
                let header = tokens.header(http, client).await?;
                req.header(reqwest::header::AUTHORIZATION, header.expose())
            }
        };
        if let Some((name, value)) = &self.custom {
            req = req.header(name.as_str(), value.expose());
        }
        req = match &self.api_key {
            None => req,
            Some(ApiKey::Header { name, key }) => req.header(name.as_str(), key.expose()),
            Some(ApiKey::Query { name, key }) => req.query(&[(name.as_str(), key.expose())]),
        };
        Ok(req)
    }

    /// After a 401: an `oauth` token is dropped, so the next poll fetches a new one.
    pub fn refused(&self, tokens: &Tokens) {
        if let Authorization::OAuth(client) = &self.authorization {
            tokens.forget(client);
        }
    }
}

#[cfg(test)]
mod tests;
