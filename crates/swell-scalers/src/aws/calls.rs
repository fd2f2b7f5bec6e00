//! Every AWS API call a scaler makes goes through [`super::AwsClients::call`]:
//!
//! - a token bucket per (identity, region, service) keeps Swell under the account's quotas
//!   however many triggers share them (CloudWatch's `GetMetricData`: 50 calls per second per
//!   region by default, shared with every other tool in the account);
//! - a service that answered `Throttling`/`ThrottlingException`/`RequestLimitExceeded` (after
//!   the SDK's own retries) is not called again for that identity and region until a backoff
//!   has passed; the triggers fail meanwhile with a throttling error, and a failing trigger
//!   holds the replicas that run (never scales to zero);
//! - each call is counted (`swell_aws_api_calls_total{service,operation}`) with its
//!   estimated price (`swell_aws_estimated_cost_dollars_total`, from [`PRICES`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::credentials::backoff;
use crate::upstream::{UpstreamError, UpstreamKind};

/// One AWS API operation, named as IAM names it (`cloudwatch:GetMetricData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The IAM service prefix, also the metrics' `service` label and the rate limit's scope.
    pub service: &'static str,
    pub action: &'static str,
}

impl Operation {
    pub const fn new(service: &'static str, action: &'static str) -> Operation {
        Operation { service, action }
    }

    /// The IAM permission the call needs, for messages.
    pub fn permission(&self) -> String {
        format!("{}:{}", self.service, self.action)
    }
}

/// One row of [`PRICES`]: what AWS charges per billed unit of an operation.
pub struct Price {
    pub operation: Operation,
    pub dollars_per_unit: f64,
    /// What is billed: a request, or for `GetMetricData` each metric requested.
    pub unit: &'static str,
}

/// When [`PRICES`] were read from AWS's pricing pages (us-east-1 list prices, after free
/// tiers; other regions differ by a few percent).
pub const PRICES_AS_OF: &str = "2025-06-01";

/// AWS's published per-request prices for the calls Swell makes (aws.amazon.com/cloudwatch/
/// pricing, /sqs/pricing, /secrets-manager/pricing, /dynamodb/pricing). Calls not listed
/// have no per-request charge: Kinesis `DescribeStreamSummary`, DynamoDB `DescribeTable`,
/// DynamoDB Streams `DescribeStream`, STS.
pub const PRICES: &[Price] = &[
    Price {
        operation: Operation::new("cloudwatch", "GetMetricData"),
        dollars_per_unit: 0.01 / 1_000.0,
        unit: "metric requested",
    },
    Price {
        operation: Operation::new("sqs", "GetQueueAttributes"),
        dollars_per_unit: 0.40 / 1_000_000.0,
        unit: "request",
    },
    Price {
        operation: Operation::new("secretsmanager", "GetSecretValue"),
        dollars_per_unit: 0.05 / 10_000.0,
        unit: "request",
    },
    // On-demand read request units; a COUNT query reads at least one per page.
    Price {
        operation: Operation::new("dynamodb", "Query"),
        dollars_per_unit: 0.125 / 1_000_000.0,
        unit: "read request unit",
    },
];

/// The price of `units` billed units of `operation` (0 when it has no per-request charge).
pub fn price(operation: Operation, units: f64) -> f64 {
    PRICES
        .iter()
        .find(|p| p.operation == operation)
        .map_or(0.0, |p| p.dollars_per_unit * units)
}

/// The rate Swell allows itself per (identity, region, service): `--aws-api-qps` and
/// `--aws-api-burst` (chart `aws.apiRateLimit`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CallLimits {
    pub qps: f64,
    pub burst: u32,
}

impl Default for CallLimits {
    /// Below CloudWatch's default `GetMetricData` quota (50 per second per region), so Swell
    /// leaves room for the account's other callers.
    fn default() -> CallLimits {
        CallLimits {
            qps: 20.0,
            burst: 40,
        }
    }
}

