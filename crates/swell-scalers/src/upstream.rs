//! Upstream failures as values: the kind of failure, the source's own error code and the
//! HTTP status, kept from the failed call to the controller, next to the one message a
//! person reads. The kind gives the low-cardinality category for logs and metrics; the
//! message goes to status and events, so it never holds credentials.

/// What went wrong upstream, as few kinds as a dashboard needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamKind {
    /// Refused: a missing permission, unknown or wrong credentials, a failed SASL exchange.
    Auth,
    /// The queue, table, stream, topic, group or URL does not exist.
    NotFound,
    /// The source limits the rate of calls.
    Throttled,
    /// No answer in time.
    Timeout,
    /// No connection: name resolution, refused, unreachable, TLS handshake.
    Connect,
    /// An answer Swell cannot read: not JSON, no value where one is expected, not a number.
    BadResponse,
    /// The source does not offer what the trigger needs (an API or protocol version).
    Unsupported,
    /// Any other failure the source reported.
    Other,
}

impl UpstreamKind {
    /// The label for logs and metrics.
    pub fn category(self) -> &'static str {
        match self {
            UpstreamKind::Auth => "auth",
            UpstreamKind::NotFound => "not_found",
            UpstreamKind::Throttled => "throttled",
            UpstreamKind::Timeout => "timeout",
            UpstreamKind::Connect => "connect",
            UpstreamKind::BadResponse => "bad_response",
            UpstreamKind::Unsupported => "unsupported",
            UpstreamKind::Other => "upstream",
        }
    }

    /// The kind an HTTP status says, for answers that are errors.
    pub fn from_http_status(status: u16) -> UpstreamKind {
        match status {
            401 | 403 => UpstreamKind::Auth,
            404 | 410 => UpstreamKind::NotFound,
            429 => UpstreamKind::Throttled,
            408 | 504 => UpstreamKind::Timeout,
            501 => UpstreamKind::Unsupported,
            _ => UpstreamKind::Other,
        }
    }

    /// The kind a gRPC status code says.
    pub fn from_grpc(code: tonic::Code) -> UpstreamKind {
        use tonic::Code as C;
        match code {
            C::Unauthenticated | C::PermissionDenied => UpstreamKind::Auth,
            C::NotFound => UpstreamKind::NotFound,
            C::ResourceExhausted => UpstreamKind::Throttled,
            C::DeadlineExceeded => UpstreamKind::Timeout,
            C::Unavailable => UpstreamKind::Connect,
            C::Unimplemented => UpstreamKind::Unsupported,
            _ => UpstreamKind::Other,
        }
    }

    /// The kind a Kafka protocol error code says.
    pub fn from_kafka(code: i16) -> UpstreamKind {
        use kafka_protocol::error::{ParseResponseErrorCode as _, ResponseError as E};
        match code.err() {
            Some(
                E::TopicAuthorizationFailed
                | E::GroupAuthorizationFailed
                | E::ClusterAuthorizationFailed
                | E::SaslAuthenticationFailed
                | E::IllegalSaslState
                | E::UnsupportedSaslMechanism,
            ) => UpstreamKind::Auth,
            Some(E::UnknownTopicOrPartition | E::UnknownTopicId | E::GroupIdNotFound) => {
                UpstreamKind::NotFound
            }
            Some(E::ThrottlingQuotaExceeded) => UpstreamKind::Throttled,
            Some(E::RequestTimedOut) => UpstreamKind::Timeout,
            Some(E::UnsupportedVersion) => UpstreamKind::Unsupported,
            _ => UpstreamKind::Other,
        }
    }

    /// The kind of an AWS service error code (the ones KEDA's users meet; others: `Other`).
    pub fn from_aws_code(code: &str) -> UpstreamKind {
        match code {
            "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException"
            | "ExpiredToken"
            | "ExpiredTokenException" => UpstreamKind::Auth,
            "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "ResourceNotFoundException" => UpstreamKind::NotFound,
            "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "LimitExceededException" => UpstreamKind::Throttled,
            _ => UpstreamKind::Other,
        }
    }
}

/// The source's own error code, as it sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// An AWS service error code (`AccessDenied`, `AWS.SimpleQueueService.NonExistentQueue`).
    Aws(String),
    /// A gRPC status code (external scalers).
    Grpc(tonic::Code),
    /// A Kafka protocol error code.
    Kafka(i16),
    /// An SQL state (`28P01`, PostgreSQL and MySQL).
    Sql(String),
}

/// One failed upstream call. `Display` is the message; the rest is for code that decides.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    pub kind: UpstreamKind,
    pub code: Option<Code>,
    /// The HTTP status of the failed answer, when there was one.
    pub status: Option<u16>,
    /// What failed and what to fix, shown in status and events.
    pub message: String,
}

