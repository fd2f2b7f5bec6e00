//! A credentials source that is asked once, not once per poll.
//!
//! aws-config's `AssumeRoleProvider` deliberately gives its STS client no identity cache,
//! so every AssumeRole attempt first resolves its source credentials again: with IRSA, an
//! `AssumeRoleWithWebIdentity` call per attempt. While the AssumeRole keeps failing (a trust
//! policy that does not name Swell's role), each poll repeated both calls. [`Cached`] keeps
//! a source's credentials until five minutes before they expire, shares one call among
//! concurrent callers, and after a failure answers with that failure, without asking again,
//! until [`backoff`] has passed.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use std::time::Instant;

use super::error_chain;

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The wait after the first failure; it doubles with each further one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a source that failed `failures` times in a row is left alone.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// What a call for credentials does, decided from what is held ([`decide`]).
#[derive(Debug, PartialEq)]
enum Decision {
    Use(Credentials),
    Replay(Failure),
    Ask,
}

/// The last failure, kept to be answered again during its backoff.
#[derive(Clone, Debug, PartialEq)]
struct Failure {
    count: u32,
    at: Instant,
    variant: Variant,
    /// The failure's sources as one line ([`error_chain`]); no secrets: SDK credential
    /// errors name roles and files, never keys.
    cause: String,
}

/// [`CredentialsError`]'s variants, so that a replayed failure reads as the original.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    NotLoaded,
    TimedOut(Duration),
    InvalidConfiguration,
    ProviderError,
    Unhandled,
}

#[derive(Default)]
struct Held {
    credentials: Option<Credentials>,
    failure: Option<Failure>,
}

/// Pure: fresh credentials are used; a failure within its backoff is answered again;
/// otherwise the source is asked.
fn decide(held: &Held, now: Instant, wall: SystemTime) -> Decision {
    if let Some(c) = &held.credentials
        && c.expiry().is_none_or(|e| e > wall + RENEW_BEFORE)
    {
        return Decision::Use(c.clone());
    }
    match &held.failure {
        Some(f) if now < f.at + backoff(f.count) => Decision::Replay(f.clone()),
        _ => Decision::Ask,
    }
}

/// A failure's text, standing in for the original error's source.
#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Cause {}

impl Failure {
    fn new(e: &CredentialsError, count: u32, at: Instant) -> Failure {
        let variant = match e {
            CredentialsError::CredentialsNotLoaded(_) => Variant::NotLoaded,
            CredentialsError::ProviderTimedOut(t) => Variant::TimedOut(t.timeout_duration()),
            CredentialsError::InvalidConfiguration(_) => Variant::InvalidConfiguration,
            CredentialsError::ProviderError(_) => Variant::ProviderError,
            _ => Variant::Unhandled,
        };
        let cause = e.source().map(error_chain).unwrap_or_default();
        Failure {
            count,
            at,
            variant,
            cause,
        }
    }

    /// The error callers see, the same for the attempt that failed and for every answer
    /// during its backoff, so that events about it repeat instead of multiplying.
    fn error(&self) -> CredentialsError {
        let cause = Cause(self.cause.clone());
        match self.variant {
            Variant::NotLoaded => CredentialsError::not_loaded(cause),
            Variant::TimedOut(t) => CredentialsError::provider_timed_out(t),
            Variant::InvalidConfiguration => CredentialsError::invalid_configuration(cause),
            Variant::ProviderError => CredentialsError::provider_error(cause),
            Variant::Unhandled => CredentialsError::unhandled(cause),
        }
    }
}

/// A credentials source asked at most once per validity period or backoff.
#[derive(Debug)]
pub struct Cached {
    source: SharedCredentialsProvider,
    held: tokio::sync::Mutex<Held>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("credentials", &self.credentials.is_some())
            .field("failure", &self.failure)
            .finish()
    }
}

impl Cached {
    pub fn new(source: SharedCredentialsProvider) -> Cached {
        Cached {
            source,
            held: Default::default(),
        }
    }

