//! A small Kafka client in pure Rust (no librdkafka): the wire protocol from the
//! `kafka-protocol` codec over a tokio connection, with optional TLS (rustls) and SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with an OAuth 2.0 or Amazon MSK IAM
//! token, see [`oauthbearer`]). It asks only what the `kafka` scaler needs:
//! Metadata, ListOffsets (high watermarks), FindCoordinator and OffsetFetch (a consumer
//! group's committed offsets). A few writes (CreateTopics, Produce, OffsetCommit) serve the
//! tests.
//!
//! Clusters are shared: triggers naming the same bootstrap servers and credentials use one
//! [`Cluster`] from [`KafkaClients`], with one connection per broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, FindCoordinatorRequest, GroupId,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
    create_topics_request::CreatableTopic,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::tls::Secret;

pub mod oauthbearer;
pub use oauthbearer::{TokenSource, Tokens};

/// SASL mechanism and credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sasl {
    None,
    Plain {
        user: String,
        password: Secret,
    },
    Scram {
        sha512: bool,
        user: String,
        password: Secret,
    },
    /// OAUTHBEARER (RFC 7628) with a token from its source.
    OAuthBearer(TokenSource),
}

/// TLS settings (`tls: enable`). Holds key material, so it is never printed in full.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Tls {
    /// PEM CA certificates trusted in addition to the system roots.
    pub ca: Option<String>,
    /// PEM client certificate and key, for mutual TLS.
    pub client_cert: Option<(String, Secret)>,
    /// Do not check the brokers' certificates.
    pub unsafe_ssl: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .field("unsafe_ssl", &self.unsafe_ssl)
            .finish()
    }
}

/// What makes two clusters different.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterKey {
    pub bootstrap: Vec<String>,
    pub sasl: Sasl,
    pub tls: Option<Tls>,
    /// Per request, connecting included.
    pub timeout: Duration,
}

/// Why a Kafka call failed. Never holds credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KafkaError {
    #[error("connecting to Kafka broker {addr}: {msg}")]
    Connect { addr: String, msg: String },
    #[error("Kafka broker {addr}: {msg}")]
    Io { addr: String, msg: String },
    #[error("Kafka broker {addr} did not answer within {secs}s")]
    Timeout { addr: String, secs: u64 },
    #[error("SASL authentication with Kafka broker {addr} failed: {msg}")]
    Auth { addr: String, msg: String },
    /// No OAUTHBEARER token to send: the token endpoint's (or AWS's) error.
    #[error("getting the SASL OAUTHBEARER token for Kafka broker {addr}: {error}")]
    Token { addr: String, error: UpstreamError },
    #[error("Kafka TLS settings: {0}")]
    Tls(String),
    /// The broker answered with an error code; `msg` names it (see [`error_name`]).
    #[error("{msg}")]
    Refused { code: i16, msg: String },
    #[error("{0}")]
    Broker(String),
}

impl KafkaError {
    /// The broker refused `what` with `code`: `what: NAME (code)`.
    fn refused(code: i16, what: String) -> KafkaError {
        KafkaError::Refused {
            code,
            msg: format!("{what}: {}", error_name(code)),
        }
    }
}

use crate::upstream::UpstreamError;

impl From<KafkaError> for crate::UpstreamError {
    fn from(e: KafkaError) -> crate::UpstreamError {
        use crate::upstream::{Code, UpstreamKind};
        if let KafkaError::Token { error, .. } = &e {
            return UpstreamError {
                message: e.to_string(),
                ..error.clone()
            };
        }
        let kind = match &e {
            KafkaError::Connect { .. } | KafkaError::Tls(_) => UpstreamKind::Connect,
            KafkaError::Timeout { .. } => UpstreamKind::Timeout,
            KafkaError::Auth { .. } => UpstreamKind::Auth,
            KafkaError::Refused { code, .. } => UpstreamKind::from_kafka(*code),
            KafkaError::Io { .. } | KafkaError::Broker(_) => UpstreamKind::Other,
            KafkaError::Token { error, .. } => error.kind,
        };
        let code = match &e {
            KafkaError::Refused { code, .. } => Some(Code::Kafka(*code)),
            _ => None,
        };
        UpstreamError {
            kind,
            code,
            status: None,
            message: e.to_string(),
        }
    }
}