impl UpstreamError {
    pub fn new(kind: UpstreamKind, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            kind,
            code: None,
            status: None,
            message: message.into(),
        }
    }

    pub fn with_code(mut self, code: Code) -> UpstreamError {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: u16) -> UpstreamError {
        self.status = Some(status);
        self
    }

    /// An answer that cannot be read.
    pub fn bad_response(message: impl Into<String>) -> UpstreamError {
        UpstreamError::new(UpstreamKind::BadResponse, message)
    }

    /// An answer with an error HTTP status.
    pub fn http(status: u16, message: impl Into<String>) -> UpstreamError {
        UpstreamError::new(UpstreamKind::from_http_status(status), message).with_status(status)
    }

    /// A failed gRPC call.
    pub fn grpc(code: tonic::Code, message: impl Into<String>) -> UpstreamError {
        UpstreamError::new(UpstreamKind::from_grpc(code), message).with_code(Code::Grpc(code))
    }

    /// A reqwest failure (no answer, or an unreadable one), said as `message`.
    pub fn reqwest(e: &reqwest::Error, message: impl Into<String>) -> UpstreamError {
        let kind = if e.is_timeout() {
            UpstreamKind::Timeout
        } else if e.is_connect() {
            UpstreamKind::Connect
        } else if e.is_decode() || e.is_body() {
            UpstreamKind::BadResponse
        } else if let Some(s) = e.status() {
            UpstreamKind::from_http_status(s.as_u16())
        } else {
            UpstreamKind::Other
        };
        let err = UpstreamError::new(kind, message);
        match e.status() {
            Some(s) => err.with_status(s.as_u16()),
            None => err,
        }
    }

    /// The label for logs and metrics.
    pub fn category(&self) -> &'static str {
        self.kind.category()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_category() {
        let table = [
            (UpstreamKind::Auth, "auth"),
            (UpstreamKind::NotFound, "not_found"),
            (UpstreamKind::Throttled, "throttled"),
            (UpstreamKind::Timeout, "timeout"),
            (UpstreamKind::Connect, "connect"),
            (UpstreamKind::BadResponse, "bad_response"),
            (UpstreamKind::Unsupported, "unsupported"),
            (UpstreamKind::Other, "upstream"),
        ];
        for (kind, category) in table {
            assert_eq!(kind.category(), category, "{kind:?}");
            assert_eq!(UpstreamError::new(kind, "m").category(), category);
        }
    }

    #[test]
    fn codes_and_statuses_say_their_kind() {
        let aws = [
            ("AccessDenied", UpstreamKind::Auth),
            ("AccessDeniedException", UpstreamKind::Auth),
            ("InvalidClientTokenId", UpstreamKind::Auth),
            ("SignatureDoesNotMatch", UpstreamKind::Auth),
            (
                "AWS.SimpleQueueService.NonExistentQueue",
                UpstreamKind::NotFound,
            ),
            ("ResourceNotFoundException", UpstreamKind::NotFound),
            ("ThrottlingException", UpstreamKind::Throttled),
            (
                "ProvisionedThroughputExceededException",
                UpstreamKind::Throttled,
            ),
            ("InternalFailure", UpstreamKind::Other),
        ];
        for (code, kind) in aws {
            assert_eq!(UpstreamKind::from_aws_code(code), kind, "{code}");
        }
        let http = [
            (401, UpstreamKind::Auth),
            (403, UpstreamKind::Auth),
            (404, UpstreamKind::NotFound),
            (429, UpstreamKind::Throttled),
            (504, UpstreamKind::Timeout),
            (500, UpstreamKind::Other),
        ];
        for (status, kind) in http {
            let e = UpstreamError::http(status, "m");
            assert_eq!((e.kind, e.status), (kind, Some(status)), "{status}");
        }
        let grpc = [
            (tonic::Code::PermissionDenied, UpstreamKind::Auth),
            (tonic::Code::Unauthenticated, UpstreamKind::Auth),
            (tonic::Code::NotFound, UpstreamKind::NotFound),
            (tonic::Code::ResourceExhausted, UpstreamKind::Throttled),
            (tonic::Code::DeadlineExceeded, UpstreamKind::Timeout),
            (tonic::Code::Unavailable, UpstreamKind::Connect),
            (tonic::Code::Unimplemented, UpstreamKind::Unsupported),
            (tonic::Code::Internal, UpstreamKind::Other),
        ];
        for (code, kind) in grpc {
            let e = UpstreamError::grpc(code, "m");
            assert_eq!((e.kind, e.code), (kind, Some(Code::Grpc(code))), "{code:?}");
        }
        let kafka = [
            (30, UpstreamKind::Auth),        // GROUP_AUTHORIZATION_FAILED
            (29, UpstreamKind::Auth),        // TOPIC_AUTHORIZATION_FAILED
            (58, UpstreamKind::Auth),        // SASL_AUTHENTICATION_FAILED
            (3, UpstreamKind::NotFound),     // UNKNOWN_TOPIC_OR_PARTITION
            (7, UpstreamKind::Timeout),      // REQUEST_TIMED_OUT
            (15, UpstreamKind::Other),       // COORDINATOR_NOT_AVAILABLE
            (35, UpstreamKind::Unsupported), // UNSUPPORTED_VERSION
        ];
        for (code, kind) in kafka {
            assert_eq!(UpstreamKind::from_kafka(code), kind, "{code}");
        }
    }
}
