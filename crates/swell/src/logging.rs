//! The operator's logging: which filter applies, and a writer that takes AWS access key IDs
//! out of every line.
//!
//! The filter: `--log-level` (or `SWELL_LOG_LEVEL`) when given, else `RUST_LOG`, else `info`,
//! so an explicit Swell setting wins and `RUST_LOG` works as in every tracing-based tool.
//!
//! Redaction is done on the formatted line, not by muting targets: the AWS SDK prints
//! credentials through their `Debug` form (which shows the access key ID and hides only the
//! secret) at several levels and targets — `aws_config`'s profile provider at info,
//! `aws_smithy_runtime`'s "resolved identity" at trace, request headers holding
//! `Credential=AKIA…` — and a target list would miss the next one.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter directives in force, and where they came from (for a start-up line).
pub fn directives(explicit: Option<&str>, rust_log: Option<&str>) -> (String, &'static str) {
    match (explicit, rust_log) {
        (Some(l), _) if !l.trim().is_empty() => (l.to_string(), "--log-level"),
        (_, Some(l)) if !l.trim().is_empty() => (l.to_string(), "RUST_LOG"),
        _ => ("info".to_string(), "default"),
    }
}

/// The filter for `directives`; an unreadable one falls back to `info` with a message.
pub fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|e| {
        eprintln!("swell: log filter {directives:?} is not valid ({e}); logging at info");
        EnvFilter::new("info")
    })
}

/// Prefixes of AWS access key IDs: long-term (`AKIA`), temporary (`ASIA`), and the bearer and
/// context credentials (`ABIA`, `ACCA`).
const KEY_PREFIXES: [&[u8; 4]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
/// An access key ID is the prefix and 16 upper-case letters or digits.
const KEY_LEN: usize = 20;

fn key_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// `text` with every AWS access key ID replaced by its prefix and asterisks.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i + KEY_LEN <= bytes.len() {
        let is_key = KEY_PREFIXES.iter().any(|p| &bytes[i..i + 4] == *p)
            && bytes[i + 4..i + KEY_LEN].iter().all(|b| key_char(*b))
            && (i == 0 || !key_char(bytes[i - 1]))
            && bytes.get(i + KEY_LEN).is_none_or(|b| !key_char(*b));
        if is_key {
            let o = out.get_or_insert_with(|| bytes.to_vec());
            o[i + 4..i + KEY_LEN].fill(b'*');
            i += KEY_LEN;
        } else {
            i += 1;
        }
    }
    match out {
        // Only ASCII bytes were replaced by ASCII bytes: still UTF-8.
        Some(o) => Cow::Owned(String::from_utf8_lossy(&o).into_owned()),
        None => Cow::Borrowed(text),
    }
}

/// A [`MakeWriter`] whose writers redact each event before it reaches `M`'s writer. The fmt
/// layer writes one event per writer, so a whole line is seen at once.
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Holds one event's text until it is flushed or dropped.
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        self.inner.write_all(redact(&text).as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write.
        let _ = self.emit();
    }
}

/// Installs the global subscriber: `directives`, text or JSON, to stderr, redacted.
pub fn init(directives: &str, format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(directives))
        .with_writer(Redacting(io::stderr))
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn precedence_explicit_then_rust_log_then_info() {
        assert_eq!(
            directives(Some("debug"), Some("trace")),
            ("debug".into(), "--log-level")
        );
        assert_eq!(
            directives(None, Some("swell=trace")),
            ("swell=trace".into(), "RUST_LOG")
        );
        assert_eq!(directives(Some(" "), None), ("info".into(), "default"));
        assert_eq!(directives(None, None), ("info".into(), "default"));
    }

    #[test]
    fn redacts_access_key_ids_only() {
        assert_eq!(
            redact("access_key_id: \"AKIAIOSFODNN7EXAMPLE\", x"),
            "access_key_id: \"AKIA****************\", x"
        );
        assert_eq!(
            redact("Credential=ASIAY34FZKBOKMUTVV7A/20240101/eu-west-1/sqs/aws4_request"),
            "Credential=ASIA****************/20240101/eu-west-1/sqs/aws4_request"
        );
        // Not a key: too short, too long, lower case, or inside a longer word.
        for plain in [
            "AKIA123",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "XAKIAIOSFODNN7EXAMPLE",
            "é AKIA",
        ] {
            assert_eq!(redact(plain), plain);
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

    /// A real SDK call with static credentials (as from a TriggerAuthentication) at trace
    /// level, its log captured as `redacting` says.
    fn sdk_log(redacting: bool) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let make = move || sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_ansi(false);
        let dispatch: tracing::Dispatch = if redacting {
            builder.with_writer(Redacting(make)).into()
        } else {
            builder.with_writer(make).into()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            return buffer.text();
        };
        tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(async {
                let creds = aws_sdk_sqs::config::Credentials::new(
                    KEY_ID,
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    None,
                    None,
                    "test",
                );
                let conf = aws_sdk_sqs::Config::builder()
                    .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                    .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
                    .credentials_provider(creds)
                    // Nothing listens there: the call fails after signing.
                    .endpoint_url("http://127.0.0.1:9")
                    .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
                    .build();
                let client = aws_sdk_sqs::Client::from_conf(conf);
                let _ = client
                    .get_queue_attributes()
                    .queue_url("http://127.0.0.1:9/111122223333/q")
                    .send()
                    .await;
            });
        });
        buffer.text()
    }

    #[test]
    fn sdk_debug_output_never_shows_the_access_key_id() {
        let raw = sdk_log(false);
        // The SDK does print it: without redaction, this test would fail below.
        assert!(
            raw.contains(KEY_ID),
            "the SDK no longer logs the key id:\n{raw}"
        );
        let redacted = sdk_log(true);
        assert!(
            redacted.contains("resolved identity"),
            "no SDK trace captured:\n{redacted}"
        );
        assert!(!redacted.contains(KEY_ID), "{redacted}");
        assert!(redacted.contains("AKIA****************"), "{redacted}");
    }
}
