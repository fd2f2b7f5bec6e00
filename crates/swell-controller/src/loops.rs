//! The loop runtime both controllers use: a registry of live loops, one per object, each
//! with the generation its state was built from, a cancel token and the state itself; the
//! periodic runner; and the handover of a follower's states to a new leader.
//!
//! The registry counts what it holds (`keda_resource_registered_total`,
//! `keda_trigger_registered_total`), so registering and counting cannot drift apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What a registered state tells the registry for its metrics.
pub trait Registered {
    /// The trigger types it runs (`keda_trigger_registered_total{type}`).
    fn trigger_types(&self) -> Vec<&str>;
}

/// A live state and what it was built from.
pub struct Handle<S> {
    /// The object generation the state was built from.
    pub generation: i64,
    pub cancel: CancellationToken,
    pub state: Arc<S>,
    /// A loop runs on `state`; a follower's states only serve the metrics API until a
    /// leader adopts them.
    pub spawned: bool,
}

impl<S> Handle<S> {
    /// A state that serves reads but runs no loop yet.
    pub fn idle(generation: i64, state: Arc<S>) -> Self {
        Handle {
            generation,
            cancel: CancellationToken::new(),
            state,
            spawned: false,
        }
    }
}

/// The live states of one kind of object (`kind` is KEDA's metric label: `scaled_object`,
/// `scaled_job`).
pub struct Registry<K: Resource, S> {
    kind: &'static str,
    metrics: Arc<Metrics>,
    map: Mutex<HashMap<ObjectRef<K>, Handle<S>>>,
}

