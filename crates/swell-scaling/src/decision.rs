//! What the scale loop does with the target after one poll, following KEDA's executor
//! (`RequestScale`): Swell moves the target between zero (or idle) and the minimum itself;
//! between the minimum and the maximum the HPA decides.

use jiff::{SignedDuration, Timestamp};

/// Replica bounds from the ScaledObject spec, defaults already applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replicas {
    pub min: i32,
    pub max: i32,
    pub idle: Option<i32>,
}

impl Replicas {
    /// The HPA cannot go below 1; KEDA gives it max(min, 1).
    pub fn hpa_min(&self) -> i32 {
        self.min.max(1)
    }

    /// Where activation takes a target that is at zero or idle.
    pub fn activation_target(&self) -> i32 {
        self.min.max(1)
    }

    /// Where deactivation takes a target: idle replicas if set, else zero.
    pub fn deactivation_target(&self) -> i32 {
        self.idle.unwrap_or(0)
    }
}

/// The facts one poll gathered.
#[derive(Clone, Debug)]
pub struct LoopFacts {
    pub current: i32,
    pub replicas: Replicas,
    /// At least one trigger is active (a trigger in fallback counts as active).
    pub active: bool,
    /// At least one trigger failed and is not covered by fallback.
    pub error: bool,
    /// A fallback is configured with a non-zero replica count.
    pub fallback_configured: bool,
    pub last_active: Option<Timestamp>,
    pub created: Timestamp,
    pub cooldown: SignedDuration,
    pub initial_cooldown: SignedDuration,
    pub now: Timestamp,
    /// `autoscaling.keda.sh/paused-scale-in` / `paused-scale-out`: the loop neither
    /// deactivates nor activates in that direction (the HPA's is disabled too).
    pub paused: DirectionPause,
}

/// Which directions of scaling the annotations pause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionPause {
    pub scale_in: bool,
    pub scale_out: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// Active while at zero (or idle): scale to this many and record activity.
    Activate { to: i32 },
    /// Active and running: the HPA owns the count; only record activity.
    KeepActive,
    /// Inactive and the cooldown has elapsed: scale down to zero or idle.
    Deactivate { to: i32 },
    /// Inactive but still cooling down.
    CoolingDown,
    /// Inactive below the minimum without idle mode: raise to the minimum.
    RaiseToMin { to: i32 },
    /// A trigger failed: hold the current count (fallback, if any, acts through the HPA).
    HoldOnError,
    /// Active at zero (or idle), but `paused-scale-out` holds it there.
    ScaleOutPaused,
    /// Inactive above zero (or idle), but `paused-scale-in` holds it there; as KEDA, the
    /// cooldown is not consulted.
    ScaleInPaused,
    /// Nothing to do.
    Idle,
}

pub fn decide(f: &LoopFacts) -> Decision {
    let r = f.replicas;
    if f.active {
        let below_min_in_idle_mode = r.idle.is_some() && f.current < r.min;
        if f.current == 0 || below_min_in_idle_mode {
            if f.paused.scale_out {
                return Decision::ScaleOutPaused;
            }
            return Decision::Activate {
                to: r.activation_target(),
            };
        }
        return Decision::KeepActive;
    }
    // An error never takes a workload down: hold what is running.
    if f.error {
        return Decision::HoldOnError;
    }
    let above_idle = r.idle.is_some_and(|idle| f.current > idle);
    if above_idle || (f.current > 0 && r.min == 0) {
        return if f.paused.scale_in {
            Decision::ScaleInPaused
        } else if cooldown_elapsed(f) {
            Decision::Deactivate {
                to: r.deactivation_target(),
            }
        } else {
            Decision::CoolingDown
        };
    }
    if r.idle.is_none() && f.current < r.min {
        return Decision::RaiseToMin { to: r.min };
    }
    Decision::Idle
}

/// KEDA measures the cooldown from the last activity, or, before any activity, from the
/// object's creation plus `initialCooldownPeriod`.
pub fn cooldown_elapsed(f: &LoopFacts) -> bool {
    cooldown_ends(f) < f.now
}

