//! The Kubernetes client `swell operator` talks through: a kubeconfig or in-cluster
//! configuration, and a client-side token bucket as client-go's (`--kube-api-qps`,
//! `--kube-api-burst`), so a burst of reconciles waits here instead of flooding the API
//! server's priority levels.
//!
//! The bucket is written here rather than taken from `governor` or tower's `RateLimit`:
//! tower's has no burst, and this one is a pure function of the time it is given, so it is
//! table-tested without a clock.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::client::ClientBuilder;
use tokio::time::{Instant, Sleep};

#[derive(clap::Args, Debug, Clone)]
pub struct KubeApiArgs {
    /// Requests per second to the API server, sustained (KEDA's `--kube-api-qps`, which
    /// defaults to 20; Swell reconciles with fewer requests and defaults higher). 0: no limit.
    #[arg(long, default_value_t = 200.0)]
    kube_api_qps: f64,
    /// Requests sent at once above the sustained rate (KEDA's `--kube-api-burst`).
    #[arg(long, default_value_t = 400)]
    kube_api_burst: u32,
}

/// A kubeconfig (or the in-cluster configuration) and the rate limit.
pub async fn client(path: Option<&PathBuf>, limit: &KubeApiArgs) -> anyhow::Result<Client> {
    let config = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .context("loading kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster")?,
    };
    let builder = ClientBuilder::try_from(config).context("building the Kubernetes client")?;
    if !(limit.kube_api_qps.is_finite() && limit.kube_api_qps >= 0.0) {
        anyhow::bail!(
            "--kube-api-qps {} must be a number of requests per second, 0 for no limit",
            limit.kube_api_qps
        );
    }
    if limit.kube_api_qps == 0.0 {
        return Ok(builder.build());
    }
    if limit.kube_api_burst == 0 {
        anyhow::bail!("--kube-api-burst must be at least 1 while --kube-api-qps limits requests");
    }
    let bucket = TokenBucket::new(limit.kube_api_qps, limit.kube_api_burst, Instant::now());
    Ok(builder.with_layer(&RateLimitLayer(bucket)).build())
}

/// Tokens refill at `rate` per second up to `burst`; each request takes one.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[derive(Clone)]
pub struct RateLimitLayer(TokenBucket);

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            bucket: self.0.clone(),
            wait: None,
            granted: false,
        }
    }
}

/// Ready only once it holds a token. kube's client puts one instance behind a buffer, so
/// one bucket serves every request of the client.
pub struct RateLimited<S> {
    inner: S,
    bucket: TokenBucket,
    wait: Option<Pin<Box<Sleep>>>,
    granted: bool,
}

impl<S, R> tower::Service<R> for RateLimited<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.granted {
            if let Some(wait) = self.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            match self.bucket.take(Instant::now()) {
                Ok(()) => self.granted = true,
                Err(d) => self.wait = Some(Box::pin(tokio::time::sleep(d))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.granted = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service as _, ServiceExt as _};

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = TokenBucket::new(10.0, 3, t0);
        // The burst at once, then one token per 100 ms.
        assert_eq!(b.take(t0), Ok(()));
        assert_eq!(b.take(t0), Ok(()));
        assert_eq!(b.take(t0), Ok(()));
        assert_eq!(b.take(t0), Err(Duration::from_millis(100)));
        assert_eq!(b.take(ms(50)), Err(Duration::from_millis(50)));
        assert_eq!(b.take(ms(100)), Ok(()));
        // A long idle time refills no more than the burst.
        for _ in 0..3 {
            assert_eq!(b.take(ms(10_000)), Ok(()));
        }
        assert!(b.take(ms(10_000)).is_err());
    }

    #[tokio::test]
    async fn a_request_beyond_the_burst_waits_for_a_token() {
        use futures::FutureExt as _;
        // One token every 100 s: two requests go at once, the third must wait.
        let layer = RateLimitLayer(TokenBucket::new(0.01, 2, Instant::now()));
        let mut svc = tower::Layer::layer(
            &layer,
            tower::service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>(()) }),
        );
        for _ in 0..2 {
            let ready = svc.ready().now_or_never();
            assert!(ready.is_some(), "within the burst");
            svc.call(()).await.unwrap();
        }
        assert!(svc.ready().now_or_never().is_none(), "past the burst");
    }
}
