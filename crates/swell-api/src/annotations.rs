//! Annotation and label keys KEDA users already put on their objects, and KEDA's way of reading
//! boolean annotations.

use std::collections::BTreeMap;

/// Pauses scaling entirely (value parsed as a bool; a value that doesn't parse counts as true).
pub const PAUSED: &str = "autoscaling.keda.sh/paused";
/// Pauses scaling and pins the target to this replica count; its presence alone pauses.
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// Blocks scale-in only (HPA `scaleDown.selectPolicy: Disabled`).
pub const PAUSED_SCALE_IN: &str = "autoscaling.keda.sh/paused-scale-in";
/// Blocks scale-out only (HPA `scaleUp.selectPolicy: Disabled`).
pub const PAUSED_SCALE_OUT: &str = "autoscaling.keda.sh/paused-scale-out";
/// Treats every trigger as active.
pub const FORCE_ACTIVATION: &str = "autoscaling.keda.sh/force-activation";
/// Lets a ScaledObject adopt an existing HPA named in `advanced.horizontalPodAutoscalerConfig.name`.
pub const TRANSFER_HPA_OWNERSHIP: &str = "scaledobject.keda.sh/transfer-hpa-ownership";
/// Comma-separated ScaledObject labels not copied onto the HPA.
pub const HPA_EXCLUDED_LABELS: &str = "scaledobject.keda.sh/hpa-excluded-labels";
/// Comma-separated ScaledJob labels not copied onto the Jobs it creates.
pub const JOB_EXCLUDED_LABELS: &str = "scaledjob.keda.sh/job-excluded-labels";
/// On a foreign HPA: `"false"` disables the "workload already has an HPA" check.
pub const VALIDATIONS_HPA_OWNERSHIP: &str = "validations.keda.sh/hpa-ownership";
/// On Jobs created by a ScaledJob: the ScaledJob generation that created them.
pub const SCALED_JOB_GENERATION: &str = "scaledjob.keda.sh/generation";

/// Label keys.
pub mod labels {
    /// On the ScaledObject itself and as the HPA external-metric selector.
    pub const SCALED_OBJECT_NAME: &str = "scaledobject.keda.sh/name";
    /// On Jobs created by a ScaledJob.
    pub const SCALED_JOB_NAME: &str = "scaledjob.keda.sh/name";
}

/// Go's `strconv.ParseBool`, which KEDA uses for annotation values.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Swell's own: `"true"` lands the replicas on exactly `ceil(value / target)`, with no dead
/// band (the HPA's tolerance set to 0 in each direction the ScaledObject's behavior leaves
/// it unset); `"false"` keeps the HPA's ±10%. Unset: the operator's `--exact-targets`.
pub const EXACT_TARGETS: &str = "autoscaling.swell.dev/exact-targets";

/// [`EXACT_TARGETS`] when present: `Some(Ok(b))`, or `Some(Err(raw))` if not a boolean.
pub fn exact_targets(annotations: Option<&BTreeMap<String, String>>) -> Option<Result<bool, &str>> {
    let raw = annotations?.get(EXACT_TARGETS)?;
    Some(parse_go_bool(raw).ok_or(raw.as_str()))
}

/// A boolean annotation read the way KEDA does: absent is false, present but unparseable is true.
pub fn bool_annotation(annotations: Option<&BTreeMap<String, String>>, key: &str) -> bool {
    annotations
        .and_then(|a| a.get(key))
        .is_some_and(|v| parse_go_bool(v).unwrap_or(true))
}

/// `paused-replicas` when present: `Some(Ok(n))`, or `Some(Err(raw))` if it is not an int32
/// of 0 or more (KEDA's `ParseInt` refuses `NaN` or `1.5`; the /scale subresource refuses a
/// negative count).
pub fn paused_replicas(
    annotations: Option<&BTreeMap<String, String>>,
) -> Option<Result<i32, &str>> {
    let raw = annotations?.get(PAUSED_REPLICAS)?;
    Some(
        raw.trim()
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or(raw.as_str()),
    )
}

/// Why a `paused-replicas` value is refused, with the value cut short if it is long.
pub fn paused_replicas_error(raw: &str) -> String {
    let shown: String = raw.chars().take(64).collect();
    let cut = if shown.len() < raw.len() { "…" } else { "" };
    format!("{shown:?}{cut} is not a whole number of replicas (0 or more)")
}

/// The label keys an `…-excluded-labels` annotation (`key`: [`HPA_EXCLUDED_LABELS`],
/// [`JOB_EXCLUDED_LABELS`]) lists, trimmed, empties dropped.
pub fn excluded_labels<'a>(
    annotations: Option<&'a BTreeMap<String, String>>,
    key: &str,
) -> Vec<&'a str> {
    annotations
        .and_then(|a| a.get(key))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bool_annotation_follows_keda() {
        let cases = [
            (None, false),
            (Some("true"), true),
            (Some("True"), true),
            (Some("1"), true),
            (Some("false"), false),
            (Some("0"), false),
            (Some("yes"), true),
            (Some(""), true),
        ];
        for (value, want) in cases {
            let map = value.map(|v| ann(&[(PAUSED, v)]));
            assert_eq!(bool_annotation(map.as_ref(), PAUSED), want, "{value:?}");
        }
    }

    #[test]
    fn paused_replicas_parses() {
        assert_eq!(paused_replicas(None), None);
        let ok = ann(&[(PAUSED_REPLICAS, "3")]);
        assert_eq!(paused_replicas(Some(&ok)), Some(Ok(3)));
        let zero = ann(&[(PAUSED_REPLICAS, "0")]);
        assert_eq!(paused_replicas(Some(&zero)), Some(Ok(0)));
        for raw in ["three", "-5", "NaN", "inf", "1.5", "1e3", "2147483648"] {
            let bad = ann(&[(PAUSED_REPLICAS, raw)]);
            assert_eq!(paused_replicas(Some(&bad)), Some(Err(raw)), "{raw}");
        }
    }

    #[test]
    fn excluded_labels_split() {
        let map = ann(&[(HPA_EXCLUDED_LABELS, " a, b ,,c")]);
        assert_eq!(
            excluded_labels(Some(&map), HPA_EXCLUDED_LABELS),
            vec!["a", "b", "c"]
        );
    }
}
