//! The scaler registry: trigger `type` → constructor, and the same parsing without I/O for
//! `swell check` and the admission webhook.

pub mod activemq;
pub mod artemis;
pub mod aws_cloudwatch;
pub mod aws_dynamodb;
pub mod aws_dynamodb_streams;
pub mod aws_kinesis_stream;
pub mod aws_sqs_queue;
pub mod azure_blob;
pub mod azure_queue;
pub mod cpu_memory;
pub mod cron;
pub mod etcd;
pub mod external;
pub mod jolokia;
pub mod kafka;
pub mod kubernetes_workload;
pub mod metrics_api;
pub mod mysql;
pub mod nats_jetstream;
pub mod postgresql;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;

use crate::aws::{IDENTITY_FIELDS, SDK_FIELDS, SHARD_COUNT_FIELDS};
use crate::azure_storage::ACCOUNT_FIELDS;
use crate::http_auth;
use crate::redis_client;
use crate::{Field, ParamError, Params, Scaler, ScalerError, Shared, TriggerInput};

/// One trigger type: how `swell check` and the webhook parse its parameters (without I/O),
/// which metadata keys it knows, and how the operator builds it. One row per type; the
/// registry is this table and nothing else.
pub struct Entry {
    pub name: &'static str,
    /// Metadata keys it reads (others are warned about); `None`: every key is passed on
    /// (the external scalers send the whole metadata to their server).
    fields: Option<&'static [&'static [Field]]>,
    parse: fn(&TriggerInput, &mut Params<'_>),
    build: fn(&TriggerInput, &Shared) -> Built,
}

type Built = Result<Box<dyn Scaler>, ScalerError>;

fn boxed<S: Scaler + 'static>(s: Result<S, ScalerError>) -> Built {
    Ok(Box::new(s?))
}

