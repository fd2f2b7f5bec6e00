//! `cron`: scale to `desiredReplicas` between a start and an end schedule in a time zone.

use std::str::FromStr as _;

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use swell_scaling::naming::{metric_name, normalize};

use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, TriggerInput};

const TIMEZONE: Field = Field::new("timezone").hint("an IANA name such as Europe/Paris");
const START: Field = Field::new("start").hint("a 5-field cron expression such as \"0 8 * * *\"");
const END: Field = Field::new("end").hint("a 5-field cron expression such as \"0 18 * * *\"");
const DESIRED: Field = Field::new("desiredReplicas").hint("a whole number of replicas");

pub struct CronScaler {
    tz: TimeZone,
    start: Cron,
    end: Cron,
    desired: i64,
    metric: String,
    metric_type: crate::MetricType,
}

/// KEDA's `parseCronTimeFormat`, so metric names match KEDA's.
fn compact(expr: &str) -> String {
    expr.replace(' ', "")
        .replace('*', "x")
        .replace('/', "Sl")
        .replace('?', "Qm")
        .replace(',', "Cm")
}

fn parse_cron(p: &mut Params<'_>, field: Field, expr: &str) -> Option<Cron> {
    if expr.is_empty() {
        return None;
    }
    if expr.split_whitespace().count() != 5 {
        p.error(
            field.name,
            format!("{expr:?} must have 5 fields (minute hour day month weekday)"),
        );
        return None;
    }
    match Cron::from_str(expr) {
        Ok(c) => Some(c),
        Err(e) => {
            p.error(
                field.name,
                format!("{expr:?} is not a valid cron expression: {e}"),
            );
            None
        }
    }
}

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[TIMEZONE, START, END, DESIRED];

/// The parsed trigger; `None` parts were reported to the [`Params`].
pub struct Config {
    tz_name: String,
    tz: Option<TimeZone>,
    start_s: String,
    end_s: String,
    start: Option<Cron>,
    end: Option<Cron>,
    desired: i64,
}

/// Reads and checks the trigger's parameters; every problem goes into `p`.
pub fn parse(p: &mut Params<'_>) -> Config {
    let tz_name = p.string(TIMEZONE);
    let tz = if tz_name.is_empty() {
        None
    } else {
        match TimeZone::get(&tz_name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                p.error(
                    "timezone",
                    format!("{tz_name:?} is not a known IANA time zone"),
                );
                None
            }
        }
    };
    let start_s = p.string(START);
    let end_s = p.string(END);
    let start = parse_cron(p, START, &start_s);
    let end = parse_cron(p, END, &end_s);
    if !start_s.is_empty() && start_s == end_s {
        p.error("end", "start and end must differ");
    }
    let desired: i64 = p.required(DESIRED, "a whole number");
    if desired < 0 {
        p.error("desiredReplicas", "must not be negative");
    }
    Config {
        tz_name,
        tz,
        start_s,
        end_s,
        start,
        end,
        desired,
    }
}

impl CronScaler {
    pub fn new(input: &TriggerInput) -> Result<CronScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let Config {
            tz_name,
            tz,
            start_s,
            end_s,
            start,
            end,
            desired,
        } = parse(&mut p);
        p.finish()?;
        let (Some(tz), Some(start), Some(end)) = (tz, start, end) else {
            return Err(ScalerError::Internal("cron metadata incomplete".into()));
        };
        let metric = metric_name(
            input.index,
            &normalize(&format!(
                "cron-{tz_name}-{}-{}",
                compact(&start_s),
                compact(&end_s)
            )),
        );
        Ok(CronScaler {
            tz,
            start,
            end,
            desired,
            metric,
            metric_type: input.metric_type.unwrap_or_default(),
        })
    }

    /// Active unless the next start comes before the next end (KEDA's `isWithinInterval`),
    /// i.e. inside a window. The value is `desiredReplicas` inside and 0 outside, as KEDA's.
    pub fn evaluate(&self, now: Timestamp) -> Result<Sample, ScalerError> {
        let now = Zoned::new(now, self.tz.clone());
        let next = |c: &Cron| {
            c.find_next_occurrence(&now, false)
                .map_err(|e| ScalerError::Internal(format!("cron: no next occurrence: {e}")))
        };
        let (start, end) = (next(&self.start)?, next(&self.end)?);
        let active = start >= end;
        Ok(Sample {
            value: if active { self.desired as f64 } else { 0.0 },
            active,
        })
    }
}

