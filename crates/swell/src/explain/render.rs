//! `swell explain`'s text: the facts, the arithmetic, a sparkline of each trigger's recent
//! values against its target, and the sentence last.

use std::fmt::Write as _;

use swell_scaling::explain::hpa::{HpaFacts, Policy, PolicyKind, Rules, Select, num};
use swell_scaling::explain::{Explanation, Facts, Point};

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// At most this many columns: older samples are averaged together.
const WIDTH: usize = 60;

/// A row of blocks from 0 to the larger of the values and the target; a failed reading is
/// a blank. With the glyph the target's level is drawn in.
pub fn sparkline(values: &[Option<f64>], target: Option<f64>) -> (String, f64, Option<char>) {
    let per = values.len().div_ceil(WIDTH).max(1);
    let columns: Vec<Option<f64>> = values
        .chunks(per)
        .map(|c| {
            let read: Vec<f64> = c.iter().flatten().copied().collect();
            (!read.is_empty()).then(|| read.iter().sum::<f64>() / read.len() as f64)
        })
        .collect();
    let top = columns
        .iter()
        .flatten()
        .copied()
        .chain(target)
        .fold(0.0_f64, f64::max);
    let glyph = |v: f64| {
        let level = if top > 0.0 {
            (v / top * 7.0).round()
        } else {
            0.0
        };
        BLOCKS[level.clamp(0.0, 7.0) as usize]
    };
    let line = columns.iter().map(|c| c.map_or(' ', glyph)).collect();
    (line, top, target.map(glyph))
}

fn policies(r: &Rules) -> String {
    let select = match r.select {
        Select::Max => "Max",
        Select::Min => "Min",
        Select::Disabled => return "Disabled".into(),
    };
    let p: Vec<String> = r
        .policies
        .iter()
        .map(
            |Policy {
                 kind,
                 value,
                 period_seconds,
             }| match kind {
                PolicyKind::Pods => format!("{value} pods/{period_seconds}s"),
                PolicyKind::Percent => format!("{value}%/{period_seconds}s"),
            },
        )
        .collect();
    let window = r
        .window_seconds
        .map_or_else(|| "controller default".into(), |w| format!("{w}s"));
    format!("window {window}, {} ({select})", p.join(", "))
}

fn triggers(out: &mut String, f: &Facts, e: &Explanation) {
    let _ = writeln!(out, "Triggers:");
    if e.triggers.is_empty() {
        let _ = writeln!(out, "  (no readings from the operator)");
    }
    for t in &e.triggers {
        let value = match (&t.error, t.value) {
            (Some(err), _) => format!("error: {err}"),
            (None, Some(v)) => num(v),
            (None, None) => "not read yet".into(),
        };
        let target = t.target.map_or_else(String::new, |v| {
            format!(", target {} {}", num(v), t.metric_type)
        });
        let activation = t.activation.map_or_else(String::new, |a| {
            format!(
                ", activation {} ({})",
                num(a),
                t.activation_key.as_deref().unwrap_or("default")
            )
        });
        let active = match t.active {
            Some(true) => ": active",
            Some(false) => ": not active",
            None => "",
        };
        let failures = if t.failures > 0 {
            format!(", {} failures in a row", t.failures)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  [{}] {} {}: {value}{target}{activation}{active}{failures}",
            t.index, t.type_, t.metric
        );
        let history = f
            .operator
            .as_ref()
            .and_then(|r| r.triggers.iter().find(|h| h.metric == t.metric))
            .map(|h| h.history.as_slice())
            .unwrap_or_default();
        chart(
            out,
            history,
            t.target,
            f.operator
                .as_ref()
                .map_or(30, |r| r.polling_interval_seconds),
        );
    }
}

fn chart(out: &mut String, history: &[Point], target: Option<f64>, polling: u64) {
    if history.is_empty() {
        return;
    }
    let values: Vec<Option<f64>> = history.iter().map(|p| p.value).collect();
    let (line, top, mark) = sparkline(&values, target);
    let span = history
        .first()
        .zip(history.last())
        .map_or(0, |(a, b)| b.at.duration_since(a.at).as_secs());
    let target = mark
        .zip(target)
        .map_or_else(String::new, |(m, t)| format!(", target {} = {m}", num(t)));
    let _ = writeln!(
        out,
        "      {line}  {} samples over {span}s (every {polling}s), 0..{}{target}",
        history.len(),
        num(top)
    );
}

