//! A ScaledObject's live state: its target and built triggers, what they last read, and
//! whether they still stand for its inputs. Its scale loop and the metrics API share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swell_scalers::{MetricSpec, Sample, ScalerError};
use swell_scaling::explain::{History, LastReading, LoopReport, PollReport, TriggerReport};

use crate::auth::{SourceEvent, SourceRef};
use crate::composite::{COMPOSITE_METRIC_NAME, Composite};
use crate::target::Target;
use crate::triggers::{Built, TriggerRuntime};

/// One reading of a trigger; the error keeps its structure until a message is written.
pub type Reading = Result<Sample, Arc<ScalerError>>;

pub struct LoopState {
    pub target: Target,
    pub triggers: Vec<TriggerRuntime>,
    /// The scalingModifiers formula over the triggers, when it has one.
    pub composite: Option<Composite>,
    /// The (Cluster)TriggerAuthentications the triggers read (status `authenticationsTypes`).
    pub auth_names: Vec<String>,
    /// The Secrets and ConfigMaps they were built from, with versions.
    pub sources: Vec<SourceRef>,
    /// The scalers' notices, until the leader records them ([`LoopState::take_notices`]).
    notices: Mutex<Vec<String>>,
    /// Their generations when the scalers were built (one per trigger, `None` without an
    /// authenticationRef): a changed one means the scalers are rebuilt.
    pub auth_versions: Vec<Option<i64>>,
    /// When the scalers were built: a failing loop asks for new ones at most once per
    /// polling interval.
    pub built_at: Instant,
    /// A trigger failed: the next reconcile rebuilds the scalers, re-reading credentials
    /// (KEDA's `refreshScaler`), so a rotated Secret is picked up without a spec change.
    pub stale: AtomicBool,
    /// Built to replace stale scalers of the same generation.
    pub rebuilt: bool,
    /// The last reading of each metric, by metric name.
    pub last: Mutex<HashMap<String, Reading>>,
    /// Live reads for the metrics API; concurrent identical requests share one.
    pub live: swell_scalers::coalesce::Coalescer<String, Reading>,
    /// What the scale loop last concluded about the triggers (`None` before its first
    /// poll): the reconciler decides Ready from it, so both agree by construction.
    pub verdict: Mutex<Option<TriggerVerdict>>,
    /// Each metric's recent values for `swell explain`: a fixed ring of
    /// [`swell_scaling::explain::HISTORY_LEN`] samples (1.9 KiB) per trigger.
    pub history: Mutex<HashMap<String, History>>,
    /// What the scale loop concluded at its last poll, for `swell explain`.
    pub last_poll: Mutex<Option<PollReport>>,
}

/// The scale loop's conclusion about a ScaledObject's triggers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerVerdict {
    Healthy,
    /// Some triggers failed (and are not in fallback); the message names each.
    Partial(String),
    /// Every trigger failed.
    AllFailed(String),
}

impl LoopState {
    pub fn new(target: Target, built: Built, auth_versions: Vec<Option<i64>>) -> Self {
        LoopState {
            target,
            triggers: built.triggers,
            composite: None,
            auth_names: built.auth_names,
            sources: built.sources,
            notices: Mutex::new(built.notices),
            auth_versions,
            built_at: Instant::now(),
            stale: AtomicBool::new(false),
            rebuilt: false,
            last: Default::default(),
            live: Default::default(),
            verdict: Mutex::new(None),
            history: Default::default(),
            last_poll: Mutex::new(None),
        }
    }

    /// A state replacing `old` for the same generation: it keeps the last readings and
    /// verdict, so status (Ready) reads the same until the new scalers have polled.
    pub fn replacing(mut self, old: &LoopState) -> Self {
        self.rebuilt = true;
        if let (Ok(old_last), Ok(last)) = (old.last.lock(), self.last.get_mut()) {
            last.clone_from(&old_last);
        }
        if let (Ok(old_verdict), Ok(verdict)) = (old.verdict.lock(), self.verdict.get_mut()) {
            verdict.clone_from(&old_verdict);
        }
        // The history is the source's, not the scalers': it survives their rebuild.
        if let (Ok(old), Ok(new)) = (old.history.lock(), self.history.get_mut()) {
            new.clone_from(&old);
        }
        if let (Ok(old), Ok(new)) = (old.last_poll.lock(), self.last_poll.get_mut()) {
            new.clone_from(&old);
        }
        self
    }

