//! Leader election through a Lease, with KEDA's timing settings
//! (`KEDA_OPERATOR_LEADER_ELECTION_{LEASE_DURATION,RENEW_DEADLINE,RETRY_PERIOD}`).
//!
//! kube-lease-manager counts whole seconds and knows a duration and a "grace" (how long
//! before expiry the holder renews). client-go's three durations map onto it as: the Lease
//! lasts `leaseDuration`; the holder renews every `retryPeriod` (grace = lease − retry);
//! and Swell itself steps down when its Lease has not been renewed for `renewDeadline`,
//! which kube-lease-manager would otherwise only notice at expiry.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

#[derive(clap::Args, Debug, Clone)]
pub struct LeaderElectionArgs {
    /// How long a Lease lasts without renewal: a new leader takes over at most this long
    /// after the old one stops (a Go duration in whole seconds, or seconds).
    #[arg(
        long = "lease-duration",
        env = "KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s",
        value_parser = whole_seconds
    )]
    lease_duration: u64,
    /// How long the leader keeps failing to renew before it steps down (default: two thirds
    /// of the lease duration, 10s for 15s).
    #[arg(long = "renew-deadline", env = "KEDA_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE", value_parser = whole_seconds)]
    renew_deadline: Option<u64>,
    /// How often the leader renews and a follower retries (default: 2s for a 15s lease,
    /// scaled with it, at least 1s).
    #[arg(long = "retry-period", env = "KEDA_OPERATOR_LEADER_ELECTION_RETRY_PERIOD", value_parser = whole_seconds)]
    retry_period: Option<u64>,
}

/// Seconds from `15s`, `1m`, or a bare number of seconds; refuses fractions, which the
/// Lease cannot hold (`spec.leaseDurationSeconds` is an integer).
fn whole_seconds(v: &str) -> Result<u64, String> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(n);
    }
    match swell_scalers::metadata::go_duration(v) {
        Some((false, d)) if d.subsec_nanos() == 0 => Ok(d.as_secs()),
        Some((false, _)) => Err(format!(
            "{v:?} is not a whole number of seconds (the Lease counts seconds)"
        )),
        _ => Err(format!(
            "{v:?} is not a duration: give a Go duration such as 15s or 1m, or seconds"
        )),
    }
}

/// The three durations, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease: u64,
    pub renew_deadline: u64,
    pub retry: u64,
}

/// Durations client-go's leader election would refuse; each message names the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error(
        "KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION ({lease}s) must be greater than RENEW_DEADLINE ({renew}s)"
    )]
    LeaseNotAboveRenew { lease: u64, renew: u64 },
    #[error(
        "KEDA_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE ({renew}s) must be greater than RETRY_PERIOD ({retry}s)"
    )]
    RenewNotAboveRetry { renew: u64, retry: u64 },
    #[error("KEDA_OPERATOR_LEADER_ELECTION_RETRY_PERIOD must be at least 1s")]
    NoRetry,
}

impl Timing {
    /// The settings, with the unset ones scaled from the lease duration as controller-runtime's
    /// defaults (15s / 10s / 2s) are.
    pub fn from_args(a: &LeaderElectionArgs) -> Result<Timing, TimingError> {
        let lease = a.lease_duration;
        let renew = a.renew_deadline.unwrap_or((lease * 2 / 3).max(2));
        let retry = a.retry_period.unwrap_or((lease * 2 / 15).max(1));
        if retry == 0 {
            return Err(TimingError::NoRetry);
        }
        if renew <= retry {
            return Err(TimingError::RenewNotAboveRetry { renew, retry });
        }
        if lease <= renew {
            return Err(TimingError::LeaseNotAboveRenew { lease, renew });
        }
        Ok(Timing {
            lease,
            renew_deadline: renew,
            retry,
        })
    }

    /// kube-lease-manager's grace: renew `retry` seconds after the last renewal.
    pub fn grace(&self) -> u64 {
        self.lease - self.retry
    }
}

/// The Lease manager for `id` in `namespace`, held by `identity`.
pub async fn manager(
    client: &Client,
    namespace: &str,
    id: &str,
    identity: &str,
    t: Timing,
) -> anyhow::Result<kube_lease_manager::LeaseManager> {
    kube_lease_manager::LeaseManagerBuilder::new(client.clone(), id)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(t.lease)
        .with_grace(t.grace())
        .build()
        .await
        .with_context(|| format!("setting up Lease {namespace}/{id}"))
}

/// Resolves when this replica, as leader, has not seen its Lease renewed for
/// `renew_deadline` (the API server unreachable, or renewals refused), with the time since
/// the last renewal seen; drop it to stop watching. Renewals are read from a watch of the
/// one Lease.
pub async fn renew_deadline_passed(
    client: &Client,
    namespace: &str,
    id: &str,
    identity: &str,
    t: Timing,
) -> Duration {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={id}"));
    let mut leases = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let deadline = Duration::from_secs(t.renew_deadline);
    let mut renewed = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(t.retry));
    loop {
        tokio::select! {
            e = leases.next() => {
                if let Some(Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l))) = e
                    && l.spec.and_then(|s| s.holder_identity).as_deref() == Some(identity)
                {
                    renewed = tokio::time::Instant::now();
                }
            }
            _ = tick.tick() => {
                if renewed.elapsed() > deadline {
                    return renewed.elapsed();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(lease: u64, renew: Option<u64>, retry: Option<u64>) -> LeaderElectionArgs {
        LeaderElectionArgs {
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        }
    }

    #[test]
    fn timing_as_client_go_checks_it() {
        use TimingError as E;
        let t = |lease, renew, retry| Timing::from_args(&args(lease, renew, retry));
        let ok = |lease, renew_deadline, retry| {
            Ok(Timing {
                lease,
                renew_deadline,
                retry,
            })
        };
        assert_eq!(t(15, None, None), ok(15, 10, 2));
        assert_eq!(t(60, Some(40), Some(10)), ok(60, 40, 10));
        assert_eq!(t(4, None, None), ok(4, 2, 1));
        assert_eq!(t(30, None, None), ok(30, 20, 4));
        let lease_not_above = E::LeaseNotAboveRenew {
            lease: 10,
            renew: 10,
        };
        assert_eq!(t(10, Some(10), Some(2)), Err(lease_not_above));
        let renew_not_above = E::RenewNotAboveRetry { renew: 5, retry: 5 };
        assert_eq!(t(15, Some(5), Some(5)), Err(renew_not_above));
        assert_eq!(t(15, Some(5), Some(0)), Err(E::NoRetry));
        assert_eq!(t(15, None, None).map(|t| t.grace()), Ok(13));
    }

    #[test]
    fn durations_in_whole_seconds() {
        assert_eq!(whole_seconds("15"), Ok(15));
        assert_eq!(whole_seconds("15s"), Ok(15));
        assert_eq!(whole_seconds("1m30s"), Ok(90));
        assert!(
            whole_seconds("1500ms")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(whole_seconds("soon").unwrap_err().contains("Go duration"));
        assert!(whole_seconds("-5s").is_err());
    }
}
