//! `spec.advanced.scalingModifiers`: KEDA's composite scaler. The formula combines the named
//! triggers' values into one metric, `composite-metric`, which the HPA scales on (instead of
//! the triggers' own metrics) and the scale loop activates by. No client required: compiled
//! once per generation, then evaluated over readings fetched elsewhere, as KEDA's
//! `pkg/scaling/modifiers/formula.go` and `pkg/fallback/fallback.go` evaluate it.

use swell_api::formula::{self, EvalError, Formula, FormulaError};
use swell_api::{FallbackBehavior, ScaledObject};
use swell_scalers::MetricSpec;
use swell_scaling::fallback::{fallback_metric_value, fallback_replicas};

use crate::metric_source::scaling_behavior;

pub use swell_api::defaults::COMPOSITE_METRIC_NAME;

/// A ScaledObject's compiled scalingModifiers.
#[derive(Debug)]
pub struct Composite {
    formula: Formula,
    /// The metric of the trigger each formula variable names, in [`Formula::variables`] order.
    inputs: Vec<String>,
    pub target: f64,
    pub activation: f64,
}

/// One trigger's part in an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Value(f64),
    /// Failed past the fallback's failureThreshold under `behavior: scalingModifiers`: nil
    /// in the formula, so `a ?? b` picks the alternative.
    Nil,
    /// Failed past failureThreshold under another behavior: the composite is this value.
    Fallback(f64),
    /// Failed and not (yet) in fallback: the composite has no value.
    Failed(String),
}

/// The fallback, as it applies to the composite metric.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositeFallback {
    pub failure_threshold: i32,
    pub behavior: FallbackBehavior,
    /// `target × replicas` for `behavior`: the composite while a trigger is in fallback.
    pub value: f64,
    /// `target × fallback.replicas`: the composite when the formula gives nil.
    pub nil_value: f64,
}

/// Why there is no composite value; `Sources` is also a KEDAMetricSourceFailed event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompositeError {
    #[error("{COMPOSITE_METRIC_NAME}: a trigger of the formula failed: {0}")]
    Sources(String),
    #[error("{COMPOSITE_METRIC_NAME}: spec.advanced.scalingModifiers.formula failed: {0}")]
    Formula(#[from] EvalError),
    #[error(
        "{COMPOSITE_METRIC_NAME}: spec.advanced.scalingModifiers.formula gave nil and spec.fallback \
         is not set; end the `??` chain with a number (e.g. `a ?? 0`) or set spec.fallback"
    )]
    Nil,
    #[error(
        "{COMPOSITE_METRIC_NAME}: spec.advanced.scalingModifiers.formula gave {0}, not a number"
    )]
    NotFinite(f64),
}

impl CompositeError {
    /// A low-cardinality label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            CompositeError::Sources(_) => "source",
            CompositeError::Formula(_) | CompositeError::Nil | CompositeError::NotFinite(_) => {
                "formula"
            }
        }
    }
}

impl Composite {
    /// The composite of `so` over its built triggers (`(index in spec.triggers, metric)`):
    /// `None` without a formula. KEDA exposes only named, non-resource triggers to the
    /// formula, as admission checked.
    pub fn new<'a>(
        so: &ScaledObject,
        triggers: impl IntoIterator<Item = (usize, &'a MetricSpec)>,
    ) -> Result<Option<Composite>, FormulaError> {
        let Some(modifiers) = so.spec.scaling_modifiers() else {
            return Ok(None);
        };
        let Some(src) = modifiers
            .formula
            .as_deref()
            .filter(|f| !f.trim().is_empty())
        else {
            return Ok(None);
        };
        let named: Vec<(&str, &str)> = triggers
            .into_iter()
            .filter(|(_, spec)| matches!(spec, MetricSpec::External { .. }))
            .filter_map(|(index, spec)| Some((so.spec.triggers.get(index)?.name()?, spec.name())))
            .collect();
        let names: Vec<&str> = named.iter().map(|(n, _)| *n).collect();
        let formula = formula::compile(src, &names)?;
        Ok(Some(Composite {
            formula,
            inputs: named.iter().map(|(_, m)| (*m).to_owned()).collect(),
            target: modifiers.target_value().unwrap_or(0.0),
            activation: modifiers.activation_value(),
        }))
    }

