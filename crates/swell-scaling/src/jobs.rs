//! ScaledJob decisions: how many Jobs to create from the triggers' queue lengths and the
//! Jobs already running or pending, and which finished Jobs fall out of the history.
//!
//! The arithmetic follows KEDA's `pkg/scaling/scaledjob` and `executor/scale_jobs.go`, so a
//! ScaledJob creates the same number of Jobs under Swell as under KEDA.

/// One trigger's reading for a ScaledJob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TriggerLoad {
    /// The metric value: messages waiting, lag, ….
    pub queue_length: f64,
    /// The trigger's target: how many of `queue_length` one Job takes.
    pub target: f64,
    pub active: bool,
}

/// `scalingStrategy.multipleScalersCalculation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Calculation {
    #[default]
    Max,
    Min,
    Avg,
    Sum,
}

/// `scalingStrategy.strategy`, with the custom strategy's parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Strategy {
    #[default]
    Default,
    Custom {
        queue_length_deduction: i64,
        running_job_percentage: f64,
    },
    Accurate,
    Eager,
}

/// The triggers combined: whether to create Jobs, the Jobs wanted (`scale_to`) and the
/// most this poll may ask for (`max_scale`, never above the effective maxReplicaCount).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub active: bool,
    pub scale_to: i64,
    pub max_scale: i64,
}

/// The effective maxReplicaCount: KEDA counts maxReplicaCount on top of minReplicaCount.
pub fn effective_max_replicas(min: i64, max: i64) -> i64 {
    max - min
}

/// Jobs one trigger asks for: `ceil(queue_length / target)`, capped at `max_replicas`.
/// A zero target asks for none (KEDA skips the division).
pub fn trigger_jobs(load: &TriggerLoad, max_replicas: i64) -> f64 {
    if load.target > 0.0 && load.queue_length.is_finite() {
        (load.queue_length / load.target)
            .ceil()
            .min(max_replicas as f64)
            .max(0.0)
    } else {
        0.0
    }
}

/// Combines the triggers with `multipleScalersCalculation`. Only active triggers count;
/// a minReplicaCount above zero keeps the ScaledJob active.
pub fn combine(loads: &[TriggerLoad], calc: Calculation, min: i64, max_replicas: i64) -> Load {
    let mut queue = 0.0_f64;
    let mut jobs = 0.0_f64;
    let mut active = false;
    let active_loads = loads.iter().filter(|l| l.active);
    match calc {
        Calculation::Max => {
            for l in active_loads {
                if l.queue_length > queue {
                    queue = l.queue_length;
                    jobs = trigger_jobs(l, max_replicas);
                    active = true;
                }
            }
        }
        Calculation::Min => {
            for l in active_loads {
                if queue == 0.0 || l.queue_length < queue {
                    queue = l.queue_length;
                    jobs = trigger_jobs(l, max_replicas);
                    active = true;
                }
            }
        }
        Calculation::Avg | Calculation::Sum => {
            let mut n = 0.0;
            for l in active_loads {
                queue += l.queue_length;
                jobs += trigger_jobs(l, max_replicas);
                active = true;
                n += 1.0;
            }
            if calc == Calculation::Avg && n > 0.0 {
                queue /= n;
                jobs /= n;
            }
        }
    }
    if min > 0 {
        active = true;
    }
    Load {
        active,
        scale_to: ceil_i64(queue),
        max_scale: ceil_i64(jobs.min(max_replicas as f64)),
    }
}

fn ceil_i64(x: f64) -> i64 {
    if x.is_finite() {
        // Saturating: `as` clamps to i64's range.
        x.ceil() as i64
    } else {
        0
    }
}

/// Jobs of this ScaledJob that have not finished, and those among them whose pods have
/// not started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub running: i64,
    pub pending: i64,
}

/// How many Jobs to create now.
pub fn jobs_to_create(
    load: Load,
    counts: JobCounts,
    strategy: Strategy,
    min: i64,
    max_replicas: i64,
) -> i64 {
    let (effective_max, scale_to) = if counts.running < min {
        // Below minReplicaCount: top up to it whatever the triggers say.
        let missing = min - counts.running;
        (missing, missing)
    } else {
        effective_max_scale(
            strategy,
            load.max_scale,
            counts.running - min,
            counts.pending,
            max_replicas,
            load.scale_to,
        )
    };
    if !load.active && counts.running >= min {
        return 0;
    }
    scale_to.min(effective_max).max(0)
}