/// When the cooldown ends: the loop may deactivate strictly after it.
pub fn cooldown_ends(f: &LoopFacts) -> Timestamp {
    match f.last_active {
        Some(last) => last + f.cooldown,
        None => f.created + f.initial_cooldown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn facts(current: i32, min: i32, idle: Option<i32>, active: bool) -> LoopFacts {
        LoopFacts {
            current,
            replicas: Replicas { min, max: 10, idle },
            active,
            error: false,
            fallback_configured: false,
            last_active: Some(ts(0)),
            created: ts(-1000),
            cooldown: SignedDuration::from_secs(300),
            initial_cooldown: SignedDuration::ZERO,
            now: ts(10),
            paused: DirectionPause::default(),
        }
    }

    #[test]
    fn direction_pauses_hold_the_loop_as_keda() {
        let pause = |scale_in, scale_out| DirectionPause {
            scale_in,
            scale_out,
        };
        let cases = [
            // (current, min, idle, active, pause, want)
            (
                0,
                0,
                None,
                true,
                pause(false, true),
                Decision::ScaleOutPaused,
            ),
            (
                1,
                3,
                Some(1),
                true,
                pause(false, true),
                Decision::ScaleOutPaused,
            ),
            (
                0,
                0,
                None,
                true,
                pause(true, false),
                Decision::Activate { to: 1 },
            ),
            (2, 0, None, true, pause(false, true), Decision::KeepActive),
            (
                2,
                0,
                None,
                false,
                pause(true, false),
                Decision::ScaleInPaused,
            ),
            (
                3,
                3,
                Some(1),
                false,
                pause(true, false),
                Decision::ScaleInPaused,
            ),
            (
                2,
                0,
                None,
                false,
                pause(false, true),
                Decision::Deactivate { to: 0 },
            ),
            // KEDA raises to the minimum whatever the pauses say.
            (
                0,
                2,
                None,
                false,
                pause(true, true),
                Decision::RaiseToMin { to: 2 },
            ),
        ];
        for (current, min, idle, active, paused, want) in cases {
            let mut f = facts(current, min, idle, active);
            f.now = ts(100_000);
            f.paused = paused;
            assert_eq!(
                decide(&f),
                want,
                "{current} {min} {idle:?} {active} {paused:?}"
            );
        }
    }

    #[test]
    fn activation_from_zero_goes_to_max_of_min_and_one() {
        assert_eq!(
            decide(&facts(0, 0, None, true)),
            Decision::Activate { to: 1 }
        );
        assert_eq!(
            decide(&facts(0, 3, None, true)),
            Decision::Activate { to: 3 }
        );
    }

    #[test]
    fn active_and_running_leaves_the_count_to_the_hpa() {
        assert_eq!(decide(&facts(4, 0, None, true)), Decision::KeepActive);
        assert_eq!(decide(&facts(1, 1, None, true)), Decision::KeepActive);
    }

    #[test]
    fn idle_mode_activates_from_idle_to_min() {
        assert_eq!(
            decide(&facts(1, 3, Some(1), true)),
            Decision::Activate { to: 3 }
        );
        assert_eq!(decide(&facts(3, 3, Some(1), true)), Decision::KeepActive);
    }

    #[test]
    fn deactivation_waits_for_cooldown() {
        assert_eq!(decide(&facts(2, 0, None, false)), Decision::CoolingDown);
        let mut f = facts(2, 0, None, false);
        f.now = ts(301);
        assert_eq!(decide(&f), Decision::Deactivate { to: 0 });
        // exactly at the boundary KEDA still waits (strictly after)
        f.now = ts(300);
        assert_eq!(decide(&f), Decision::CoolingDown);
    }

    #[test]
    fn deactivation_goes_to_idle_when_set() {
        let mut f = facts(3, 3, Some(1), false);
        f.now = ts(1000);
        assert_eq!(decide(&f), Decision::Deactivate { to: 1 });
        // at idle already: nothing to do
        let mut f = facts(1, 3, Some(1), false);
        f.now = ts(1000);
        assert_eq!(decide(&f), Decision::Idle);
    }

    #[test]
    fn never_active_uses_initial_cooldown_from_creation() {
        let mut f = facts(2, 0, None, false);
        f.last_active = None;
        f.created = ts(0);
        f.initial_cooldown = SignedDuration::from_secs(60);
        f.now = ts(30);
        assert_eq!(decide(&f), Decision::CoolingDown);
        f.now = ts(61);
        assert_eq!(decide(&f), Decision::Deactivate { to: 0 });
        // without an initial cooldown a never-active target scales down at once
        f.initial_cooldown = SignedDuration::ZERO;
        f.now = ts(1);
        assert_eq!(decide(&f), Decision::Deactivate { to: 0 });
    }

    #[test]
    fn errors_hold_current_replicas() {
        let mut f = facts(3, 0, None, false);
        f.error = true;
        f.now = ts(100_000);
        assert_eq!(decide(&f), Decision::HoldOnError);
        f.fallback_configured = true;
        assert_eq!(decide(&f), Decision::HoldOnError);
    }

    #[test]
    fn below_min_without_idle_is_raised() {
        assert_eq!(
            decide(&facts(0, 2, None, false)),
            Decision::RaiseToMin { to: 2 }
        );
        assert_eq!(decide(&facts(2, 2, None, false)), Decision::Idle);
        assert_eq!(decide(&facts(0, 0, None, false)), Decision::Idle);
    }

    #[test]
    fn hpa_min_is_at_least_one() {
        let r = Replicas {
            min: 0,
            max: 5,
            idle: None,
        };
        assert_eq!(r.hpa_min(), 1);
        assert_eq!(
            Replicas {
                min: 4,
                max: 5,
                idle: None
            }
            .hpa_min(),
            4
        );
    }
}
