//! Swell's controllers. I/O lives here; decisions come from `swell-scaling`.

pub mod auth;
pub mod check;
pub mod check_cluster;
pub mod context;
pub mod hpa;
pub mod manifest;
pub mod metric_source;
pub mod metrics;
pub mod run;
pub mod scale_loop;
pub mod scaledobject;
pub mod target;