/// `NAME (code)` for a Kafka error code.
pub fn error_name(code: i16) -> String {
    match code.err() {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error code {code}"),
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One authenticated connection to one broker. Requests on it are serialised.
struct Conn {
    addr: String,
    stream: Box<dyn Stream>,
    versions: HashMap<i16, (i16, i16)>,
    next_id: i32,
    /// When to open a new connection (a fresh token) before the broker ends the session
    /// (KIP-368's `session_lifetime_ms`), as a client re-authenticates at 85% of it.
    renew_at: Option<Instant>,
}

/// Highest version Swell speaks of each request: the fields it sets mean the same up to there.
const API_VERSIONS_V: i16 = 3;
const METADATA_V: i16 = 12;
const LIST_OFFSETS_V: i16 = 7;
const FIND_COORDINATOR_V: i16 = 3;
const OFFSET_FETCH_V: i16 = 7;
const SASL_HANDSHAKE_V: i16 = 1;
const SASL_AUTHENTICATE_V: i16 = 2;
const CREATE_TOPICS_V: i16 = 7;
const PRODUCE_V: i16 = 9;
const OFFSET_COMMIT_V: i16 = 8;

impl Conn {
    async fn open(
        addr: &str,
        key: &ClusterKey,
        tls: Option<&Arc<rustls::ClientConfig>>,
        tokens: &Tokens,
    ) -> Result<Conn, KafkaError> {
        let connect_err = |msg: String| KafkaError::Connect {
            addr: addr.to_string(),
            msg,
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = host_of(addr);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| connect_err(format!("{host:?} is not a TLS server name: {e}")))?;
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_err(format!("TLS handshake: {e}")))?;
                Box::new(s)
            }
        };
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            versions: HashMap::new(),
            next_id: 1,
            renew_at: None,
        };
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str("swell");
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let resp = conn.call_version(&req, API_VERSIONS_V).await?;
        if resp.error_code != 0 {
            return Err(KafkaError::refused(
                resp.error_code,
                format!("Kafka broker {addr} refused ApiVersions"),
            ));
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        conn.authenticate(&key.sasl, tokens).await?;
        Ok(conn)
    }

    /// The version to use for `R`: the highest both sides speak, at most `cap`.
    fn version<R: Request>(&self, cap: i16) -> Result<i16, KafkaError> {
        let (bmin, bmax) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            KafkaError::Broker(format!(
                "Kafka broker {} does not serve API {} that Swell needs",
                self.addr,
                R::KEY
            ))
        })?;
        let v = cap.min(R::VERSIONS.max).min(bmax);
        if v < bmin || v < R::VERSIONS.min {
            return Err(KafkaError::Broker(format!(
                "Kafka broker {} serves versions {bmin}..={bmax} of API {}; Swell speaks {}..={}",
                self.addr,
                R::KEY,
                R::VERSIONS.min,
                cap.min(R::VERSIONS.max)
            )));
        }
        Ok(v)
    }

    async fn call<R: Request>(
        &mut self,
        req: &R,
        cap: i16,
    ) -> Result<(i16, R::Response), KafkaError> {
        let v = self.version::<R>(cap)?;
        Ok((v, self.call_version(req, v).await?))
    }

    async fn call_version<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        let proto = |e: anyhow::Error| KafkaError::Io {
            addr: self.addr.clone(),
            msg: format!("API {} v{version}: {e}", R::KEY),
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = id;
        header.client_id = Some(StrBytes::from_static_str("swell"));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(proto)?;
        req.encode(&mut buf, version).map_err(proto)?;
        let len = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let io = |e: std::io::Error| KafkaError::Io {
            addr: self.addr.clone(),
            msg: e.to_string(),
        };
        self.stream.write_all(&buf).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.map_err(io)?;
        let len = i32::from_be_bytes(len);
        if !(0..=256 * 1024 * 1024).contains(&len) {
            return Err(KafkaError::Io {
                addr: self.addr.clone(),
                msg: format!(
                    "answer of {len} bytes is not a Kafka answer (is this a Kafka port, and is tls set as the broker expects?)"
                ),
            });
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await.map_err(io)?;
        let mut body = Bytes::from(body);
        let rh = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(proto)?;
        if rh.correlation_id != id {
            return Err(KafkaError::Io {
                addr: self.addr.clone(),
                msg: format!("answer {} to request {id}", rh.correlation_id),
            });
        }
        R::Response::decode(&mut body, version).map_err(proto)
    }

    async fn authenticate(&mut self, sasl: &Sasl, tokens: &Tokens) -> Result<(), KafkaError> {
        let mechanism = match sasl {
            Sasl::None => return Ok(()),
            Sasl::OAuthBearer(_) => "OAUTHBEARER",
            Sasl::Plain { .. } => "PLAIN",
            Sasl::Scram { sha512: false, .. } => "SCRAM-SHA-256",
            Sasl::Scram { sha512: true, .. } => "SCRAM-SHA-512",
        };
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_static_str(mechanism);
        let (_, r) = self.call(&hs, SASL_HANDSHAKE_V).await?;
        if r.error_code != 0 {
            let offered: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(self.auth_err(format!(
                "the broker does not enable {mechanism} ({}); it offers: {}",
                error_name(r.error_code),
                offered.join(", ")
            )));
        }
        match sasl {
            Sasl::None => Ok(()),
            Sasl::OAuthBearer(source) => self.oauthbearer(source, tokens).await,
            Sasl::Plain { user, password } => {
                let mut msg = Vec::new();
                msg.push(0);
                msg.extend_from_slice(user.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.expose().as_bytes());
                self.sasl_round(msg).await.map(|_| ())
            }
            Sasl::Scram {
                sha512,
                user,
                password,
            } => {
                let mut scram = scram::Client::new(*sha512, user, password.expose());
                let first = scram.first();
                let server_first = self.sasl_round(first.into_bytes()).await?;
                let last = scram
                    .last(&server_first)
                    .map_err(|e| self.auth_err(e.to_string()))?;
                let server_last = self.sasl_round(last.into_bytes()).await?;
                scram
                    .verify(&server_last)
                    .map_err(|e| self.auth_err(e.to_string()))
            }
        }
    }

    /// RFC 7628: the token in the initial response; an error challenge (§3.2.2) is
    /// answered with `\x01`, after which the broker fails the exchange with its reason.
    async fn oauthbearer(
        &mut self,
        source: &TokenSource,
        tokens: &Tokens,
    ) -> Result<(), KafkaError> {
        let first = tokens
            .initial_response(source)
            .await
            .map_err(|error| KafkaError::Token {
                addr: self.addr.clone(),
                error,
            })?;
        let challenge = match self.sasl_round(first.expose().as_bytes().to_vec()).await {
            Ok(c) if c.is_empty() => return Ok(()),
            Ok(c) => c,
            Err(e) => {
                tokens.refused(source);
                return Err(e);
            }
        };
        tokens.refused(source);
        let status = oauthbearer::server_error(&challenge);
        let why = match self.sasl_round(vec![0x01]).await {
            Err(KafkaError::Auth { msg, .. }) => msg,
            Err(e) => e.to_string(),
            Ok(_) => "the broker did not end the exchange".into(),
        };
        Err(self.auth_err(format!(
            "the broker rejected {} ({status}): {why}",
            source.describe()
        )))
    }

    async fn sasl_round(&mut self, bytes: Vec<u8>) -> Result<Bytes, KafkaError> {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::from(bytes);
        let (_, resp) = self.call(&r, SASL_AUTHENTICATE_V).await?;
        if resp.error_code != 0 {
            let detail = resp
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(self.auth_err(format!("{} {detail}", error_name(resp.error_code))));
        }
        if resp.session_lifetime_ms > 0 {
            let life = Duration::from_millis(resp.session_lifetime_ms as u64);
            self.renew_at = Some(Instant::now() + life.mul_f64(0.85));
        }
        Ok(resp.auth_bytes)
    }

    fn auth_err(&self, msg: String) -> KafkaError {
        KafkaError::Auth {
            addr: self.addr.clone(),
            msg: msg.trim().to_string(),
        }
    }
}

fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// SCRAM (RFC 5802) as Kafka speaks it, with aws-lc's primitives.
mod scram {
    use aws_lc_rs::{digest, hmac, pbkdf2, rand::SecureRandom as _};

    /// Why the server's side of a SCRAM exchange is not acceptable.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum ScramError {
        #[error("the server's SCRAM message is not UTF-8")]
        NotUtf8,
        #[error("the server refused: {0}")]
        Refused(String),
        #[error("the server's SCRAM message has no nonce")]
        NoNonce,
        #[error("the server's SCRAM nonce does not extend ours")]
        ForeignNonce,
        #[error("the server's SCRAM message has no salt")]
        NoSalt,
        #[error("the server's SCRAM message has no iteration count")]
        NoIterations,
        #[error("the server's final SCRAM message has no signature")]
        NoSignature,
        #[error("the server's SCRAM signature does not match")]
        WrongSignature,
    }
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    pub struct Client {
        sha512: bool,
        password: String,
        bare: String,
        nonce: String,
        server_signature: Vec<u8>,
    }

    impl Client {
        pub fn new(sha512: bool, user: &str, password: &str) -> Client {
            let mut raw = [0u8; 24];
            let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut raw);
            let nonce = B64.encode(raw);
            let name = user.replace('=', "=3D").replace(',', "=2C");
            Client {
                sha512,
                password: password.to_string(),
                bare: format!("n={name},r={nonce}"),
                nonce,
                server_signature: Vec::new(),
            }
        }

        pub fn first(&self) -> String {
            format!("n,,{}", self.bare)
        }

        fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
            let alg = if self.sha512 {
                hmac::HMAC_SHA512
            } else {
                hmac::HMAC_SHA256
            };
            hmac::sign(&hmac::Key::new(alg, key), data)
                .as_ref()
                .to_vec()
        }

        /// The client-final message for the server-first message.
        pub fn last(&mut self, server_first: &[u8]) -> Result<String, ScramError> {
            let server_first =
                std::str::from_utf8(server_first).map_err(|_| ScramError::NotUtf8)?;
            let field = |k: &str| {
                server_first
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(k))
                    .map(str::to_string)
            };
            if let Some(e) = field("e=") {
                return Err(ScramError::Refused(e));
            }
            let nonce = field("r=").ok_or(ScramError::NoNonce)?;
            if !nonce.starts_with(&self.nonce) {
                return Err(ScramError::ForeignNonce);
            }
            let salt = field("s=")
                .and_then(|s| B64.decode(s).ok())
                .ok_or(ScramError::NoSalt)?;
            let iterations = field("i=")
                .and_then(|i| i.parse::<u32>().ok())
                .and_then(std::num::NonZeroU32::new)
                .ok_or(ScramError::NoIterations)?;
            let (alg, dig, len) = if self.sha512 {
                (pbkdf2::PBKDF2_HMAC_SHA512, &digest::SHA512, 64)
            } else {
                (pbkdf2::PBKDF2_HMAC_SHA256, &digest::SHA256, 32)
            };
            let mut salted = vec![0u8; len];
            pbkdf2::derive(
                alg,
                iterations,
                &salt,
                self.password.as_bytes(),
                &mut salted,
            );
            let client_key = self.hmac(&salted, b"Client Key");
            let stored_key = digest::digest(dig, &client_key);
            let without_proof = format!("c=biws,r={nonce}");
            let auth_message = format!("{},{server_first},{without_proof}", self.bare);
            let signature = self.hmac(stored_key.as_ref(), auth_message.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = self.hmac(&salted, b"Server Key");
            self.server_signature = self.hmac(&server_key, auth_message.as_bytes());
            Ok(format!("{without_proof},p={}", B64.encode(proof)))
        }

        /// Checks the server-final message: the server knew the password too.
        pub fn verify(&self, server_last: &[u8]) -> Result<(), ScramError> {
            let s = String::from_utf8_lossy(server_last);
            if let Some(e) = s.strip_prefix("e=") {
                return Err(ScramError::Refused(e.to_string()));
            }
            let v = s
                .split(',')
                .find_map(|kv| kv.strip_prefix("v="))
                .and_then(|v| B64.decode(v).ok())
                .ok_or(ScramError::NoSignature)?;
            if v != self.server_signature {
                return Err(ScramError::WrongSignature);
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// RFC 7677's SCRAM-SHA-256 example.
        #[test]
        fn rfc7677_example() {
            let mut c = Client::new(false, "user", "pencil");
            c.nonce = "rOprNGfwEbeRWgbNEkqO".into();
            c.bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
            let last = c
                .last(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
                .unwrap();
            assert_eq!(
                last,
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            );
            c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap();
            assert!(c.verify(b"v=AAAA").is_err());
        }
    }
}

/// Builds the rustls configuration for `tls: enable`.
fn tls_config(tls: &Tls) -> Result<Arc<rustls::ClientConfig>, KafkaError> {
    let t = crate::tls::ClientTls {
        unsafe_ssl: tls.unsafe_ssl,
        ca: tls.ca.as_deref(),
        client_cert: tls.client_cert.as_ref().map(|(c, k)| (c.as_str(), k)),
    };
    let config = crate::tls::outbound()
        .client_config(t)
        .map_err(|e| KafkaError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

/// One Kafka cluster as seen with one set of credentials.
pub struct Cluster {
    key: ClusterKey,
    tls: Option<Arc<rustls::ClientConfig>>,
    tokens: Tokens,
    conns: Mutex<HashMap<String, Slot>>,
    brokers: Mutex<HashMap<i32, String>>,
    coordinators: Mutex<HashMap<String, String>>,
}

/// A topic's partitions and their leaders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicMeta {
    pub partitions: BTreeMap<i32, i32>,
}

/// Partition ids as sorted, disjoint, inclusive ranges (`partitionLimitation`): its size
/// follows the text that names them, never the ids they span (`0-2000000000` is one range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PartitionSet(Vec<std::ops::RangeInclusive<i32>>);

impl PartitionSet {
    /// The union of `ranges` (in any order, overlapping or not; empty ranges are dropped).
    pub fn new(ranges: impl IntoIterator<Item = std::ops::RangeInclusive<i32>>) -> Self {
        let mut all: Vec<_> = ranges.into_iter().filter(|r| !r.is_empty()).collect();
        all.sort_by_key(|r| (*r.start(), *r.end()));
        let mut merged: Vec<std::ops::RangeInclusive<i32>> = Vec::with_capacity(all.len());
        for r in all {
            match merged.last_mut() {
                Some(last) if i64::from(*r.start()) <= i64::from(*last.end()) + 1 => {
                    if r.end() > last.end() {
                        *last = *last.start()..=*r.end();
                    }
                }
                _ => merged.push(r),
            }
        }
        PartitionSet(merged)
    }

    /// No limitation: every partition.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, partition: i32) -> bool {
        let i = self.0.partition_point(|r| *r.end() < partition);
        self.0.get(i).is_some_and(|r| r.contains(&partition))
    }

    pub fn ranges(&self) -> &[std::ops::RangeInclusive<i32>] {
        &self.0
    }
}

impl<const N: usize> From<[i32; N]> for PartitionSet {
    fn from(ids: [i32; N]) -> Self {
        PartitionSet::new(ids.map(|p| p..=p))
    }
}

/// What the lag is computed from: per topic and partition, the committed offset of the
/// group (`-1` when none) and the partition's high watermark.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupOffsets {
    pub topics: BTreeMap<String, BTreeMap<i32, PartitionOffsets>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub committed: i64,
    pub latest: i64,
}