#[async_trait::async_trait]
impl Scaler for CronScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: 1.0,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.evaluate(Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawParams, map};

    fn scaler(meta: &[(&str, &str)]) -> Result<CronScaler, ScalerError> {
        CronScaler::new(&TriggerInput {
            index: 1,
            type_: "cron".into(),
            params: RawParams {
                trigger_index: 1,
                metadata: map(meta),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn active_inside_the_window_in_its_time_zone() {
        let s = scaler(&[
            ("timezone", "Asia/Kolkata"),
            ("start", "30 * * * *"),
            ("end", "45 * * * *"),
            ("desiredReplicas", "10"),
        ])
        .unwrap();
        assert_eq!(
            s.evaluate(at("2026-01-01T10:05:00Z")).unwrap(),
            Sample {
                value: 10.0,
                active: true
            }
        );
        assert_eq!(
            s.evaluate(at("2026-01-01T10:20:00Z")).unwrap(),
            Sample {
                value: 0.0,
                active: false
            }
        );
        let s = scaler(&[
            ("timezone", "Europe/Paris"),
            ("start", "0 8 * * *"),
            ("end", "0 18 * * *"),
            ("desiredReplicas", "3"),
        ])
        .unwrap();
        assert!(s.evaluate(at("2026-06-01T07:00:00Z")).unwrap().active); // 09:00 in Paris
        assert!(!s.evaluate(at("2026-06-01T17:00:00Z")).unwrap().active); // 19:00 in Paris
    }

    #[test]
    fn metric_name_matches_keda() {
        let s = scaler(&[
            ("timezone", "Etc/UTC"),
            ("start", "*/5 * * * *"),
            ("end", "0 18 * * *"),
            ("desiredReplicas", "2"),
        ])
        .unwrap();
        assert_eq!(s.metric_spec().name(), "s1-cron-Etc-UTC-xSl5xxxx-018xxx");
        // KEDA's parseCronTimeFormat: `,` → Cm, `?` → Qm.
        let s = scaler(&[
            ("timezone", "Europe/Berlin"),
            ("start", "0 8 * * 1,3"),
            ("end", "0 18 ? * *"),
            ("desiredReplicas", "2"),
        ])
        .unwrap();
        assert_eq!(
            s.metric_spec().name(),
            "s1-cron-Europe-Berlin-08xx1Cm3-018Qmxx"
        );
    }

    #[test]
    fn outside_the_window_the_value_is_zero_as_keda() {
        let s = scaler(&[
            ("timezone", "UTC"),
            ("start", "0 8 * * *"),
            ("end", "0 18 * * *"),
            ("desiredReplicas", "4"),
        ])
        .unwrap();
        let inside = s.evaluate(at("2026-06-01T09:00:00Z")).unwrap();
        assert_eq!((inside.active, inside.value), (true, 4.0));
        let outside = s.evaluate(at("2026-06-01T19:00:00Z")).unwrap();
        assert_eq!((outside.active, outside.value), (false, 0.0));
    }

    #[test]
    fn rejects_bad_metadata() {
        let e = scaler(&[
            ("timezone", "Mars/Olympus"),
            ("start", "0 8 * *"),
            ("end", "0 8 * *"),
            ("desiredReplicas", "x"),
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains(
                "triggers[1].metadata.timezone: \"Mars/Olympus\" is not a known IANA time zone"
            ),
            "{e}"
        );
        assert!(
            e.contains("triggers[1].metadata.start: \"0 8 * *\" must have 5 fields"),
            "{e}"
        );
        assert!(e.contains("start and end must differ"), "{e}");
        assert!(
            e.contains("desiredReplicas: \"x\" is not a whole number"),
            "{e}"
        );
        let e = scaler(&[]).err().unwrap().to_string();
        for f in ["timezone", "start", "end", "desiredReplicas"] {
            assert!(e.contains(&format!("metadata.{f}: required")), "{e}");
        }
    }
}
