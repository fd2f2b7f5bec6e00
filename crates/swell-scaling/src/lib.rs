//! Scaling decisions as pure functions, tested without an API server.
//!
//! The operator gathers facts (current replicas, trigger activity and errors, the spec, the
//! clock), asks this crate what to do, and performs the answer. Nothing here does I/O.

pub mod decision;
pub mod explain;
pub mod fallback;
pub mod jobs;
pub mod naming;
pub mod quantity;

pub use decision::{Decision, DirectionPause, LoopFacts, Replicas, decide};
pub use fallback::{FallbackBehavior, Health, HealthState};