    /// The scalers' notices the first time it is asked, then none: one event per build.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    pub fn verdict(&self) -> Option<TriggerVerdict> {
        self.verdict.lock().ok().and_then(|v| v.clone())
    }

    pub fn set_verdict(&self, verdict: TriggerVerdict) {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(verdict);
        }
    }

    /// Whether these scalers still stand for the ScaledObject's inputs: not failed since
    /// they were built, and built from the (Cluster)TriggerAuthentications it names now.
    pub fn current(&self, auth_versions: &[Option<i64>]) -> bool {
        !self.stale.load(Ordering::Relaxed) && self.auth_versions == auth_versions
    }

    /// Marks the scalers stale when they were built from the Secret or ConfigMap `e` names
    /// and it has changed since; whether it has.
    pub fn source_changed(&self, e: &SourceEvent<'_>) -> bool {
        let changed = e.changes_any(&self.sources);
        if changed {
            self.stale.store(true, Ordering::Relaxed);
        }
        changed
    }

    /// After a failed reading: whether to ask for a rebuild now (once per `polling`).
    pub fn rebuild_due(&self, polling: Duration) -> bool {
        self.built_at.elapsed() >= polling && !self.stale.swap(true, Ordering::Relaxed)
    }

    /// Records the loop's readings for the metrics API (`useCachedMetrics`) and status.
    pub fn remember(&self, readings: &[(String, Reading)]) {
        if let Ok(mut last) = self.last.lock() {
            for (m, r) in readings {
                last.insert(m.clone(), r.clone());
            }
        }
        let now = jiff::Timestamp::now();
        if let Ok(mut history) = self.history.lock() {
            for (m, r) in readings {
                let value = r.as_ref().ok().map(|s| s.value);
                history.entry(m.clone()).or_default().push(now, value);
            }
        }
    }

    pub fn set_poll(&self, poll: PollReport) {
        if let Ok(mut p) = self.last_poll.lock() {
            *p = Some(poll);
        }
    }

    /// What `/explain/NAMESPACE/NAME` answers: each trigger's last reading and history,
    /// and the last poll's conclusion.
    pub fn report(
        &self,
        namespace: &str,
        name: &str,
        leader: bool,
        polling: Duration,
    ) -> LoopReport {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        let history = self.history.lock().map(|h| h.clone()).unwrap_or_default();
        let triggers = self
            .triggers
            .iter()
            .map(|t| {
                let metric = t.spec.name().to_string();
                let (metric_type, target) = match &t.spec {
                    MetricSpec::External {
                        target,
                        metric_type,
                        ..
                    } => (*metric_type, Some(*target)),
                    MetricSpec::Resource { metric_type, .. } => (*metric_type, None),
                };
                TriggerReport {
                    index: t.index,
                    type_: t.type_.clone(),
                    metric_type: metric_type.as_str().to_string(),
                    target,
                    polled: t.scaler.polled(),
                    last: last.get(&metric).map(last_reading),
                    history: history
                        .get(&metric)
                        .map(History::points)
                        .unwrap_or_default(),
                    metric,
                }
            })
            .collect();
        LoopReport {
            namespace: namespace.to_string(),
            name: name.to_string(),
            leader,
            polling_interval_seconds: polling.as_secs(),
            history_capacity: swell_scaling::explain::HISTORY_LEN,
            triggers,
            last_poll: self.last_poll.lock().ok().and_then(|p| p.clone()),
        }
    }

    pub fn specs(&self) -> Vec<MetricSpec> {
        self.triggers.iter().map(|t| t.spec.clone()).collect()
    }

    /// The metrics served: each trigger's, and `composite-metric` with a formula.
    pub fn metric_names(&self) -> Vec<String> {
        let composite = self.composite.as_ref().map(|_| COMPOSITE_METRIC_NAME);
        self.triggers
            .iter()
            .map(|t| t.spec.name())
            .chain(composite)
            .map(str::to_owned)
            .collect()
    }
}

fn last_reading(r: &Reading) -> LastReading {
    match r {
        Ok(s) => LastReading {
            value: Some(s.value),
            active: Some(s.active),
            error: None,
        },
        Err(e) => LastReading {
            error: Some(e.to_string()),
            ..Default::default()
        },
    }
}

/// What the registry holds for a ScaledJob's job loop (its scalers live in the loop).
pub struct JobLoopState {
    pub trigger_types: Vec<String>,
    /// The Secrets and ConfigMaps its scalers were built from.
    pub sources: Mutex<Vec<SourceRef>>,
    /// One of them changed: the loop rebuilds its scalers before the next poll.
    pub stale: AtomicBool,
}

impl JobLoopState {
    pub fn new(trigger_types: Vec<String>, sources: Vec<SourceRef>) -> Self {
        JobLoopState {
            trigger_types,
            sources: Mutex::new(sources),
            stale: AtomicBool::new(false),
        }
    }

    /// Marks the scalers stale when built from the Secret or ConfigMap `e` names, changed
    /// since; whether it has.
    pub fn source_changed(&self, e: &SourceEvent<'_>) -> bool {
        let changed = self.sources.lock().is_ok_and(|s| e.changes_any(&s));
        if changed {
            self.stale.store(true, Ordering::Relaxed);
        }
        changed
    }

    /// Whether a source changed since the last call (the loop then rebuilds).
    pub fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::Relaxed)
    }

    /// The scalers were rebuilt from these sources.
    pub fn rebuilt(&self, sources: Vec<SourceRef>) {
        if let Ok(mut s) = self.sources.lock() {
            *s = sources;
        }
    }
}

impl crate::loops::Registered for JobLoopState {
    fn trigger_types(&self) -> Vec<&str> {
        self.trigger_types.iter().map(String::as_str).collect()
    }
}

impl crate::loops::Registered for LoopState {
    fn trigger_types(&self) -> Vec<&str> {
        self.triggers.iter().map(|t| t.type_.as_str()).collect()
    }
}