/// Every trigger type Swell knows, in KEDA's names, sorted.
pub const REGISTRY: &[Entry] = &[
    Entry {
        name: "activemq",
        fields: Some(&[activemq::FIELDS]),
        parse: |i, p| {
            let _ = activemq::ActiveMqScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(activemq::ActiveMqScaler::new(i, s)),
    },
    Entry {
        name: "artemis-queue",
        fields: Some(&[artemis::FIELDS]),
        parse: |i, p| {
            let _ = artemis::ArtemisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(artemis::ArtemisScaler::new(i, s)),
    },
    Entry {
        name: "aws-cloudwatch",
        fields: Some(&[aws_cloudwatch::FIELDS, IDENTITY_FIELDS, SDK_FIELDS]),
        parse: |i, p| {
            let _ = aws_cloudwatch::CloudwatchScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(aws_cloudwatch::CloudwatchScaler::new(i, s)),
    },
    Entry {
        name: "aws-dynamodb",
        fields: Some(&[aws_dynamodb::FIELDS, IDENTITY_FIELDS, SDK_FIELDS]),
        parse: |i, p| {
            let _ = aws_dynamodb::parse(i, p);
        },
        build: |i, s| boxed(aws_dynamodb::DynamoDbScaler::new(i, s)),
    },
    Entry {
        name: "aws-dynamodb-streams",
        fields: Some(&[
            aws_dynamodb_streams::FIELDS,
            SHARD_COUNT_FIELDS,
            IDENTITY_FIELDS,
            SDK_FIELDS,
        ]),
        parse: |i, p| {
            let _ = aws_dynamodb_streams::parse(i, p);
        },
        build: |i, s| boxed(aws_dynamodb_streams::DynamoDbStreamsScaler::new(i, s)),
    },
    Entry {
        name: "aws-kinesis-stream",
        fields: Some(&[
            aws_kinesis_stream::FIELDS,
            SHARD_COUNT_FIELDS,
            IDENTITY_FIELDS,
            SDK_FIELDS,
        ]),
        parse: |i, p| {
            let _ = aws_kinesis_stream::parse(i, p);
        },
        build: |i, s| boxed(aws_kinesis_stream::KinesisScaler::new(i, s)),
    },
    Entry {
        name: "aws-sqs-queue",
        fields: Some(&[aws_sqs_queue::FIELDS, IDENTITY_FIELDS, SDK_FIELDS]),
        parse: |i, p| {
            let _ = aws_sqs_queue::parse(i, p);
        },
        build: |i, s| boxed(aws_sqs_queue::SqsScaler::new(i, s)),
    },
    Entry {
        name: "azure-blob",
        fields: Some(&[azure_blob::FIELDS, ACCOUNT_FIELDS]),
        parse: |i, p| {
            let _ = azure_blob::AzureBlobScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(azure_blob::AzureBlobScaler::new(i, s)),
    },
    Entry {
        name: "azure-queue",
        fields: Some(&[azure_queue::FIELDS, ACCOUNT_FIELDS]),
        parse: |i, p| {
            let _ = azure_queue::AzureQueueScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(azure_queue::AzureQueueScaler::new(i, s)),
    },
    Entry {
        name: "cpu",
        fields: Some(&[cpu_memory::FIELDS]),
        parse: |i, p| {
            let _ = cpu_memory::parse(i, p);
        },
        build: |i, _| boxed(cpu_memory::ResourceScaler::new(i)),
    },
    Entry {
        name: "cron",
        fields: Some(&[cron::FIELDS]),
        parse: |_, p| {
            let _ = cron::parse(p);
        },
        build: |i, _| boxed(cron::CronScaler::new(i)),
    },
    Entry {
        name: "etcd",
        fields: Some(&[etcd::FIELDS]),
        parse: |i, p| {
            let _ = etcd::EtcdScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(etcd::EtcdScaler::new(i, s)),
    },
    Entry {
        name: "external",
        fields: None,
        parse: |i, p| {
            let _ = external::ExternalScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(external::ExternalScaler::new(i, s)),
    },
    Entry {
        name: "external-push",
        fields: None,
        parse: |i, p| {
            let _ = external::ExternalScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(external::ExternalScaler::new(i, s)),
    },
    Entry {
        name: "kafka",
        fields: Some(&[kafka::FIELDS, IDENTITY_FIELDS]),
        parse: |i, p| {
            let _ = kafka::KafkaScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(kafka::KafkaScaler::new(i, s)),
    },
    Entry {
        name: "kubernetes-workload",
        fields: Some(&[kubernetes_workload::FIELDS]),
        parse: |_, p| {
            let _ = kubernetes_workload::parse(p);
        },
        build: |i, s| boxed(kubernetes_workload::WorkloadScaler::new(i, s)),
    },
    Entry {
        name: "memory",
        fields: Some(&[cpu_memory::FIELDS]),
        parse: |i, p| {
            let _ = cpu_memory::parse(i, p);
        },
        build: |i, _| boxed(cpu_memory::ResourceScaler::new(i)),
    },
    Entry {
        name: "metrics-api",
        fields: Some(&[metrics_api::FIELDS, http_auth::FIELDS]),
        parse: |_, p| {
            let _ = metrics_api::parse(p);
        },
        build: |i, s| boxed(metrics_api::MetricsApiScaler::new(i, s)),
    },
    Entry {
        name: "mysql",
        fields: Some(&[mysql::FIELDS]),
        parse: |i, p| {
            let _ = mysql::MysqlScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(mysql::MysqlScaler::new(i, s)),
    },
    Entry {
        name: "nats-jetstream",
        fields: Some(&[nats_jetstream::FIELDS]),
        parse: |i, p| {
            let _ = nats_jetstream::NatsJetStreamScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(nats_jetstream::NatsJetStreamScaler::new(i, s)),
    },
    Entry {
        name: "postgresql",
        fields: Some(&[postgresql::FIELDS]),
        parse: |i, p| {
            let _ = postgresql::PostgresScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(postgresql::PostgresScaler::new(i, s)),
    },
    Entry {
        name: "prometheus",
        fields: Some(&[prometheus::FIELDS, http_auth::FIELDS, IDENTITY_FIELDS]),
        parse: |i, p| {
            let _ = prometheus::PrometheusScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(prometheus::PrometheusScaler::new(i, s)),
    },
    Entry {
        name: "rabbitmq",
        fields: Some(&[rabbitmq::FIELDS]),
        parse: |i, p| {
            let _ = rabbitmq::RabbitMqScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(rabbitmq::RabbitMqScaler::new(i, s)),
    },
    Entry {
        name: "redis",
        fields: Some(&[redis::LIST_FIELDS, redis_client::FIELDS]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
    Entry {
        name: "redis-cluster",
        fields: Some(&[redis::LIST_FIELDS, redis_client::FIELDS]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
    Entry {
        name: "redis-cluster-streams",
        fields: Some(&[redis::STREAM_FIELDS, redis_client::FIELDS]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
    Entry {
        name: "redis-sentinel",
        fields: Some(&[
            redis::LIST_FIELDS,
            redis_client::FIELDS,
            redis_client::SENTINEL_FIELDS,
        ]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
    Entry {
        name: "redis-sentinel-streams",
        fields: Some(&[
            redis::STREAM_FIELDS,
            redis_client::FIELDS,
            redis_client::SENTINEL_FIELDS,
        ]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
    Entry {
        name: "redis-streams",
        fields: Some(&[redis::STREAM_FIELDS, redis_client::FIELDS]),
        parse: |i, p| {
            let _ = redis::RedisScaler::parse(i, &Shared::default(), p);
        },
        build: |i, s| boxed(redis::RedisScaler::new(i, s)),
    },
];

fn entry(type_: &str) -> Result<&'static Entry, ScalerError> {
    REGISTRY.iter().find(|e| e.name == type_).ok_or_else(|| {
        let known: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
        ScalerError::UnknownType(type_.to_string(), known.join(", "))
    })
}

pub fn build(input: &TriggerInput, shared: &Shared) -> Built {
    (entry(&input.type_)?.build)(input, shared)
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
    let entry = entry(&input.type_)?;
    let mut p = Params::new(&input.params);
    (entry.parse)(input, &mut p);
    if let Some(fields) = entry.fields {
        p.warn_unknown_keys(&input.type_, &fields.concat());
    }
    let (errors, warnings) = p.into_parts();
    Ok(Checked { errors, warnings })
}
