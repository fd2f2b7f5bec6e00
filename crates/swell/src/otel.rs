//! OpenTelemetry metrics, as KEDA's `--enable-opentelemetry-metrics`: the same measurements
//! as `/metrics`, pushed over OTLP (http/protobuf) under KEDA's `keda.*` instrument names
//! and attributes. Every call site records once, in the Prometheus registry; the OTLP
//! instruments are observable and read that registry at each collection. Only the HTTP
//! request durations (a histogram, which no observable instrument can carry) are recorded
//! through [`swell_scalers::observe::ScalerMetrics::request_hook`], at the same call site.
//!
//! The exporter follows the standard environment: `OTEL_EXPORTER_OTLP_ENDPOINT` (plus
//! `/v1/metrics`) or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000), `OTEL_EXPORTER_OTLP_PROTOCOL`.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use swell_controller::metrics::Metrics;

/// Why OpenTelemetry export could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not supported: Swell exports OTLP over http/protobuf; unset it or set it to http/protobuf"
    )]
    Protocol(String),
    #[error("building the OTLP metric exporter: {0}")]
    Exporter(String),
}

/// KEDA's meter name.
const METER: &str = "keda-open-telemetry-metrics";

/// One sample of the Prometheus exposition: family, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the text exposition's samples (comments skipped; label values unescaped).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.split_once('{') {
        Some((name, rest)) => {
            let (labels, rest) = parse_labels(rest)?;
            (name, labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",…}` and what follows the closing brace.
fn parse_labels(rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut s = rest;
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, e) = chars.next()?;
                    value.push(if e == 'n' { '\n' } else { e });
                }
                '"' => break i + 1,
                c => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &after[end..];
    }
}

fn label<'a>(s: &'a Sample, key: &str) -> &'a str {
    s.labels
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

fn kv(key: &'static str, value: &str) -> KeyValue {
    KeyValue::new(key, value.to_string())
}

/// How a family's labels become KEDA's OpenTelemetry attributes.
#[derive(Clone, Copy, Debug)]
enum Attrs {
    /// The labels as they are.
    Same,
    /// KEDA's scaler attributes: `scaledObject` and `scalerIndex` for ScaledObjects,
    /// `scaledJob` and `triggerIndex` for ScaledJobs; no `type`.
    Scaler,
    /// `namespace`, `type`, `name` (the loop latency's `resource`).
    Loop,
    /// `isScaledObject` and `ignoreNullValues` as booleans.
    Empty,
}

