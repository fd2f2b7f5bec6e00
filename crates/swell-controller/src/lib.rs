//! Swell's controllers. Each runs resolve → plan (pure) → apply → status (pure); the
//! replica and job arithmetic comes from `swell-scaling`.

pub mod auth;
pub mod authentication;
pub mod cloud_events;
pub mod cloudwatch_adapter;
pub mod composite;
pub mod context;
pub mod hpa;
pub mod loop_state;
pub mod loops;
pub mod metric_source;
pub mod metrics;
pub mod recorder;
pub mod run;
pub mod scaled_job;
pub mod scaled_object;
pub mod target;
pub mod triggers;
pub mod watch;

/// A Kubernetes API error as a person reads it: the API server's message and reason,
/// without kube's Debug dump of the whole Status object (it goes to status and events).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} ({}, HTTP {})", s.message, s.reason, s.code)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::kube_message;

    #[test]
    fn api_errors_read_as_the_servers_message() {
        let status = kube::core::Status::failure(
            r#"horizontalpodautoscalers.autoscaling "keda-hpa-app" is forbidden: User "system:serviceaccount:keda:keda-operator" cannot patch resource"#,
            "Forbidden",
        )
        .with_code(403);
        let msg = kube_message(&kube::Error::Api(Box::new(status)));
        assert_eq!(
            msg,
            r#"horizontalpodautoscalers.autoscaling "keda-hpa-app" is forbidden: User "system:serviceaccount:keda:keda-operator" cannot patch resource (Forbidden, HTTP 403)"#
        );
        assert!(!msg.contains("Status {"), "{msg}");
    }
}
