//! `cpu` and `memory`: resource metrics the HPA reads from the metrics server; Swell only
//! writes them into the HPA.

use crate::{Field, MetricSpec, MetricType, Params, Sample, Scaler, ScalerError, TriggerInput};

const VALUE: Field =
    Field::new("value").hint("a percentage for Utilization, a quantity for AverageValue");
const TYPE: Field = Field::new("type").deprecated("use the trigger's metricType instead");
const CONTAINER: Field = Field::new("containerName");

pub struct ResourceScaler {
    resource: &'static str,
    metric_type: MetricType,
    value: String,
    container: Option<String>,
}

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[VALUE, TYPE, CONTAINER];

impl ResourceScaler {
    pub fn new(input: &TriggerInput) -> Result<ResourceScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let scaler = parse(input, &mut p);
        p.finish()?;
        Ok(scaler)
    }

    pub fn container(&self) -> Option<&str> {
        self.container.as_deref()
    }
}

/// Reads and checks the trigger's parameters; every problem goes into `p`.
pub fn parse(input: &TriggerInput, p: &mut Params<'_>) -> ResourceScaler {
    let resource = if input.type_ == "cpu" {
        "cpu"
    } else {
        "memory"
    };
    // KEDA: the deprecated metadata `type` overrides metricType; one of them is required.
    let metric_type = match p.opt_string(TYPE).as_deref() {
        Some("Utilization") => Some(MetricType::Utilization),
        Some("AverageValue") => Some(MetricType::AverageValue),
        Some(other) => {
            p.error(
                "type",
                format!("{other:?} is not Utilization or AverageValue"),
            );
            Some(MetricType::Utilization)
        }
        None => input.metric_type,
    };
    let metric_type = match metric_type {
        Some(t @ (MetricType::Utilization | MetricType::AverageValue)) => t,
        Some(MetricType::Value) | None => {
            p.trigger_error(
                "metricType",
                "cpu and memory triggers need metricType set to Utilization or AverageValue; set it on the trigger",
            );
            MetricType::Utilization
        }
    };
    let value = p.string(VALUE);
    // The HPA refuses a utilization below 1 and an average value that is not a positive
    // quantity, so KEDA's HPA for them is never created.
    let shown = crate::metadata::shown(&value);
    if value.is_empty() {
    } else if metric_type == MetricType::Utilization {
        if !value.trim().parse::<i32>().is_ok_and(|v| v >= 1) {
            p.error(
                "value",
                format!("{shown} is not a whole percentage of 1 or more (e.g. \"60\")"),
            );
        }
    } else if !swell_scaling::quantity::parse_quantity(&value)
        .is_some_and(|q| q.is_finite() && q > 0.0)
    {
        p.error(
            "value",
            format!("{shown} is not a positive quantity (e.g. \"500m\" or \"256Mi\")"),
        );
    }
    let container = p.opt_string(CONTAINER);
    ResourceScaler {
        resource,
        metric_type,
        value,
        container,
    }
}

#[async_trait::async_trait]
impl Scaler for ResourceScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::Resource {
            resource: self.resource.to_string(),
            metric_type: self.metric_type,
            target: self.value.clone(),
            container: self.container.clone(),
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        Err(ScalerError::NotPolled(self.resource))
    }

    fn polled(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawParams, map};

    fn input(t: &str, meta: &[(&str, &str)], mt: Option<MetricType>) -> TriggerInput {
        TriggerInput {
            type_: t.into(),
            metric_type: mt,
            params: RawParams {
                metadata: map(meta),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn metric_type_from_trigger() {
        let s = ResourceScaler::new(&input(
            "cpu",
            &[("value", "60")],
            Some(MetricType::Utilization),
        ))
        .unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::Resource {
                resource: "cpu".into(),
                metric_type: MetricType::Utilization,
                target: "60".into(),
                container: None
            }
        );
        assert!(!s.polled());
    }

    #[test]
    fn legacy_type_and_container() {
        let s = ResourceScaler::new(&input(
            "memory",
            &[
                ("value", "512Mi"),
                ("type", "AverageValue"),
                ("containerName", "app"),
            ],
            None,
        ))
        .unwrap();
        assert_eq!(s.container(), Some("app"));
        assert_eq!(
            s.metric_spec(),
            MetricSpec::Resource {
                resource: "memory".into(),
                metric_type: MetricType::AverageValue,
                target: "512Mi".into(),
                container: Some("app".into())
            }
        );
    }

    #[test]
    fn rejects_bad_values() {
        let err = |t, m: &[(&str, &str)], mt| {
            ResourceScaler::new(&input(t, m, mt))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = err("cpu", &[], Some(MetricType::Utilization));
        assert!(e.contains("triggers[0].metadata.value: required"), "{e}");
        let e = err("cpu", &[("value", "lots")], Some(MetricType::Utilization));
        assert!(e.contains("not a whole percentage"), "{e}");
        let e = err("cpu", &[("value", "1")], Some(MetricType::Value));
        assert!(
            e.contains("metricType set to Utilization or AverageValue"),
            "{e}"
        );
        let e = err("memory", &[("value", "60")], None);
        assert!(
            e.contains("metricType set to Utilization or AverageValue"),
            "{e}"
        );
        let e = err("cpu", &[("value", "60"), ("type", "Percent")], None);
        assert!(
            e.contains("\"Percent\" is not Utilization or AverageValue"),
            "{e}"
        );
    }
}