fn hpa(out: &mut String, h: &HpaFacts, e: &Explanation) {
    let desired = h.desired.map_or_else(|| "?".into(), |d| d.to_string());
    let _ = writeln!(
        out,
        "HPA {}: current {}, desired {desired} (min {}, max {})",
        h.name, h.current, h.min, h.max
    );
    if let Some(m) = &e.hpa {
        for p in &m.proposals {
            let _ = writeln!(out, "  {}: {}", p.metric, p.formula);
        }
        let t = m.tolerance;
        let _ = writeln!(
            out,
            "  tolerance: keeps the count while the ratio is within {}..{}",
            num(1.0 - t.down),
            num(1.0 + t.up)
        );
    }
    let _ = writeln!(out, "  scale-up: {}", policies(&h.up));
    let _ = writeln!(out, "  scale-down: {}", policies(&h.down));
    let conds: Vec<String> = h
        .conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} ({})",
                c.type_,
                if c.status { "True" } else { "False" },
                c.reason
            )
        })
        .collect();
    if !conds.is_empty() {
        let _ = writeln!(out, "  conditions: {}", conds.join(", "));
    }
}

pub fn text(f: &Facts, e: &Explanation, operator_note: Option<&str>) -> String {
    let mut out = String::new();
    let o = &f.object;
    let current = e.current.map_or_else(
        || "? replicas".into(),
        |c| format!("{c} replica{}", if c == 1 { "" } else { "s" }),
    );
    let idle = o.idle.map_or_else(String::new, |i| format!(", idle {i}"));
    let _ = writeln!(
        out,
        "ScaledObject {}/{}: {current} now (min {}, max {}{idle})",
        o.namespace, o.name, o.min, o.max
    );
    triggers(&mut out, f, e);
    match &f.hpa {
        Some(h) => hpa(&mut out, h, e),
        None => {
            let _ = writeln!(out, "HPA: none");
        }
    }
    if let Some(c) = &e.cooldown {
        let since = c
            .last_active
            .map_or_else(|| "never".into(), |t| t.to_string());
        let _ = writeln!(
            out,
            "Cooldown: last active {since}, ends {} (in {}s), then to {}",
            c.ends, c.remaining_seconds, c.to
        );
    }
    if let Some(fb) = &o.fallback {
        let state = if o.fallback_active {
            "active"
        } else {
            "not active"
        };
        let _ = writeln!(
            out,
            "Fallback: {state} (failureThreshold {}, replicas {}, {})",
            fb.failure_threshold, fb.replicas, fb.behavior
        );
    }
    let p = o.pause;
    if p.paused || p.replicas.is_some() || p.scale_in || p.scale_out {
        let _ = writeln!(
            out,
            "Pause: paused {}, paused-replicas {:?}, scale-in {}, scale-out {}",
            p.paused, p.replicas, p.scale_in, p.scale_out
        );
    }
    if let Some(r) = &o.not_ready {
        let _ = writeln!(out, "Ready: False ({r})");
    }
    for n in e.notes.iter().map(String::as_str).chain(operator_note) {
        let _ = writeln!(out, "Note: {n}");
    }
    let _ = writeln!(out, "\n{}", e.sentence);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_larger_of_values_and_target() {
        let (line, top, mark) = sparkline(&[Some(0.0), Some(5.0), None, Some(10.0)], Some(5.0));
        assert_eq!(line, "▁▅ █");
        assert_eq!((top, mark), (10.0, Some('▅')));
        let (line, top, _) = sparkline(&[Some(1.0), Some(1.0)], Some(4.0));
        assert_eq!((line.as_str(), top), ("▃▃", 4.0));
        // 120 samples fit 60 columns, two averaged per column
        let many: Vec<Option<f64>> = (0..120).map(|i| Some(f64::from(i))).collect();
        assert_eq!(sparkline(&many, None).0.chars().count(), 60);
        assert_eq!(sparkline(&[], None).0, "");
    }
}