    /// The composite value over this read of the triggers (`(metric, source)` for each one
    /// read), as KEDA's `GetScaledObjectMetrics` and `HandleScalingModifiers`: any failure
    /// not in fallback fails it; a trigger in (non-scalingModifiers) fallback makes it the
    /// fallback value; otherwise the formula runs, a nil result taking `fallback.nil_value`.
    pub fn evaluate(
        &self,
        sources: &[(&str, Source)],
        fallback: Option<&CompositeFallback>,
    ) -> Result<f64, CompositeError> {
        let failed: Vec<&str> = sources
            .iter()
            .filter_map(|(_, s)| match s {
                Source::Failed(m) => Some(m.as_str()),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            return Err(CompositeError::Sources(failed.join("; ")));
        }
        if let Some(v) = sources.iter().find_map(|(_, s)| match s {
            Source::Fallback(v) => Some(*v),
            _ => None,
        }) {
            return Ok(v);
        }
        let values: Vec<Option<f64>> = self
            .inputs
            .iter()
            .map(|metric| {
                sources
                    .iter()
                    .find(|(m, _)| m == metric)
                    .and_then(|(_, s)| match s {
                        Source::Value(v) => Some(*v),
                        _ => None,
                    })
            })
            .collect();
        let value = match self.formula.eval(&values)? {
            Some(v) => v,
            None => fallback.map(|f| f.nil_value).ok_or(CompositeError::Nil)?,
        };
        if !value.is_finite() {
            return Err(CompositeError::NotFinite(value));
        }
        // KEDA keeps milli precision (`Value.SetMilli(int64(out * 1000))`).
        Ok((value * 1000.0).trunc() / 1000.0)
    }

    /// KEDA's activation with a formula: the composite above `activationTarget` (default 0).
    pub fn active(&self, value: f64) -> bool {
        value > self.activation
    }
}

/// What the fallback of `so` makes of the composite, with `current` replicas of its
/// target; `None` without a fallback (`replicas: 0` means none, as for other metrics).
pub fn composite_fallback(
    so: &ScaledObject,
    composite: &Composite,
    current: i32,
) -> Option<CompositeFallback> {
    let f = so.spec.fallback.as_ref().filter(|f| f.replicas != 0)?;
    let behavior = f.behavior();
    let replicas = fallback_replicas(scaling_behavior(behavior), f.replicas, current);
    Some(CompositeFallback {
        failure_threshold: f.failure_threshold,
        behavior,
        // Fallback with a formula needs an AverageValue composite (admission), so no division
        // by ready pods here.
        value: fallback_metric_value(composite.target, replicas, None),
        nil_value: composite.target * f64::from(f.replicas),
    })
}

/// What one trigger reading becomes: a value (clamped as KEDA's `GenerateMetricInMili`
/// clamps what scalers report), or, for a failure that makes `failures` in a row, nil, the
/// fallback value or a failure.
pub fn source<E: std::fmt::Display>(
    metric: &str,
    reading: Result<f64, E>,
    failures: i32,
    fallback: Option<&CompositeFallback>,
) -> Source {
    match reading {
        Ok(v) if v.is_finite() && v > 0.0 => Source::Value(v),
        Ok(_) => Source::Value(0.0),
        Err(e) => match fallback.filter(|f| failures > f.failure_threshold) {
            Some(f) if f.behavior == FallbackBehavior::ScalingModifiers => Source::Nil,
            Some(f) => Source::Fallback(f.value),
            None => Source::Failed(format!("{metric}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests;