impl Cluster {
    pub fn new(key: ClusterKey) -> Result<Cluster, KafkaError> {
        Self::with_tokens(key, Tokens::default())
    }

    /// A cluster whose OAUTHBEARER tokens come through `tokens` (the scalers' shared ones).
    pub fn with_tokens(key: ClusterKey, tokens: Tokens) -> Result<Cluster, KafkaError> {
        let tls = key.tls.as_ref().map(tls_config).transpose()?;
        Ok(Cluster {
            key,
            tls,
            tokens,
            conns: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
            coordinators: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `req` to the broker at `addr`, connecting first if needed. A failed call drops
    /// the connection, so the next one starts afresh.
    async fn call_at<R: Request>(
        &self,
        addr: &str,
        req: &R,
        cap: i16,
    ) -> Result<(i16, R::Response), KafkaError> {
        let slot = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            conns.entry(addr.to_string()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        let result = tokio::time::timeout(
            self.key.timeout,
            Self::call_on(&mut guard, addr, self, req, cap),
        )
        .await
        .unwrap_or_else(|_| {
            Err(KafkaError::Timeout {
                addr: addr.to_string(),
                secs: self.key.timeout.as_secs().max(1),
            })
        });
        if result.is_err() {
            *guard = None;
        }
        result
    }

    async fn call_on<R: Request>(
        slot: &mut Option<Conn>,
        addr: &str,
        cluster: &Cluster,
        req: &R,
        cap: i16,
    ) -> Result<(i16, R::Response), KafkaError> {
        // A session near its end is replaced by a new one, with a fresh token.
        if slot
            .as_ref()
            .and_then(|c| c.renew_at)
            .is_some_and(|at| Instant::now() >= at)
        {
            *slot = None;
        }
        let conn = match slot {
            Some(c) => c,
            None => {
                let (key, tls) = (&cluster.key, cluster.tls.as_ref());
                slot.insert(Conn::open(addr, key, tls, &cluster.tokens).await?)
            }
        };
        conn.call(req, cap).await
    }

    /// Sends `req` to the first bootstrap server or known broker that answers.
    async fn call_any<R: Request>(
        &self,
        req: &R,
        cap: i16,
    ) -> Result<(i16, R::Response), KafkaError> {
        let mut addrs = self.key.bootstrap.clone();
        let known: Vec<String> = self
            .brokers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        addrs.extend(
            known
                .into_iter()
                .filter(|a| !self.key.bootstrap.contains(a)),
        );
        let mut last = KafkaError::Broker("no bootstrap server given".into());
        for addr in addrs {
            match self.call_at(&addr, req, cap).await {
                Ok(r) => return Ok(r),
                // Authentication fails the same way everywhere: say so at once.
                Err(e @ KafkaError::Auth { .. }) | Err(e @ KafkaError::Tls(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn broker_addr(&self, id: i32) -> Result<String, KafkaError> {
        self.brokers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(|| KafkaError::Broker(format!("Kafka broker {id} is not in the metadata")))
    }

    /// Partitions and leaders of `topics` (all topics for `None`); a topic the cluster
    /// reports an error for is an error.
    pub async fn metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<BTreeMap<String, TopicMeta>, KafkaError> {
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut mt = MetadataRequestTopic::default();
                    mt.name = Some(TopicName(StrBytes::from_string(t.clone())));
                    mt
                })
                .collect()
        });
        req.allow_auto_topic_creation = false;
        let (_, resp) = self.call_any(&req, METADATA_V).await?;
        {
            let mut brokers = self.brokers.lock().unwrap_or_else(|p| p.into_inner());
            for b in &resp.brokers {
                brokers.insert(*b.node_id, format!("{}:{}", b.host, b.port));
            }
        }
        let mut out = BTreeMap::new();
        for t in resp.topics {
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(KafkaError::refused(
                    t.error_code,
                    format!("describing topic {name:?}"),
                ));
            }
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, *p.leader_id))
                .collect();
            out.insert(name, TopicMeta { partitions });
        }
        Ok(out)
    }

    /// The high watermark of each partition, asked of each partition's leader.
    pub async fn latest_offsets(
        &self,
        topics: &BTreeMap<String, TopicMeta>,
    ) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, KafkaError> {
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (topic, meta) in topics {
            for (&p, &leader) in &meta.partitions {
                if leader < 0 {
                    return Err(KafkaError::Broker(format!(
                        "partition {p} of topic {topic:?} has no leader"
                    )));
                }
                by_leader
                    .entry(leader)
                    .or_default()
                    .entry(topic.clone())
                    .or_default()
                    .push(p);
            }
        }
        let calls = by_leader.into_iter().map(|(leader, topics)| async move {
            let addr = self.broker_addr(leader)?;
            let mut req = ListOffsetsRequest::default();
            req.replica_id = BrokerId(-1);
            req.isolation_level = 0;
            req.topics = topics
                .into_iter()
                .map(|(t, ps)| {
                    let mut lt = ListOffsetsTopic::default();
                    lt.name = TopicName(StrBytes::from_string(t));
                    lt.partitions = ps
                        .into_iter()
                        .map(|p| {
                            let mut lp = ListOffsetsPartition::default();
                            lp.partition_index = p;
                            lp.current_leader_epoch = -1;
                            lp.timestamp = -1;
                            lp
                        })
                        .collect();
                    lt
                })
                .collect();
            self.call_at(&addr, &req, LIST_OFFSETS_V).await
        });
        let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for r in futures::future::join_all(calls).await {
            let (_, resp) = r?;
            for t in resp.topics {
                let name = t.name.0.to_string();
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(KafkaError::refused(
                            p.error_code,
                            format!(
                                "latest offset of topic {name:?} partition {}",
                                p.partition_index
                            ),
                        ));
                    }
                    out.entry(name.clone())
                        .or_default()
                        .insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(out)
    }

    async fn coordinator(&self, group: &str) -> Result<String, KafkaError> {
        if let Some(a) = self
            .coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
        {
            return Ok(a.clone());
        }
        let mut req = FindCoordinatorRequest::default();
        req.key = StrBytes::from_string(group.to_string());
        req.key_type = 0;
        let (_, resp) = self.call_any(&req, FIND_COORDINATOR_V).await?;
        if resp.error_code != 0 {
            return Err(KafkaError::refused(
                resp.error_code,
                format!("finding the coordinator of consumer group {group:?}"),
            ));
        }
        let addr = format!("{}:{}", resp.host, resp.port);
        self.coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), addr.clone());
        Ok(addr)
    }

    fn forget_coordinator(&self, group: &str) {
        self.coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }

    /// The group's committed offsets (`-1` where none), for the given partitions or, with
    /// `None`, for every partition the group has committed.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, KafkaError> {
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(StrBytes::from_string(group.to_string()));
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    let mut ft = OffsetFetchRequestTopic::default();
                    ft.name = TopicName(StrBytes::from_string(t.clone()));
                    ft.partition_indexes = ps.clone();
                    ft
                })
                .collect()
        });
        req.require_stable = false;
        let addr = self.coordinator(group).await?;
        let resp = match self.call_at(&addr, &req, OFFSET_FETCH_V).await {
            Ok((_, r)) => r,
            Err(e) => {
                self.forget_coordinator(group);
                return Err(e);
            }
        };
        if resp.error_code != 0 {
            // 14 COORDINATOR_LOAD_IN_PROGRESS, 15 COORDINATOR_NOT_AVAILABLE, 16 NOT_COORDINATOR
            if matches!(resp.error_code, 15 | 16) {
                self.forget_coordinator(group);
            }
            return Err(KafkaError::refused(
                resp.error_code,
                format!("error listing consumer group offsets of {group:?}"),
            ));
        }
        let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for t in resp.topics {
            let name = t.name.0.to_string();
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(KafkaError::refused(
                        p.error_code,
                        format!(
                            "offset block error for topic {name:?} partition {}",
                            p.partition_index
                        ),
                    ));
                }
                out.entry(name.clone())
                    .or_default()
                    .insert(p.partition_index, p.committed_offset);
            }
        }
        Ok(out)
    }

    /// Everything the `kafka` scaler computes the lag from, as KEDA reads it: the topic (or
    /// every topic the group has committed offsets for), its partitions (only `limit` when
    /// given), the group's committed offsets and the partitions' high watermarks.
    pub async fn group_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
        limit: &PartitionSet,
    ) -> Result<GroupOffsets, KafkaError> {
        // Without a topic, the group's committed offsets name its topics, and they are all
        // the offsets there are: no second OffsetFetch.
        let (names, known): (Vec<String>, _) = match topic {
            Some(t) => (vec![t.to_string()], None),
            None => {
                let all = self.committed_offsets(group, None).await?;
                (all.keys().cloned().collect(), Some(all))
            }
        };
        if names.is_empty() {
            return Ok(GroupOffsets::default());
        }
        let mut meta = self.metadata(Some(&names)).await?;
        if let Some(t) = topic
            && !meta.contains_key(t)
        {
            return Err(KafkaError::Broker(format!(
                "expected 1 topic metadata, got {} (topic {t:?})",
                meta.len()
            )));
        }
        for (name, m) in &mut meta {
            if !limit.is_empty() {
                m.partitions.retain(|p, _| limit.contains(*p));
            }
            if m.partitions.is_empty() {
                return Err(KafkaError::Broker(format!(
                    "no active partitions in topic {name}"
                )));
            }
        }
        let wanted: BTreeMap<String, Vec<i32>> = meta
            .iter()
            .map(|(t, m)| (t.clone(), m.partitions.keys().copied().collect()))
            .collect();
        let (committed, latest) = match known {
            Some(mut all) => {
                // A partition never committed is -1, as an OffsetFetch naming it answers.
                for (t, parts) in &wanted {
                    let topic = all.entry(t.clone()).or_default();
                    for p in parts {
                        topic.entry(*p).or_insert(-1);
                    }
                }
                (all, self.latest_offsets(&meta).await?)
            }
            None => {
                let (committed, latest) = tokio::join!(
                    self.committed_offsets(group, Some(&wanted)),
                    self.latest_offsets(&meta)
                );
                (committed?, latest?)
            }
        };
        let mut out = GroupOffsets::default();
        for (t, parts) in latest {
            let topic_committed = committed.get(&t);
            let entry = out.topics.entry(t.clone()).or_default();
            for (p, latest) in parts {
                let committed = topic_committed
                    .and_then(|c| c.get(&p))
                    .copied()
                    .ok_or_else(|| {
                        KafkaError::Broker(format!("no offset block for topic {t} partition {p}"))
                    })?;
                entry.insert(p, PartitionOffsets { committed, latest });
            }
        }
        Ok(out)
    }

    // --- Writes, for tests -------------------------------------------------------------

    /// Creates a topic (replication factor 1); an existing one is fine.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), KafkaError> {
        let mut t = CreatableTopic::default();
        t.name = TopicName(StrBytes::from_string(name.to_string()));
        t.num_partitions = partitions;
        t.replication_factor = 1;
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 30_000;
        let (_, resp) = self.call_any(&req, CREATE_TOPICS_V).await?;
        for r in resp.topics {
            // 36 TOPIC_ALREADY_EXISTS
            if r.error_code != 0 && r.error_code != 36 {
                return Err(KafkaError::Broker(format!(
                    "creating topic {name:?}: {} {}",
                    error_name(r.error_code),
                    r.error_message.map(|m| m.to_string()).unwrap_or_default()
                )));
            }
        }
        // The leaders are elected shortly after: wait until every partition has one.
        for _ in 0..100 {
            let meta = self.metadata(Some(&[name.to_string()])).await;
            if let Ok(m) = meta
                && m.get(name).is_some_and(|t| {
                    t.partitions.len() == partitions as usize
                        && t.partitions.values().all(|l| *l >= 0)
                })
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(KafkaError::Broker(format!(
            "topic {name:?} has no leaders 10s after its creation"
        )))
    }

    /// Appends `count` small records to one partition; returns the new high watermark.
    /// Retries for a while what a new topic or group answers at first (no leader yet, the
    /// offsets topic being made).
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        count: usize,
    ) -> Result<i64, KafkaError> {
        retry(|| self.produce_once(topic, partition, count)).await
    }

    /// Commits offsets for a group that has no active members (as an admin tool does).
    pub async fn commit(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), KafkaError> {
        retry(|| self.commit_once(group, topic, offsets)).await
    }

    async fn produce_once(
        &self,
        topic: &str,
        partition: i32,
        count: usize,
    ) -> Result<i64, KafkaError> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let meta = self.metadata(Some(&[topic.to_string()])).await?;
        let leader = meta
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
            .copied()
            .ok_or_else(|| {
                KafkaError::Broker(format!("topic {topic:?} has no partition {partition}"))
            })?;
        let addr = self.broker_addr(leader)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // offset − sequence must be the same for all, or the encoder splits the batch.
                sequence: i as i32,
                timestamp: now,
                key: None,
                value: Some(Bytes::from(format!("message {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| KafkaError::Broker(format!("encoding records: {e}")))?;
        let mut pd = PartitionProduceData::default();
        pd.index = partition;
        pd.records = Some(batch.freeze());
        let mut td = TopicProduceData::default();
        td.name = TopicName(StrBytes::from_string(topic.to_string()));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 10_000;
        req.topic_data = vec![td];
        let (_, resp) = self.call_at(&addr, &req, PRODUCE_V).await?;
        let Some(p) = resp
            .responses
            .into_iter()
            .flat_map(|t| t.partition_responses)
            .next()
        else {
            return Err(KafkaError::Broker("empty produce answer".into()));
        };
        if p.error_code != 0 {
            let details: Vec<String> = p
                .error_message
                .iter()
                .map(|m| m.to_string())
                .chain(p.record_errors.iter().map(|r| {
                    format!(
                        "record {}: {}",
                        r.batch_index,
                        r.batch_index_error_message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default()
                    )
                }))
                .collect();
            return Err(KafkaError::Broker(format!(
                "producing to {topic:?} partition {partition}: {} {}",
                error_name(p.error_code),
                details.join("; ")
            )));
        }
        Ok(p.base_offset + count as i64)
    }

    async fn commit_once(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), KafkaError> {
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions = offsets
            .iter()
            .map(|&(p, o)| {
                let mut cp = OffsetCommitRequestPartition::default();
                cp.partition_index = p;
                cp.committed_offset = o;
                cp.committed_leader_epoch = -1;
                cp
            })
            .collect();
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(StrBytes::from_string(group.to_string()));
        req.generation_id_or_member_epoch = -1;
        req.member_id = StrBytes::from_static_str("");
        req.retention_time_ms = -1;
        req.topics = vec![t];
        let addr = self.coordinator(group).await?;
        let (_, resp) = match self.call_at(&addr, &req, OFFSET_COMMIT_V).await {
            Ok(r) => r,
            Err(e) => {
                self.forget_coordinator(group);
                return Err(e);
            }
        };
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(KafkaError::refused(
                        p.error_code,
                        format!(
                            "committing {group:?} {topic:?} partition {}",
                            p.partition_index
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Retries `f` on broker errors for up to 20s (tests' writes to new topics and groups).
async fn retry<T, F, Fut>(f: F) -> Result<T, KafkaError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, KafkaError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Err(KafkaError::Broker(_) | KafkaError::Refused { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Clusters per bootstrap servers and credentials, shared by every trigger.
#[derive(Default)]
pub struct KafkaClients {
    clusters: Mutex<HashMap<ClusterKey, Arc<Cluster>>>,
}

impl KafkaClients {
    /// The cluster for `key`, made on first use (no connection is opened here), its
    /// OAUTHBEARER tokens fetched through `tokens`.
    pub fn get(&self, key: &ClusterKey, tokens: &Tokens) -> Result<Arc<Cluster>, KafkaError> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clusters.get(key) {
            return Ok(c.clone());
        }
        let c = Arc::new(Cluster::with_tokens(key.clone(), tokens.clone())?);
        clusters.insert(key.clone(), c.clone());
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
