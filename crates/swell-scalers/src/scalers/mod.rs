//! The scaler registry: trigger `type` → constructor, and the same parsing without I/O for
//! `swell check` and the admission webhook.

pub mod aws_cloudwatch;
pub mod aws_dynamodb;
pub mod aws_kinesis_stream;
pub mod aws_sqs_queue;
pub mod cpu_memory;
pub mod cron;
pub mod external;
pub mod kafka;
pub mod kubernetes_workload;
pub mod metrics_api;
pub mod prometheus;

use crate::aws::IDENTITY_FIELDS;
use crate::{Field, ParamError, Params, Scaler, ScalerError, Shared, TriggerInput};

pub const TYPES: &[&str] = &[
    "aws-cloudwatch",
    "aws-dynamodb",
    "aws-kinesis-stream",
    "aws-sqs-queue",
    "cpu",
    "cron",
    "external",
    "external-push",
    "kafka",
    "kubernetes-workload",
    "memory",
    "metrics-api",
    "prometheus",
];

pub fn build(input: &TriggerInput, shared: &Shared) -> Result<Box<dyn Scaler>, ScalerError> {
    Ok(match input.type_.as_str() {
        "aws-cloudwatch" => Box::new(aws_cloudwatch::CloudwatchScaler::new(input, shared)?),
        "aws-dynamodb" => Box::new(aws_dynamodb::DynamoDbScaler::new(input, shared)?),
        "aws-kinesis-stream" => Box::new(aws_kinesis_stream::KinesisScaler::new(input, shared)?),
        "aws-sqs-queue" => Box::new(aws_sqs_queue::SqsScaler::new(input, shared)?),
        "cpu" | "memory" => Box::new(cpu_memory::ResourceScaler::new(input)?),
        "cron" => Box::new(cron::CronScaler::new(input)?),
        "external" | "external-push" => Box::new(external::ExternalScaler::new(input, shared)?),
        "kafka" => Box::new(kafka::KafkaScaler::new(input, shared)?),
        "kubernetes-workload" => Box::new(kubernetes_workload::WorkloadScaler::new(input, shared)?),
        "metrics-api" => Box::new(metrics_api::MetricsApiScaler::new(input)?),
        "prometheus" => Box::new(prometheus::PrometheusScaler::new(input, shared)?),
        other => return Err(unknown_type(other)),
    })
}

fn unknown_type(other: &str) -> ScalerError {
    ScalerError::UnknownType(other.to_string(), TYPES.join(", "))
}

/// What [`check`] found in one trigger's parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub errors: Vec<ParamError>,
    /// Deprecated parameters and unknown metadata keys, as `field: message`.
    pub warnings: Vec<String>,
}

/// Parses a trigger's parameters exactly as [`build`] does, without building clients or
/// calling anything. Only an unknown trigger type is an `Err`.
pub fn check(input: &TriggerInput) -> Result<Checked, ScalerError> {
    let mut p = Params::new(&input.params);
    let fields: &[&[Field]] = match input.type_.as_str() {
        "aws-sqs-queue" => {
            aws_sqs_queue::parse(input, &mut p);
            &[aws_sqs_queue::FIELDS, IDENTITY_FIELDS]
        }
        "aws-dynamodb" => {
            aws_dynamodb::parse(input, &mut p);
            &[aws_dynamodb::FIELDS, IDENTITY_FIELDS]
        }
        "aws-kinesis-stream" => {
            aws_kinesis_stream::parse(input, &mut p);
            &[aws_kinesis_stream::FIELDS, IDENTITY_FIELDS]
        }
        "cpu" | "memory" => {
            cpu_memory::parse(input, &mut p);
            &[cpu_memory::FIELDS]
        }
        "cron" => {
            cron::parse(&mut p);
            &[cron::FIELDS]
        }
        "kubernetes-workload" => {
            kubernetes_workload::parse(&mut p);
            &[kubernetes_workload::FIELDS]
        }
        "metrics-api" => {
            metrics_api::parse(&mut p);
            &[metrics_api::FIELDS]
        }
        "aws-cloudwatch" => {
            let _ = aws_cloudwatch::CloudwatchScaler::parse(input, &Shared::default(), &mut p);
            &[aws_cloudwatch::FIELDS, IDENTITY_FIELDS]
        }
        "kafka" => {
            let _ = kafka::KafkaScaler::parse(input, &Shared::default(), &mut p);
            &[kafka::FIELDS]
        }
        "prometheus" => {
            let _ = prometheus::PrometheusScaler::parse(input, &Shared::default(), &mut p);
            &[prometheus::FIELDS, IDENTITY_FIELDS]
        }
        // Every metadata key goes to the external scaler, so none is unknown.
        "external" | "external-push" => {
            let _ = external::ExternalScaler::parse(input, &Shared::default(), &mut p);
            let (errors, warnings) = p.into_parts();
            return Ok(Checked { errors, warnings });
        }
        other => return Err(unknown_type(other)),
    };
    p.warn_unknown_keys(&input.type_, &fields.concat());
    let (errors, warnings) = p.into_parts();
    Ok(Checked { errors, warnings })
}
