use std::future::Future;
use std::time::{Duration, Instant};

/// What a probe saw: `Ok(value)` ends the wait, `Err(description)` is remembered and
/// printed if the wait gives up.
pub type Seen<T> = Result<T, String>;

/// Polls `probe` until it returns `Ok`, or panics after `timeout` naming `what` and the
/// last thing the probe saw. The timeout only bounds a hang; it asserts nothing about speed.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Seen<T>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            panic!("gave up after {timeout:?} waiting for {what}; last saw: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_when_probe_succeeds() {
        let mut n = 0;
        let v = wait_until("n to reach 3", Duration::from_secs(10), || {
            n += 1;
            let n = n;
            async move { if n >= 3 { Ok(n) } else { Err(format!("n={n}")) } }
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "last saw: still 7")]
    async fn gives_up_with_last_seen() {
        wait_until::<(), _, _>("never", Duration::from_millis(300), || async {
            Err("still 7".to_string())
        })
        .await;
    }
}
