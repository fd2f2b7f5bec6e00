//! KEDA's metric names: `s<trigger index>-<scaler-specific name>`, normalised so that the
//! external metrics API path stays valid.

/// KEDA's `NormalizeString`: `/ . : % ( )` become `-`.
pub fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '/' | '.' | ':' | '%' | '(' | ')') {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// `s<index>-<normalised name>`.
pub fn metric_name(trigger_index: usize, name: &str) -> String {
    format!("s{trigger_index}-{}", normalize(name))
}

/// The HPA's name for a ScaledObject unless `advanced.horizontalPodAutoscalerConfig.name` is set.
pub fn hpa_name(scaled_object: &str) -> String {
    format!("keda-hpa-{scaled_object}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_keda() {
        assert_eq!(
            metric_name(0, "aws-sqs-orders.fifo"),
            "s0-aws-sqs-orders-fifo"
        );
        assert_eq!(
            metric_name(2, "cron-Etc/UTC-0 * * * *"),
            "s2-cron-Etc-UTC-0 * * * *"
        );
        assert_eq!(normalize("a:b%c(d)"), "a-b-c-d-");
        assert_eq!(hpa_name("demo"), "keda-hpa-demo");
    }
}