/// The families of [`super::AwsClients::call`], registered by the operator's metrics.
#[derive(Clone, Default)]
pub struct AwsMetrics {
    pub calls: Family<Vec<(&'static str, String)>, Counter>,
    pub cost: Family<Vec<(&'static str, String)>, Counter<f64, AtomicU64>>,
}

impl AwsMetrics {
    pub(super) fn count(&self, operation: Operation, units: f64) {
        let labels = vec![
            ("service", operation.service.to_string()),
            ("operation", operation.action.to_string()),
        ];
        self.calls.get_or_create(&labels).inc();
        let dollars = price(operation, units);
        if dollars > 0.0 {
            self.cost.get_or_create(&labels).inc_by(dollars);
        }
    }
}

/// One (identity, region, service)'s rate and throttling state.
#[derive(Clone, Debug, PartialEq)]
struct Bucket {
    /// Tokens at `at`; negative when calls have reserved tokens not yet refilled.
    tokens: f64,
    at: Instant,
    /// Throttled answers in a row, and when the last one came.
    throttled: u32,
    throttled_at: Option<Instant>,
}

/// What a call may do now ([`admit`]).
#[derive(Debug, PartialEq)]
enum Admission {
    /// Go after waiting this long (zero: at once).
    Go(Duration),
    /// The service throttled this identity: wait this much longer before calling.
    BackOff { remaining: Duration, throttled: u32 },
}

/// Pure: refills `b` up to `now`, then either reserves one token (a caller that finds none
/// waits for its refill) or, within a throttling backoff, refuses.
fn admit(b: &mut Bucket, limits: CallLimits, now: Instant) -> Admission {
    if let Some(at) = b.throttled_at {
        let until = at + backoff(b.throttled);
        if now < until {
            return Admission::BackOff {
                remaining: until - now,
                throttled: b.throttled,
            };
        }
    }
    let qps = limits.qps.max(f64::MIN_POSITIVE);
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * qps).min(f64::from(limits.burst.max(1)));
    b.at = now;
    b.tokens -= 1.0;
    if b.tokens >= 0.0 {
        Admission::Go(Duration::ZERO)
    } else {
        Admission::Go(Duration::from_secs_f64(-b.tokens / qps))
    }
}

/// The key of a [`Bucket`]: the identity's [`super::Identity::key`], region and service.
type BucketKey = (String, String, &'static str);

/// The buckets of every (identity, region, service) Swell has called.
#[derive(Default)]
pub(super) struct Limiter {
    limits: CallLimits,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl Limiter {
    pub(super) fn new(limits: CallLimits) -> Limiter {
        Limiter {
            limits,
            buckets: Mutex::default(),
        }
    }

    fn with<R>(&self, key: &BucketKey, f: impl FnOnce(&mut Bucket) -> R) -> R {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.clone()).or_insert_with(|| Bucket {
            tokens: f64::from(self.limits.burst.max(1)),
            at: Instant::now(),
            throttled: 0,
            throttled_at: None,
        });
        f(bucket)
    }

    /// Waits for a token, or refuses while `key`'s service is backing off.
    pub(super) async fn acquire(&self, key: &BucketKey) -> Result<(), UpstreamError> {
        match self.with(key, |b| admit(b, self.limits, Instant::now())) {
            Admission::Go(wait) if wait.is_zero() => Ok(()),
            Admission::Go(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Admission::BackOff {
                remaining,
                throttled,
            } => Err(UpstreamError::new(
                UpstreamKind::Throttled,
                format!(
                    "AWS throttled {service} calls in {region} {throttled} time(s) in a row; Swell \
                     waits {remaining}s more before calling again, and holds the replicas meanwhile",
                    service = key.2,
                    region = key.1,
                    remaining = remaining.as_secs().max(1),
                ),
            )),
        }
    }

    /// Records how a call ended: a throttled one starts or lengthens the backoff.
    pub(super) fn finished(&self, key: &BucketKey, throttled: bool) {
        self.with(key, |b| {
            if throttled {
                b.throttled += 1;
                b.throttled_at = Some(Instant::now());
            } else {
                b.throttled = 0;
                b.throttled_at = None;
            }
        });
    }

    pub(super) fn key(identity: &super::Identity, region: &str, op: Operation) -> BucketKey {
        (identity.key(), region.to_string(), op.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(tokens: f64, at: Instant) -> Bucket {
        Bucket {
            tokens,
            at,
            throttled: 0,
            throttled_at: None,
        }
    }

    const LIMITS: CallLimits = CallLimits {
        qps: 10.0,
        burst: 2,
    };

    #[test]
    fn a_full_bucket_admits_its_burst_then_spaces_calls_by_the_rate() {
        let t0 = Instant::now();
        let mut b = bucket(2.0, t0);
        assert_eq!(admit(&mut b, LIMITS, t0), Admission::Go(Duration::ZERO));
        assert_eq!(admit(&mut b, LIMITS, t0), Admission::Go(Duration::ZERO));
        // The third waits one refill (100 ms), the fourth two.
        let third = admit(&mut b, LIMITS, t0);
        let fourth = admit(&mut b, LIMITS, t0);
        let ms = |a: Admission| match a {
            Admission::Go(d) => d.as_millis(),
            other => panic!("{other:?}"),
        };
        assert_eq!((ms(third), ms(fourth)), (100, 200));
        // Refilled, never above the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(admit(&mut b, LIMITS, later), Admission::Go(Duration::ZERO));
        assert!((b.tokens - 1.0).abs() < 1e-9, "{}", b.tokens);
    }

    #[test]
    fn a_throttled_service_is_left_alone_for_a_doubling_backoff() {
        let t0 = Instant::now();
        for (throttled, wait) in [(1, 5), (2, 10), (3, 20), (7, 300), (30, 300)] {
            let mut b = bucket(2.0, t0);
            b.throttled = throttled;
            b.throttled_at = Some(t0);
            let just_before = t0 + Duration::from_secs(wait) - Duration::from_millis(1);
            assert!(
                matches!(admit(&mut b, LIMITS, just_before), Admission::BackOff { throttled: n, .. } if n == throttled),
                "{throttled} throttled: still backing off just before {wait}s"
            );
            let after = t0 + Duration::from_secs(wait);
            assert_eq!(admit(&mut b, LIMITS, after), Admission::Go(Duration::ZERO));
        }
    }

    #[tokio::test]
    async fn backing_off_says_so_and_a_success_ends_it() {
        let limiter = Limiter::new(LIMITS);
        let key = (
            "operator".to_string(),
            "eu-west-1".to_string(),
            "cloudwatch",
        );
        assert!(limiter.acquire(&key).await.is_ok());
        limiter.finished(&key, true);
        let e = limiter.acquire(&key).await.unwrap_err();
        assert_eq!(e.kind, UpstreamKind::Throttled);
        assert!(
            e.message
                .contains("AWS throttled cloudwatch calls in eu-west-1 1 time(s)")
                && e.message.contains("holds the replicas"),
            "{}",
            e.message
        );
        // Another service or region of the same identity is not held back.
        let sqs = ("operator".to_string(), "eu-west-1".to_string(), "sqs");
        assert!(limiter.acquire(&sqs).await.is_ok());
        limiter.finished(&key, false);
        assert!(limiter.acquire(&key).await.is_ok());
    }

    #[test]
    fn prices_come_from_the_table() {
        let gmd = Operation::new("cloudwatch", "GetMetricData");
        // 200 metrics in one call: 200 billed metrics ($0.01 per 1,000).
        assert!((price(gmd, 200.0) - 0.002).abs() < 1e-12);
        let sqs = Operation::new("sqs", "GetQueueAttributes");
        assert!((price(sqs, 1.0) - 0.000_000_4).abs() < 1e-15);
        assert_eq!(
            price(Operation::new("kinesis", "DescribeStreamSummary"), 1.0),
            0.0
        );
    }
}