    /// Shared, as the SDK's configuration takes it.
    pub fn shared(source: SharedCredentialsProvider) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Cached::new(source))
    }

    /// The credentials, as asked for at `now` (a parameter so that tests can move time).
    async fn get(&self, now: Instant) -> Result<Credentials, CredentialsError> {
        // Held across the call: concurrent callers wait for its answer instead of asking too.
        let mut held = self.held.lock().await;
        match decide(&held, now, SystemTime::now()) {
            Decision::Use(c) => return Ok(c),
            Decision::Replay(f) => return Err(f.error()),
            Decision::Ask => {}
        }
        match self.source.provide_credentials().await {
            Ok(c) => {
                held.credentials = Some(c.clone());
                held.failure = None;
                Ok(c)
            }
            Err(e) => {
                let count = held.failure.as_ref().map_or(0, |f| f.count) + 1;
                let failure = Failure::new(&e, count, now);
                let err = failure.error();
                held.failure = Some(failure);
                Err(err)
            }
        }
    }
}

impl ProvideCredentials for Cached {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.get(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 5, 6, 7, 100, u32::MAX]
            .into_iter()
            .map(|n| backoff(n).as_secs())
            .collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    fn creds(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new("AKID", "secret", None, expiry, "test")
    }

    fn failure(count: u32, at: Instant) -> Failure {
        Failure {
            count,
            at,
            variant: Variant::ProviderError,
            cause: "AccessDenied".into(),
        }
    }

    #[test]
    fn decisions() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let ago = |s| now - Duration::from_secs(s);
        let fresh = creds(Some(wall + Duration::from_secs(3600)));
        let expiring = creds(Some(wall + Duration::from_secs(299)));
        let cases: Vec<(&str, Held, Decision)> = vec![
            ("nothing held", Held::default(), Decision::Ask),
            (
                "fresh",
                Held {
                    credentials: Some(fresh.clone()),
                    failure: None,
                },
                Decision::Use(fresh.clone()),
            ),
            (
                "no expiry (static keys)",
                Held {
                    credentials: Some(creds(None)),
                    failure: None,
                },
                Decision::Use(creds(None)),
            ),
            (
                "within five minutes of expiry",
                Held {
                    credentials: Some(expiring.clone()),
                    failure: None,
                },
                Decision::Ask,
            ),
            (
                "first failure 4 s ago",
                Held {
                    credentials: None,
                    failure: Some(failure(1, ago(4))),
                },
                Decision::Replay(failure(1, ago(4))),
            ),
            (
                "first failure 5 s ago",
                Held {
                    credentials: None,
                    failure: Some(failure(1, ago(5))),
                },
                Decision::Ask,
            ),
            (
                "third failure 19 s ago",
                Held {
                    credentials: None,
                    failure: Some(failure(3, ago(19))),
                },
                Decision::Replay(failure(3, ago(19))),
            ),
            (
                "renewal failing: expiring credentials are not used",
                Held {
                    credentials: Some(expiring),
                    failure: Some(failure(1, ago(1))),
                },
                Decision::Replay(failure(1, ago(1))),
            ),
        ];
        for (name, held, want) in cases {
            assert_eq!(decide(&held, now, wall), want, "{name}");
        }
    }

    /// A source that fails its first `fail` calls, counting every call.
    #[derive(Debug)]
    struct Flaky {
        calls: Arc<AtomicU32>,
        fail: u32,
    }

    impl ProvideCredentials for Flaky {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(if n < self.fail {
                Err(CredentialsError::provider_error(Cause(
                    "AccessDenied: not authorized to perform sts:AssumeRole".into(),
                )))
            } else {
                Ok(creds(Some(SystemTime::now() + Duration::from_secs(3600))))
            })
        }
    }

    #[tokio::test]
    async fn a_failing_source_is_asked_again_only_after_its_backoff() {
        let calls = Arc::new(AtomicU32::new(0));
        let cached = Cached::new(SharedCredentialsProvider::new(Flaky {
            calls: calls.clone(),
            fail: 2,
        }));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let first = error_chain(&cached.get(at(0)).await.unwrap_err());
        // Polled every second: the failure is answered again, word for word, for 5 s.
        for s in 1..5 {
            assert_eq!(error_chain(&cached.get(at(s)).await.unwrap_err()), first);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cached.get(at(5)).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The second failure holds for 10 s.
        assert!(cached.get(at(14)).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(cached.get(at(15)).await.is_ok());
        // Success is kept: no more calls while the credentials are fresh.
        for s in 16..26 {
            cached.get(at(s)).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(first.contains("sts:AssumeRole"), "{first}");
    }
}
