//! `ExternalMetric` (`metrics.aws/v1alpha1`): the CloudWatch query objects of the archived
//! k8s-cloudwatch-adapter (awslabs, v0.10), which Swell serves so that HPAs written against
//! the adapter keep working with the adapter removed.
//!
//! The adapter's CRD had no schema, so stored objects may lack any field: every field here
//! is optional or defaulted, and Swell checks an object when it is asked for its metric
//! (`swell_controller::cloudwatch_adapter`), naming the field that is wrong.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A CloudWatch `GetMetricData` query served as the external metric named after the object.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metrics.aws",
    version = "v1alpha1",
    kind = "ExternalMetric",
    plural = "externalmetrics",
    singular = "externalmetric",
    shortname = "em",
    namespaced,
    derive = "PartialEq",
    doc = "ExternalMetric describes a CloudWatch metric served through the external metrics API (k8s-cloudwatch-adapter's API)"
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSpec {
    /// The series name. The adapter served the metric under the object's `metadata.name`
    /// and never read this; Swell does the same.
    #[serde(default)]
    pub name: String,
    /// An IAM role to assume (with Swell's own identity) for this metric's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The region to query; Swell's own region (`AWS_REGION`) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The `MetricDataQueries` of one `GetMetricData` call; the first result's newest value
    /// is the metric's value.
    #[serde(default)]
    pub queries: Vec<MetricDataQuery>,
}

/// One CloudWatch `MetricDataQuery`: a metric (`metricStat`) or a math `expression`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricDataQuery {
    /// Names this query's result; starts with a lowercase letter, then letters, digits, `_`.
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<MetricStat>,
    /// Whether CloudWatch returns this query's values (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_data: Option<bool>,
    /// In adapter versions before 0.9 only; the adapter never read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
}

/// The metric, statistic, period and unit of a `metricStat` query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStat {
    #[serde(default)]
    pub metric: Metric,
    /// Seconds: 1, 5, 10, 30 or a multiple of 60.
    #[serde(default)]
    pub period: i64,
    /// A CloudWatch statistic (`Average`, `Maximum`, `p99`, …).
    #[serde(default)]
    pub stat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A CloudWatch metric: namespace, name and dimensions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub metric_name: String,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Dimension {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}