fn attributes(s: &Sample, how: Attrs) -> Vec<KeyValue> {
    match how {
        Attrs::Same => s
            .labels
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect(),
        Attrs::Scaler => {
            let job = label(s, "type") == "scaledjob";
            let (owner, index) = if job {
                ("scaledJob", "triggerIndex")
            } else {
                ("scaledObject", "scalerIndex")
            };
            vec![
                kv("namespace", label(s, "namespace")),
                kv(owner, label(s, "scaledObject")),
                kv("scaler", label(s, "scaler")),
                kv(index, label(s, "triggerIndex")),
                kv("metric", label(s, "metric")),
            ]
        }
        Attrs::Loop => vec![
            kv("namespace", label(s, "namespace")),
            kv("type", label(s, "type")),
            kv("name", label(s, "resource")),
        ],
        Attrs::Empty => vec![
            kv("namespace", label(s, "namespace")),
            kv("scaledResource", label(s, "scaledResource")),
            kv("triggerName", label(s, "triggerName")),
            kv("metricName", label(s, "metricName")),
            KeyValue::new("isScaledObject", label(s, "resourceType") == "ScaledObject"),
            KeyValue::new("ignoreNullValues", label(s, "ignoreNullValues") == "true"),
        ],
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    UpDown,
    IntGauge,
}

/// One of KEDA's instruments, read from one Prometheus family.
#[derive(Clone, Copy, Debug)]
struct Instrument {
    name: &'static str,
    family: &'static str,
    kind: Kind,
    attrs: Attrs,
    /// KEDA's deprecated latency instruments are milliseconds.
    scale: f64,
    unit: &'static str,
    description: &'static str,
}

const fn inst(name: &'static str, family: &'static str, kind: Kind, attrs: Attrs) -> Instrument {
    Instrument {
        name,
        family,
        kind,
        attrs,
        scale: 1.0,
        unit: "",
        description: "",
    }
}

/// KEDA 2.21's `opentelemetry.go` instruments (its CloudEventSource ones aside: Swell has
/// no CloudEventSource), each with the family it reads.
const INSTRUMENTS: [Instrument; 17] = [
    Instrument {
        description: "The current value for each scaler's metric that would be used by the HPA in computing the target average",
        ..inst(
            "keda.scaler.metrics.value",
            "keda_scaler_metrics_value",
            Kind::Gauge,
            Attrs::Scaler,
        )
    },
    Instrument {
        unit: "s",
        description: "The latency of retrieving current metric from each scaler",
        ..inst(
            "keda.scaler.metrics.latency.seconds",
            "keda_scaler_metrics_latency_seconds",
            Kind::Gauge,
            Attrs::Scaler,
        )
    },
    Instrument {
        scale: 1000.0,
        description: "DEPRECATED - use `keda.scaler.metrics.latency.seconds` instead",
        ..inst(
            "keda.scaler.metrics.latency",
            "keda_scaler_metrics_latency_seconds",
            Kind::Gauge,
            Attrs::Scaler,
        )
    },
    Instrument {
        unit: "s",
        description: "Internal latency of ScaledObject/ScaledJob loop execution",
        ..inst(
            "keda.internal.scale.loop.latency.seconds",
            "keda_internal_scale_loop_latency_seconds",
            Kind::Gauge,
            Attrs::Loop,
        )
    },
    Instrument {
        scale: 1000.0,
        description: "DEPRECATED - use `keda.internal.scale.loop.latency.seconds` instead",
        ..inst(
            "keda.internal.scale.loop.latency",
            "keda_internal_scale_loop_latency_seconds",
            Kind::Gauge,
            Attrs::Loop,
        )
    },
    Instrument {
        description: "Indicates whether a scaler is active (1), or not (0)",
        ..inst(
            "keda.scaler.active",
            "keda_scaler_active",
            Kind::Gauge,
            Attrs::Scaler,
        )
    },
    Instrument {
        description: "Indicates whether a ScaledObject is paused",
        ..inst(
            "keda.scaled.object.paused",
            "keda_scaled_object_paused",
            Kind::Gauge,
            Attrs::Same,
        )
    },
    Instrument {
        description: "A metric with a constant '1' value labeled by version, git_commit and goversion from which KEDA was built.",
        ..inst(
            "keda.build.info",
            "keda_build_info",
            Kind::IntGauge,
            Attrs::Same,
        )
    },
    Instrument {
        description: "Number of scaler errors",
        ..inst(
            "keda.scaler.errors",
            "keda_scaler_detail_errors_total",
            Kind::Counter,
            Attrs::Scaler,
        )
    },
    Instrument {
        description: "Number of scaled object errors",
        ..inst(
            "keda.scaledobject.errors",
            "keda_scaled_object_errors_total",
            Kind::Counter,
            Attrs::Same,
        )
    },
    Instrument {
        description: "Number of scaled job errors",
        ..inst(
            "keda.scaledjob.errors",
            "keda_scaled_job_errors_total",
            Kind::Counter,
            Attrs::Same,
        )
    },
    Instrument {
        description: "Total number of triggers per trigger type registered",
        ..inst(
            "keda.trigger.registered.count",
            "keda_trigger_registered_total",
            Kind::UpDown,
            Attrs::Same,
        )
    },
    Instrument {
        description: "DEPRECATED - will be removed in 2.16 - use 'keda.trigger.registered.count' instead",
        ..inst(
            "keda.trigger.totals",
            "keda_trigger_registered_total",
            Kind::UpDown,
            Attrs::Same,
        )
    },
    Instrument {
        description: "Total number of KEDA custom resources per namespace for each custom resource type (CRD) registered",
        ..inst(
            "keda.resource.registered.count",
            "keda_resource_registered_total",
            Kind::UpDown,
            Attrs::Same,
        )
    },
    Instrument {
        description: "DEPRECATED - will be removed in 2.16 - use 'keda.resource.registered.count' instead",
        ..inst(
            "keda.resource.totals",
            "keda_resource_registered_total",
            Kind::UpDown,
            Attrs::Same,
        )
    },
    Instrument {
        description: "Number of times a query returns an empty result",
        ..inst(
            "keda.scaler.empty.upstream.responses",
            "keda_scaler_empty_upstream_responses_total",
            Kind::Counter,
            Attrs::Empty,
        )
    },
    Instrument {
        description: "Total number of outbound HTTP requests issued during scaler metric collection, labeled by HTTP status code.",
        ..inst(
            "keda.scaler.http.requests.count",
            "keda_scaler_http_requests_total",
            Kind::Counter,
            Attrs::Same,
        )
    },
];

/// What one instrument observes now: value (scaled) and attributes, per series.
fn observations(samples: &[Sample], i: &Instrument) -> Vec<(f64, Vec<KeyValue>)> {
    samples
        .iter()
        .filter(|s| s.name == i.family)
        .map(|s| (s.value * i.scale, attributes(s, i.attrs)))
        .collect()
}

/// A running exporter; flushes and stops on drop.
pub struct Otel {
    provider: SdkMeterProvider,
}

impl Drop for Otel {
    fn drop(&mut self) {
        let provider = self.provider.clone();
        // The blocking HTTP client must not be driven from an async worker.
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

/// The protocol the environment asks for; only http/protobuf is built in.
fn check_protocol(protocol: Option<&str>) -> Result<(), OtelError> {
    match protocol {
        None | Some("" | "http/protobuf") => Ok(()),
        Some(p) => Err(OtelError::Protocol(p.to_string())),
    }
}

/// Starts pushing `metrics` over OTLP, as configured by the standard environment.
pub fn start(metrics: Arc<Metrics>) -> Result<Otel, OtelError> {
    check_protocol(std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").ok().as_deref())?;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let reader = PeriodicReader::builder(exporter).build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("swell")
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    let meter = provider.meter(METER);
    for i in INSTRUMENTS {
        register(&meter, i, metrics.clone());
    }
    let durations = meter
        .f64_histogram("keda.scaler.http.request.duration.seconds")
        .with_description(
            "Duration in seconds of outbound HTTP requests issued during scaler metric collection.",
        )
        .with_unit("s")
        .build();
    let high = metrics.scalers.high_cardinality;
    let _ = metrics
        .scalers
        .request_hook
        .set(Box::new(move |r, code, seconds| {
            let labels = swell_scalers::observe::duration_labels(r, code, high);
            let attrs: Vec<KeyValue> = labels
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect();
            durations.record(seconds, &attrs);
        }));
    tracing::info!("exporting OpenTelemetry metrics over OTLP");
    Ok(Otel { provider })
}

/// Registers one observable instrument reading its family at each collection.
fn register(meter: &Meter, i: Instrument, metrics: Arc<Metrics>) {
    let read = move || observations(&parse_exposition(&metrics.encode()), &i);
    match i.kind {
        Kind::Gauge => {
            meter
                .f64_observable_gauge(i.name)
                .with_description(i.description)
                .with_unit(i.unit)
                .with_callback(move |o: &dyn AsyncInstrument<f64>| {
                    read().iter().for_each(|(v, a)| o.observe(*v, a))
                })
                .build();
        }
        Kind::IntGauge => {
            meter
                .i64_observable_gauge(i.name)
                .with_description(i.description)
                .with_callback(move |o: &dyn AsyncInstrument<i64>| {
                    read().iter().for_each(|(v, a)| o.observe(*v as i64, a))
                })
                .build();
        }
        Kind::Counter => {
            meter
                .u64_observable_counter(i.name)
                .with_description(i.description)
                .with_callback(move |o: &dyn AsyncInstrument<u64>| {
                    read().iter().for_each(|(v, a)| o.observe(*v as u64, a))
                })
                .build();
        }
        Kind::UpDown => {
            meter
                .i64_observable_up_down_counter(i.name)
                .with_description(i.description)
                .with_callback(move |o: &dyn AsyncInstrument<i64>| {
                    read().iter().for_each(|(v, a)| o.observe(*v as i64, a))
                })
                .build();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse() {
        let text = "# TYPE x gauge\nx{a=\"1\",b=\"q\\\"uo\\\\te\"} 2.5\ny 3\nz_total{k=\"v\"} 7 1700000000\n# EOF\n";
        let s = parse_exposition(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s[0].labels,
            vec![("a".into(), "1".into()), ("b".into(), "q\"uo\\te".into())]
        );
        assert_eq!(s[0].value, 2.5);
        assert_eq!((s[1].name.as_str(), s[1].value), ("y", 3.0));
        assert_eq!((s[2].name.as_str(), s[2].value), ("z_total", 7.0));
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    fn find(name: &str) -> Instrument {
        *INSTRUMENTS.iter().find(|i| i.name == name).expect(name)
    }

    #[test]
    fn attributes_are_kedas() {
        let scaler = |type_: &str| {
            sample(
                "keda_scaler_metrics_value",
                &[
                    ("namespace", "ns"),
                    ("metric", "s0-x"),
                    ("scaledObject", "so"),
                    ("scaler", "cron"),
                    ("triggerIndex", "0"),
                    ("type", type_),
                ],
                2.0,
            )
        };
        let loop_ = sample(
            "keda_internal_scale_loop_latency_seconds",
            &[
                ("namespace", "ns"),
                ("type", "scaledobject"),
                ("resource", "so"),
            ],
            0.25,
        );
        let empty = sample(
            "keda_scaler_empty_upstream_responses_total",
            &[
                ("namespace", "ns"),
                ("scaledResource", "so"),
                ("triggerName", "t"),
                ("metricName", "s0-prometheus"),
                ("resourceType", "ScaledObject"),
                ("ignoreNullValues", "true"),
            ],
            3.0,
        );
        let samples = vec![scaler("scaledobject"), scaler("scaledjob"), loop_, empty];
        let cases: Vec<(&str, f64, Vec<KeyValue>)> = vec![
            (
                "keda.scaler.metrics.value",
                2.0,
                vec![
                    kv("namespace", "ns"),
                    kv("scaledObject", "so"),
                    kv("scaler", "cron"),
                    kv("scalerIndex", "0"),
                    kv("metric", "s0-x"),
                ],
            ),
            (
                "keda.internal.scale.loop.latency.seconds",
                0.25,
                vec![
                    kv("namespace", "ns"),
                    kv("type", "scaledobject"),
                    kv("name", "so"),
                ],
            ),
            (
                "keda.internal.scale.loop.latency",
                250.0,
                vec![
                    kv("namespace", "ns"),
                    kv("type", "scaledobject"),
                    kv("name", "so"),
                ],
            ),
            (
                "keda.scaler.empty.upstream.responses",
                3.0,
                vec![
                    kv("namespace", "ns"),
                    kv("scaledResource", "so"),
                    kv("triggerName", "t"),
                    kv("metricName", "s0-prometheus"),
                    KeyValue::new("isScaledObject", true),
                    KeyValue::new("ignoreNullValues", true),
                ],
            ),
        ];
        for (name, value, attrs) in cases {
            let got = observations(&samples, &find(name));
            assert_eq!(got.first(), Some(&(value, attrs)), "{name}");
        }
        let job = observations(&samples, &find("keda.scaler.metrics.value"));
        assert_eq!(job[1].1[1], kv("scaledJob", "so"));
        assert_eq!(job[1].1[3], kv("triggerIndex", "0"));
    }

    #[test]
    fn every_instrument_reads_an_exported_family() {
        let families = Metrics::new().family_names();
        for i in INSTRUMENTS {
            assert!(
                families.iter().any(|f| f == i.family),
                "{} reads {}",
                i.name,
                i.family
            );
        }
        assert!(check_protocol(None).is_ok() && check_protocol(Some("http/protobuf")).is_ok());
        let e = check_protocol(Some("grpc")).unwrap_err().to_string();
        assert!(e.contains("\"grpc\" is not supported"), "{e}");
    }
}