impl<K, S> Registry<K, S>
where
    K: Resource<DynamicType = ()>,
    S: Registered,
{
    pub fn new(kind: &'static str, metrics: Arc<Metrics>) -> Self {
        Registry {
            kind,
            metrics,
            map: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ObjectRef<K>, Handle<S>>) -> T) -> Option<T> {
        self.map.lock().ok().map(|mut m| f(&mut m))
    }

    /// The state registered for `key`, whatever generation it was built from.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<S>> {
        self.with(|m| m.get(key).map(|h| h.state.clone())).flatten()
    }

    /// The state built from this generation, if any.
    pub fn state(&self, key: &ObjectRef<K>, generation: i64) -> Option<Arc<S>> {
        self.with(|m| {
            m.get(key)
                .filter(|h| h.generation == generation)
                .map(|h| h.state.clone())
        })
        .flatten()
    }

    /// Whether a loop already runs for this generation.
    pub fn running(&self, key: &ObjectRef<K>, generation: i64) -> bool {
        self.with(|m| {
            m.get(key)
                .is_some_and(|h| h.generation == generation && h.spawned)
        })
        .unwrap_or(false)
    }

    /// Every registered state.
    pub fn states(&self) -> Vec<Arc<S>> {
        self.with(|m| m.values().map(|h| h.state.clone()).collect())
            .unwrap_or_default()
    }

    /// The objects whose state matches `f`.
    pub fn select(&self, f: impl Fn(&S) -> bool) -> Vec<ObjectRef<K>> {
        self.with(|m| {
            m.iter()
                .filter(|(_, h)| f(&h.state))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Registers `handle`, stopping the one it replaces.
    pub fn insert(&self, key: ObjectRef<K>, handle: Handle<S>) {
        self.count(&key, &handle.state, 1);
        let old = self.with(|m| m.insert(key.clone(), handle)).flatten();
        if let Some(old) = old {
            old.cancel.cancel();
            self.count(&key, &old.state, -1);
        }
    }

    /// Stops and forgets `key`'s loop; whether there was one.
    pub fn remove(&self, key: &ObjectRef<K>) -> bool {
        match self.with(|m| m.remove(key)).flatten() {
            Some(h) => {
                h.cancel.cancel();
                self.count(key, &h.state, -1);
                true
            }
            None => false,
        }
    }

    /// Takes over another registry's states (a follower's, at leadership handover): their
    /// scalers keep answering without a gap, and the first reconcile starts loops on them
    /// instead of building every scaler again. Counts move with them.
    pub fn adopt(&self, from: &Registry<K, S>) {
        let taken: Vec<_> = from.with(|m| m.drain().collect()).unwrap_or_default();
        for (key, handle) in taken {
            from.count(&key, &handle.state, -1);
            self.insert(key, handle);
        }
    }

    /// Stops every loop (leadership or the process ended).
    pub fn stop_all(&self) {
        let all: Vec<_> = self.with(|m| m.drain().collect()).unwrap_or_default();
        for (key, h) in all {
            h.cancel.cancel();
            self.count(&key, &h.state, -1);
        }
    }

    fn count(&self, key: &ObjectRef<K>, state: &S, delta: i64) {
        let ns = key.namespace.as_deref().unwrap_or_default();
        self.metrics
            .count_registered(self.kind, ns, &state.trigger_types(), delta);
    }
}

/// Why a loop ticked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Interval,
    /// A push trigger said its source is active.
    Push,
}

/// A loop's clock: ticks every `polling` until `cancel` fires; a notification from one of
/// `wakes` (push triggers) ticks at once and restarts the interval.
pub struct Ticker {
    interval: tokio::time::Interval,
    cancel: CancellationToken,
    wakes: Vec<Arc<Notify>>,
}

impl Ticker {
    pub fn new(polling: Duration, cancel: CancellationToken, wakes: Vec<Arc<Notify>>) -> Self {
        let mut interval = tokio::time::interval(polling);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticker {
            interval,
            cancel,
            wakes,
        }
    }

    /// Waits for the next tick and says what caused it; `None` once the loop is cancelled.
    pub async fn tick(&mut self) -> Option<Cause> {
        let wakes = &self.wakes;
        let woken = async {
            if wakes.is_empty() {
                std::future::pending::<()>().await;
            }
            futures::future::select_all(wakes.iter().map(|w| Box::pin(w.notified()))).await;
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            _ = self.interval.tick() => Some(Cause::Interval),
            _ = woken => {
                self.interval.reset();
                Some(Cause::Push)
            }
        }
    }
}

/// `pollingInterval` seconds as a duration: at least a second, 30 s when negative.
pub fn polling_duration(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(30).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use swell_api::ScaledObject;

    struct Fake(Vec<&'static str>);
    impl Registered for Fake {
        fn trigger_types(&self) -> Vec<&str> {
            self.0.clone()
        }
    }

    fn registered(m: &Metrics) -> String {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("keda_resource_registered_total{"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn replacing_and_removing_keep_the_count_and_cancel_the_old_loop() {
        let metrics = Arc::new(Metrics::new());
        let reg: Registry<ScaledObject, Fake> = Registry::new("scaled_object", metrics.clone());
        let key = ObjectRef::new("a").within("ns");
        let first = Handle::idle(1, Arc::new(Fake(vec!["cron"])));
        let first_cancel = first.cancel.clone();
        reg.insert(key.clone(), first);
        reg.insert(key.clone(), Handle::idle(2, Arc::new(Fake(vec!["cron"]))));
        assert!(first_cancel.is_cancelled());
        assert!(reg.state(&key, 1).is_none() && reg.state(&key, 2).is_some());
        assert!(!reg.running(&key, 2), "an idle handle runs no loop");
        assert!(
            registered(&metrics).ends_with(" 1"),
            "{}",
            registered(&metrics)
        );
        assert!(reg.remove(&key) && !reg.remove(&key));
        assert!(registered(&metrics).ends_with(" 0"));
    }

    #[test]
    fn a_leader_adopts_a_followers_states_and_their_counts() {
        let follower_metrics = Arc::new(Metrics::new());
        let leader_metrics = Arc::new(Metrics::new());
        let follower: Registry<ScaledObject, Fake> =
            Registry::new("scaled_object", follower_metrics.clone());
        let leader: Registry<ScaledObject, Fake> =
            Registry::new("scaled_object", leader_metrics.clone());
        let key = ObjectRef::new("a").within("ns");
        let state = Arc::new(Fake(vec!["kafka"]));
        follower.insert(key.clone(), Handle::idle(4, state.clone()));
        leader.adopt(&follower);
        assert!(follower.get(&key).is_none());
        assert!(Arc::ptr_eq(&leader.state(&key, 4).unwrap(), &state));
        assert!(registered(&follower_metrics).ends_with(" 0"));
        assert!(registered(&leader_metrics).ends_with(" 1"));
        leader.stop_all();
        assert!(leader.get(&key).is_none());
    }

    #[test]
    fn polling_interval_is_at_least_a_second() {
        assert_eq!(polling_duration(0), Duration::from_secs(1));
        assert_eq!(polling_duration(-5), Duration::from_secs(30));
        assert_eq!(polling_duration(15), Duration::from_secs(15));
    }

    #[tokio::test]
    async fn the_ticker_wakes_on_push_and_stops_when_cancelled() {
        use futures::FutureExt as _;
        let cancel = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let mut ticker = Ticker::new(
            Duration::from_secs(3600),
            cancel.clone(),
            vec![wake.clone()],
        );
        assert_eq!(
            ticker.tick().await,
            Some(Cause::Interval),
            "the first tick is immediate"
        );
        // Then each tick is polled once: ready or not, with no time passing.
        assert_eq!(
            ticker.tick().now_or_never(),
            None,
            "then it waits for the hour"
        );
        wake.notify_one();
        assert_eq!(
            ticker.tick().now_or_never(),
            Some(Some(Cause::Push)),
            "a push ticks at once"
        );
        assert_eq!(ticker.tick().now_or_never(), None, "and restarts the hour");
        cancel.cancel();
        assert_eq!(ticker.tick().now_or_never(), Some(None));
    }
}
