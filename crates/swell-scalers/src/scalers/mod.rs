//! The scaler registry: trigger `type` → constructor.

pub mod aws_sqs_queue;
pub mod cpu_memory;
pub mod cron;
pub mod kubernetes_workload;
pub mod metrics_api;

use crate::{Scaler, ScalerError, Shared, TriggerInput};

pub const TYPES: &[&str] = &[
    "cpu",
    "cron",
    "kubernetes-workload",
    "memory",
    "metrics-api",
];

pub fn build(input: &TriggerInput, shared: &Shared) -> Result<Box<dyn Scaler>, ScalerError> {
    Ok(match input.type_.as_str() {
        "aws-sqs-queue" => Box::new(aws_sqs_queue::SqsScaler::new(input, shared)?),
        "cpu" | "memory" => Box::new(cpu_memory::ResourceScaler::new(input)?),
        "cron" => Box::new(cron::CronScaler::new(input)?),
        "kubernetes-workload" => Box::new(kubernetes_workload::WorkloadScaler::new(input, shared)?),
        "metrics-api" => Box::new(metrics_api::MetricsApiScaler::new(input)?),
        other => {
            return Err(ScalerError::UnknownType(
                other.to_string(),
                TYPES.join(", "),
            ));
        }
    })
}
