//! What only the operator knows about a ScaledObject, as it serves it on
//! `/explain/NAMESPACE/NAME` and `swell explain` reads it: each trigger's last reading and
//! recent history, and what the scale loop concluded at its last poll.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Decision;

/// Samples kept per trigger: an hour at the default 30 s polling interval (less time at a
/// shorter interval). Each sample is 16 bytes (a Unix second and an `f64`), so the ring is
/// 1 920 bytes per trigger, allocated once: a ScaledObject with n triggers keeps
/// n × 1.9 KiB of history, whatever its polling interval.
pub const HISTORY_LEN: usize = 120;

/// A fixed ring of a trigger's recent values; a failed reading is kept as NaN, so a gap
/// shows where the source failed.
#[derive(Clone, Debug)]
pub struct History {
    samples: Vec<(i64, f64)>,
    /// Where the next sample goes once the ring is full.
    next: usize,
}

impl Default for History {
    fn default() -> Self {
        History {
            samples: Vec::with_capacity(HISTORY_LEN),
            next: 0,
        }
    }
}

impl History {
    /// Records one reading (`None`: it failed), overwriting the oldest when full.
    pub fn push(&mut self, at: Timestamp, value: Option<f64>) {
        let sample = (at.as_second(), value.unwrap_or(f64::NAN));
        if self.samples.len() < HISTORY_LEN {
            self.samples.push(sample);
        } else if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = sample;
            self.next = (self.next + 1) % HISTORY_LEN;
        }
    }

    /// The samples, oldest first.
    pub fn points(&self) -> Vec<Point> {
        let (newer, older) = self.samples.split_at(self.next.min(self.samples.len()));
        older
            .iter()
            .chain(newer)
            .map(|&(at, v)| Point {
                at: Timestamp::from_second(at).unwrap_or(Timestamp::UNIX_EPOCH),
                value: (!v.is_nan()).then_some(v),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One sample of a trigger's history; `value` is absent where the reading failed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at: Timestamp,
    pub value: Option<f64>,
}

/// The operator's answer on `/explain/NAMESPACE/NAME`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopReport {
    pub namespace: String,
    pub name: String,
    /// The replica answering leads (its loop scales); a follower only serves metrics and
    /// has no poll of its own.
    pub leader: bool,
    pub polling_interval_seconds: u64,
    pub history_capacity: usize,
    pub triggers: Vec<TriggerReport>,
    /// What the scale loop concluded at its last poll (`None` before the first).
    pub last_poll: Option<PollReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerReport {
    pub index: usize,
    #[serde(rename = "type")]
    pub type_: String,
    /// The metric name the HPA asks for (`s0-…`), or the resource (cpu, memory).
    pub metric: String,
    /// `AverageValue`, `Value` or `Utilization`.
    pub metric_type: String,
    /// The target value of an external metric (a resource target is the HPA's).
    pub target: Option<f64>,
    /// Whether the scale loop reads it (cpu and memory are read by the HPA alone).
    pub polled: bool,
    pub last: Option<LastReading>,
    /// Oldest first, at most [`HISTORY_LEN`].
    pub history: Vec<Point>,
}

/// A trigger's last reading: a value and whether it is above its activation target, or
/// the error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastReading {
    pub value: Option<f64>,
    pub active: Option<bool>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollReport {
    pub at: Timestamp,
    /// The target's replicas the loop read (`None`: it could not read `/scale`).
    pub current_replicas: Option<i32>,
    /// What the loop decided (`None` when it could not read the target).
    pub decision: Option<Decision>,
    pub active: bool,
    /// `autoscaling.keda.sh/force-activation`.
    pub forced: bool,
    /// A trigger failed outside fallback.
    pub error: bool,
    pub in_fallback: bool,
    /// The scalingModifiers formula's value, with one.
    pub composite: Option<f64>,
    pub last_active_time: Option<Timestamp>,
    /// When the cooldown ends: an inactive target above zero (or idle) is deactivated at
    /// the first poll after it.
    pub cooldown_ends: Option<Timestamp>,
    /// Consecutive failures per metric (fallback starts above `failureThreshold`).
    pub failures: BTreeMap<String, i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_oldest_first() {
        let mut h = History::default();
        assert!(h.is_empty());
        for i in 0..(HISTORY_LEN as i64 + 5) {
            let v = if i == 7 { None } else { Some(i as f64) };
            h.push(at(i), v);
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.samples.capacity(), HISTORY_LEN, "never reallocated");
        let p = h.points();
        assert_eq!(p.len(), HISTORY_LEN);
        assert_eq!(
            p[0],
            Point {
                at: at(5),
                value: Some(5.0)
            }
        );
        assert_eq!(p[2].value, None, "the failed reading at 7 is a gap");
        assert_eq!(p[HISTORY_LEN - 1].value, Some((HISTORY_LEN + 4) as f64));
        assert!(p.windows(2).all(|w| w[0].at < w[1].at));
    }

    #[test]
    fn a_report_reads_back_as_written() {
        let r = LoopReport {
            namespace: "ns".into(),
            name: "app".into(),
            leader: true,
            polling_interval_seconds: 30,
            history_capacity: HISTORY_LEN,
            triggers: vec![TriggerReport {
                metric: "s0-metric-api-value".into(),
                history: vec![Point {
                    at: at(0),
                    value: None,
                }],
                ..Default::default()
            }],
            last_poll: Some(PollReport {
                at: at(1),
                current_replicas: Some(2),
                decision: Some(Decision::Activate { to: 1 }),
                active: true,
                forced: false,
                error: false,
                in_fallback: false,
                composite: None,
                last_active_time: Some(at(1)),
                cooldown_ends: Some(at(301)),
                failures: BTreeMap::new(),
            }),
        };
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert!(json.contains("\"pollingIntervalSeconds\":30"), "{json}");
        let back: LoopReport = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, r);
    }
}
