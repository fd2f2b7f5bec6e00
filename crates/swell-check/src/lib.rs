//! Swell's checks: pure checks of one object (`check`), the cluster reads that complete them
//! (`check_cluster`), and YAML manifests parsed and checked as `swell check` and the admission
//! webhook see them (`manifest`). Above the controller: the reconciler never calls a check.

pub mod check;
pub mod check_cluster;
pub mod manifest;