/// Each strategy's ceiling on new Jobs, and the Jobs it wants (eager wants the maximum).
pub fn effective_max_scale(
    strategy: Strategy,
    max_scale: i64,
    running: i64,
    pending: i64,
    max_replicas: i64,
    scale_to: i64,
) -> (i64, i64) {
    match strategy {
        Strategy::Default => (max_scale - running, scale_to),
        Strategy::Custom {
            queue_length_deduction,
            running_job_percentage,
        } => {
            let running_share = (running as f64 * running_job_percentage) as i64;
            (
                (max_scale - queue_length_deduction - running_share).min(max_replicas),
                scale_to,
            )
        }
        Strategy::Accurate => {
            if max_scale + running - pending > max_replicas {
                (max_replicas - running, scale_to)
            } else {
                (max_scale - pending, scale_to)
            }
        }
        Strategy::Eager => (
            (max_replicas - running - pending).min(max_scale),
            max_replicas,
        ),
    }
}

/// A finished Job, for history cleanup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished<T> {
    pub id: T,
    /// Completion (or failure) time as a sortable key; `None` sorts first, as oldest.
    pub finished_at: Option<i64>,
}

/// The finished Jobs beyond `limit`, oldest first: the ones to delete.
pub fn over_history_limit<T: Clone>(finished: &[Finished<T>], limit: i64) -> Vec<T> {
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    if finished.len() <= limit {
        return Vec::new();
    }
    let mut sorted: Vec<&Finished<T>> = finished.iter().collect();
    sorted.sort_by_key(|f| f.finished_at);
    sorted[..finished.len() - limit]
        .iter()
        .map(|f| f.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(queue_length: f64, target: f64, active: bool) -> TriggerLoad {
        TriggerLoad {
            queue_length,
            target,
            active,
        }
    }

    #[test]
    fn one_trigger_asks_for_ceil_of_queue_over_target() {
        assert_eq!(trigger_jobs(&l(5.0, 1.0, true), 100), 5.0);
        assert_eq!(trigger_jobs(&l(5.0, 2.0, true), 100), 3.0);
        assert_eq!(trigger_jobs(&l(5.0, 1.0, true), 3), 3.0);
        assert_eq!(trigger_jobs(&l(5.0, 0.0, true), 3), 0.0);
        assert_eq!(trigger_jobs(&l(f64::NAN, 1.0, true), 3), 0.0);
    }

    #[test]
    fn combine_each_calculation() {
        let loads = [l(4.0, 1.0, true), l(10.0, 2.0, true), l(50.0, 1.0, false)];
        let cases = [
            (Calculation::Max, 10, 5),
            (Calculation::Min, 4, 4),
            (Calculation::Sum, 14, 9),
            (Calculation::Avg, 7, 5), // (4+5)/2 = 4.5 → 5
        ];
        for (calc, scale_to, max_scale) in cases {
            let got = combine(&loads, calc, 0, 100);
            assert_eq!(
                got,
                Load {
                    active: true,
                    scale_to,
                    max_scale
                },
                "{calc:?}"
            );
        }
    }

    #[test]
    fn combine_caps_at_max_and_ignores_inactive() {
        let got = combine(&[l(20.0, 1.0, true)], Calculation::Sum, 0, 3);
        assert_eq!(got.max_scale, 3);
        assert_eq!(got.scale_to, 20);
        let idle = combine(&[l(20.0, 1.0, false)], Calculation::Max, 0, 3);
        assert_eq!(
            idle,
            Load {
                active: false,
                scale_to: 0,
                max_scale: 0
            }
        );
        assert!(
            combine(&[], Calculation::Max, 1, 3).active,
            "min > 0 keeps it active"
        );
        assert!(!combine(&[], Calculation::Avg, 0, 3).active);
    }

    fn counts(running: i64, pending: i64) -> JobCounts {
        JobCounts { running, pending }
    }

    fn load(scale_to: i64, max_scale: i64) -> Load {
        Load {
            active: true,
            scale_to,
            max_scale,
        }
    }

    #[test]
    fn default_strategy_subtracts_running_jobs() {
        // 5 messages, maxReplicaCount 3: 3 Jobs, then none while they run, then 3 again.
        let s = Strategy::Default;
        assert_eq!(jobs_to_create(load(5, 3), counts(0, 0), s, 0, 3), 3);
        assert_eq!(jobs_to_create(load(5, 3), counts(3, 3), s, 0, 3), 0);
        assert_eq!(jobs_to_create(load(5, 3), counts(1, 0), s, 0, 3), 2);
        assert_eq!(
            jobs_to_create(load(2, 2), counts(5, 0), s, 0, 3),
            0,
            "never negative"
        );
    }

    #[test]
    fn inactive_creates_nothing_above_min() {
        let idle = Load {
            active: false,
            scale_to: 0,
            max_scale: 0,
        };
        assert_eq!(
            jobs_to_create(idle, counts(0, 0), Strategy::Default, 0, 3),
            0
        );
        assert_eq!(jobs_to_create(idle, counts(0, 0), Strategy::Eager, 0, 3), 0);
    }

    #[test]
    fn below_min_tops_up_to_min() {
        // minReplicaCount 2 of max 5 (effective max 3): 2 Jobs with no load.
        let idle = Load {
            active: true,
            scale_to: 0,
            max_scale: 0,
        };
        assert_eq!(
            jobs_to_create(idle, counts(0, 0), Strategy::Default, 2, 3),
            2
        );
        assert_eq!(
            jobs_to_create(idle, counts(1, 1), Strategy::Default, 2, 3),
            1
        );
        assert_eq!(
            jobs_to_create(idle, counts(2, 0), Strategy::Default, 2, 3),
            0
        );
        // At min, load counts the Jobs above min as running.
        assert_eq!(
            jobs_to_create(load(3, 3), counts(2, 0), Strategy::Default, 2, 3),
            3
        );
    }

    #[test]
    fn custom_strategy_deducts_queue_and_a_share_of_running() {
        let s = Strategy::Custom {
            queue_length_deduction: 1,
            running_job_percentage: 0.5,
        };
        // 10 - 1 - 4*0.5 = 7
        assert_eq!(effective_max_scale(s, 10, 4, 0, 100, 10), (7, 10));
        // capped by maxReplicaCount
        assert_eq!(effective_max_scale(s, 10, 0, 0, 5, 10), (5, 10));
        // the share truncates, as KEDA's int64 conversion does: 3 * 0.5 = 1.5 → 1
        assert_eq!(effective_max_scale(s, 10, 3, 0, 100, 10).0, 8);
        assert_eq!(jobs_to_create(load(10, 10), counts(4, 0), s, 0, 100), 7);
    }

    #[test]
    fn accurate_strategy_counts_pending_jobs() {
        let s = Strategy::Accurate;
        // Room left: new messages minus Jobs still waiting for a pod.
        assert_eq!(effective_max_scale(s, 2, 2, 2, 10, 2), (0, 2));
        assert_eq!(effective_max_scale(s, 5, 2, 1, 10, 5), (4, 5));
        // Would pass the max: fill to it.
        assert_eq!(effective_max_scale(s, 8, 5, 0, 10, 8), (5, 8));
        assert_eq!(jobs_to_create(load(2, 2), counts(2, 2), s, 0, 10), 0);
    }

    #[test]
    fn eager_strategy_fills_up_to_max() {
        let s = Strategy::Eager;
        assert_eq!(effective_max_scale(s, 3, 0, 0, 10, 3), (3, 10));
        assert_eq!(effective_max_scale(s, 10, 4, 2, 10, 10), (4, 10));
        assert_eq!(jobs_to_create(load(3, 3), counts(0, 0), s, 0, 10), 3);
        assert_eq!(jobs_to_create(load(10, 10), counts(8, 2), s, 0, 10), 0);
    }

    #[test]
    fn history_keeps_the_newest() {
        let f = |id: &'static str, at: Option<i64>| Finished {
            id,
            finished_at: at,
        };
        let jobs = [
            f("c", Some(30)),
            f("a", Some(10)),
            f("b", Some(20)),
            f("x", None),
        ];
        assert_eq!(over_history_limit(&jobs, 2), vec!["x", "a"]);
        assert_eq!(over_history_limit(&jobs, 4), Vec::<&str>::new());
        assert_eq!(over_history_limit(&jobs, 0), vec!["x", "a", "b", "c"]);
        assert_eq!(over_history_limit(&jobs, -1), vec!["x", "a", "b", "c"]);
    }
}
