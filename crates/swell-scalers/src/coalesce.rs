//! Upstream calls shared between triggers: concurrent callers asking the same question wait
//! for one call, and an answer younger than the caller's polling interval is reused.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

pub struct Coalescer<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescer<K, V> {
    /// Returns a cached answer no older than `max_age`, or runs `fetch` once for everyone
    /// waiting on `key`: a caller that arrived while a fetch was in flight takes its answer
    /// even with `max_age` zero. The bool is true when this call went upstream.
    pub async fn get<F, Fut>(&self, key: &K, max_age: Duration, fetch: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let arrived = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some((_, v)) = guard
            .as_ref()
            .filter(|(at, _)| *at >= arrived || at.elapsed() < max_age)
        {
            return (v.clone(), false);
        }
        let v = fetch().await;
        *guard = Some((Instant::now(), v.clone()));
        (v, true)
    }

    /// `key`'s cached answer, if any and no fetch of it is in flight.
    pub fn peek(&self, key: &K) -> Option<V> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get(key)?.try_lock().ok()?;
        slot.as_ref().map(|(_, v)| v.clone())
    }

    /// Drops `key`'s cached answer, so the next caller asks again (a failure not worth
    /// keeping for the whole `max_age`).
    pub fn forget(&self, key: &K) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.get(key).is_some_and(|s| s.try_lock().is_ok()) {
            slots.remove(key);
        }
    }

    /// Drops cached answers for keys nobody asked about within `idle`.
    pub fn sweep(&self, idle: Duration) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, slot| match slot.try_lock() {
            Ok(g) => g.as_ref().is_none_or(|(at, _)| at.elapsed() < idle),
            Err(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_call() {
        let c: Arc<Coalescer<&str, u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                c.get(&"q", Duration::from_secs(60), || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    calls.fetch_add(1, Ordering::SeqCst) + 7
                })
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn in_flight_answers_are_shared_even_without_caching() {
        let c: Arc<Coalescer<&str, u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                c.get(&"q", Duration::ZERO, || async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    calls.fetch_add(1, Ordering::SeqCst)
                })
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A later caller with max_age zero goes upstream again.
        assert_eq!(c.get(&"q", Duration::ZERO, || async { 9 }).await, (9, true));
    }

    #[tokio::test]
    async fn stale_answers_are_refreshed() {
        let c: Coalescer<&str, u32> = Coalescer::default();
        assert_eq!(
            c.get(&"k", Duration::from_secs(60), || async { 1 }).await,
            (1, true)
        );
        assert_eq!(
            c.get(&"k", Duration::from_secs(60), || async { 2 }).await,
            (1, false)
        );
        assert_eq!(c.get(&"k", Duration::ZERO, || async { 3 }).await, (3, true));
        c.sweep(Duration::ZERO);
        assert_eq!(
            c.get(&"k", Duration::from_secs(60), || async { 4 }).await,
            (4, true)
        );
    }
}
