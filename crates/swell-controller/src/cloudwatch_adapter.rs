//! Serves the archived k8s-cloudwatch-adapter's `ExternalMetric` objects
//! (`metrics.aws/v1alpha1`) as that adapter did, so HPAs written against it keep working
//! with the adapter removed and Swell as the one external metrics API.
//!
//! The adapter's rules, kept: the metric is named after the object (`metadata.name`) in the
//! HPA's namespace, the label selector is not read; one `GetMetricData` call with the
//! object's queries over the five minutes before the current minute, newest first; the
//! value is the first result's newest datapoint in whole units (it served `int64(value)`),
//! 0 when CloudWatch has none; `roleArn` is assumed with Swell's own identity; `region`
//! defaults to Swell's own.
//!
//! What Swell adds: an invalid object is refused naming the field (the adapter sent it to
//! CloudWatch and relayed whatever came back); concurrent reads of one object share a call,
//! and a value is reused for [`REUSE`]; AWS errors say what to grant.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StandardUnit};
use futures::StreamExt as _;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use swell_api::external_metric::{self as em};
use swell_api::{ExternalMetric, ExternalMetricSpec};
use swell_scalers::aws::Identity;
use swell_scalers::scalers::aws_cloudwatch::{MetricDataCall, check_period, unix_now};
use swell_scalers::{Shared, UpstreamError};
use tokio_util::sync::CancellationToken;

use crate::metric_source::MetricQueryError;
use crate::watch::{scoped, spec_watch};

/// How long a value is reused. The HPA controller reads each metric every 15 s and the
/// adapter's window moves once a minute, so a read within 10 s of another (a second HPA on
/// the same metric, a retry) shares its answer without delaying a change by a whole sync.
pub const REUSE: Duration = Duration::from_secs(10);

/// What is wrong with an `ExternalMetric`, in the words its author needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.queries is empty: add a query with a metricStat or an expression")]
    NoQueries,
    #[error(
        "spec.queries[{index}].id {id:?} must start with a lowercase letter, followed by letters, digits or _"
    )]
    BadId { index: usize, id: String },
    #[error(
        "spec.queries[{index}].id {id:?} is used twice: ids must be unique in one ExternalMetric"
    )]
    DuplicateId { index: usize, id: String },
    #[error(
        "spec.queries[{index}] sets both expression and metricStat: CloudWatch takes one; remove the other"
    )]
    Both { index: usize },
    #[error("spec.queries[{index}] has neither expression nor metricStat: set one")]
    Neither { index: usize },
    #[error("spec.queries[{index}].metricStat.{field} is missing")]
    Missing { index: usize, field: &'static str },
    #[error("spec.queries[{index}].metricStat.period: {why}")]
    Period { index: usize, why: String },
    #[error("spec.queries[{index}].metricStat.unit {unit:?} is not one of {known}")]
    Unit {
        index: usize,
        unit: String,
        known: String,
    },
    #[error(
        "spec.region is not set and Swell has no region of its own: set spec.region, or AWS_REGION on the operator"
    )]
    NoRegion,
}

/// One `ExternalMetric`'s `GetMetricData` call: a pure function of its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub identity: Identity,
    pub region: String,
    pub queries: Vec<MetricDataQuery>,
}

/// Checks `spec` and builds its call; `default_region` is Swell's own.
pub fn plan(spec: &ExternalMetricSpec, default_region: Option<&str>) -> Result<Plan, SpecError> {
    if spec.queries.is_empty() {
        return Err(SpecError::NoQueries);
    }
    let mut queries = Vec::with_capacity(spec.queries.len());
    for (index, q) in spec.queries.iter().enumerate() {
        if spec.queries[..index].iter().any(|p| p.id == q.id) {
            let id = q.id.clone();
            return Err(SpecError::DuplicateId { index, id });
        }
        queries.push(query(index, q)?);
    }
    let region = nonempty(&spec.region)
        .or(default_region.filter(|r| !r.is_empty()))
        .ok_or(SpecError::NoRegion)?;
    let identity = match nonempty(&spec.role_arn) {
        Some(role) => Identity::AssumeRole {
            role_arn: role.to_string(),
            external_id: None,
        },
        None => Identity::Operator,
    };
    Ok(Plan {
        identity,
        region: region.to_string(),
        queries,
    })
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// CloudWatch's rule for a query id.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn query(index: usize, q: &em::MetricDataQuery) -> Result<MetricDataQuery, SpecError> {
    if !valid_id(&q.id) {
        let id = q.id.clone();
        return Err(SpecError::BadId { index, id });
    }
    let b = MetricDataQuery::builder()
        .id(&q.id)
        .set_label(nonempty(&q.label).map(str::to_string))
        .set_return_data(q.return_data);
    let built = match (nonempty(&q.expression), &q.metric_stat) {
        (Some(_), Some(_)) => return Err(SpecError::Both { index }),
        (None, None) => return Err(SpecError::Neither { index }),
        (Some(e), None) => b.expression(e).build(),
        (None, Some(stat)) => b.metric_stat(metric_stat(index, stat)?).build(),
    };
    Ok(built)
}

fn metric_stat(index: usize, s: &em::MetricStat) -> Result<MetricStat, SpecError> {
    let missing = |field| Err(SpecError::Missing { index, field });
    if s.metric.namespace.is_empty() {
        return missing("metric.namespace");
    }
    if s.metric.metric_name.is_empty() {
        return missing("metric.metricName");
    }
    if s.stat.is_empty() {
        return missing("stat");
    }
    check_period(s.period).map_err(|e| SpecError::Period { index, why: e.0 })?;
    let unit = match nonempty(&s.unit) {
        Some(u) if !StandardUnit::values().contains(&u) => {
            let known = StandardUnit::values().join(", ");
            let unit = u.to_string();
            return Err(SpecError::Unit { index, unit, known });
        }
        u => u.map(StandardUnit::from),
    };
    let mut metric = Metric::builder()
        .namespace(&s.metric.namespace)
        .metric_name(&s.metric.metric_name);
    for d in &s.metric.dimensions {
        metric = metric.dimensions(Dimension::builder().name(&d.name).value(&d.value).build());
    }
    Ok(MetricStat::builder()
        .metric(metric.build())
        .period(i32::try_from(s.period).unwrap_or(i32::MAX))
        .stat(&s.stat)
        .set_unit(unit)
        .build())
}

/// The adapter's window: the five minutes before the start of the current minute.
pub fn window(now: i64) -> (i64, i64) {
    let end = now - now.rem_euclid(60);
    (end - 300, end)
}

/// The adapter's value: the first result's newest datapoint in whole units, 0 without one.
pub fn reading(first_values: Option<Option<Vec<f64>>>) -> f64 {
    first_values
        .flatten()
        .and_then(|v| v.first().copied())
        .map_or(0.0, f64::trunc)
}

/// The `ExternalMetric`s Swell serves, from one watch, and the AWS clients that read them.
pub struct CloudwatchAdapter {
    store: Store<ExternalMetric>,
    shared: Shared,
    default_region: Option<String>,
}

impl CloudwatchAdapter {
    /// Watches `ExternalMetric`s (in `namespace`, or all) until `stop`. Without the CRD the
    /// watch keeps failing with backoff, logged, and no metric is served from it.
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
        shared: Shared,
        default_region: Option<String>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (store, changes) = spec_watch(scoped::<ExternalMetric>(client, namespace));
        tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes.take_until(stop.cancelled_owned()));
            while let Some(change) = changes.next().await {
                if let Err(e) = change {
                    tracing::warn!(
                        error = %e,
                        "cannot watch ExternalMetrics (metrics.aws/v1alpha1): is the CRD installed \
                         (chart value cloudwatchAdapter.installCRD) and may Swell list them?"
                    );
                }
            }
        });
        Arc::new(CloudwatchAdapter {
            store,
            shared,
            default_region,
        })
    }

    fn get(&self, namespace: &str, metric: &str) -> Option<Arc<ExternalMetric>> {
        // Object names are lowercase; the HPA controller lowercases the name it asks for.
        let name = metric.to_ascii_lowercase();
        self.store.get(&ObjectRef::new(&name).within(namespace))
    }

    /// Whether an `ExternalMetric` named `metric` exists in `namespace`.
    pub fn serves(&self, namespace: &str, metric: &str) -> bool {
        self.get(namespace, metric).is_some()
    }

    /// The value of `metric` in `namespace`, as the adapter computed it.
    pub async fn value(&self, namespace: &str, metric: &str) -> Result<f64, MetricQueryError> {
        let what = format!("ExternalMetric {namespace}/{}", metric.to_ascii_lowercase());
        let object = self
            .get(namespace, metric)
            .ok_or_else(|| MetricQueryError::NotFound(format!("{what} does not exist")))?;
        let plan = plan(&object.spec, self.default_region.as_deref())
            .map_err(|e| MetricQueryError::BadRequest(format!("{what}: {e}")))?;
        let key = format!("cloudwatch-adapter|{what}|{plan:?}");
        let (value, upstream) = self
            .shared
            .values
            .get(&key, REUSE, || self.fetch(&what, plan))
            .await;
        if upstream {
            self.shared.count_upstream("aws-cloudwatch");
        }
        value.map_err(|e| {
            tracing::warn!(externalmetric = %what, error = %e, "metrics API: CloudWatch read failed");
            MetricQueryError::Unavailable(format!("{what}: {e}"))
        })
    }

    async fn fetch(&self, what: &str, plan: Plan) -> Result<f64, UpstreamError> {
        let resource = format!("{what}'s queries in {}", plan.region);
        let call = MetricDataCall {
            identity: &plan.identity,
            region: &plan.region,
            endpoint: None,
            // The adapter's ExternalMetric has no place for them: the defaults.
            sdk: Default::default(),
            queries: plan.queries,
            window: window(unix_now()),
            resource: &resource,
        };
        Ok(reading(call.first_values(&self.shared.aws).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adapter's documented SQS example (samples/sqs/deploy/externalmetric.yaml).
    const SAMPLE: &str = r#"
name: sqs-helloworld-length
queries:
  - id: sqs_helloworld_length
    metricStat:
      metric:
        namespace: "AWS/SQS"
        metricName: "ApproximateNumberOfMessagesVisible"
        dimensions:
          - name: QueueName
            value: "helloworld"
      period: 60
      stat: Average
      unit: Count
    returnData: true
"#;

    fn spec(yaml: &str) -> ExternalMetricSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn the_adapters_sample_becomes_one_metric_stat_query() {
        let p = plan(&spec(SAMPLE), Some("eu-west-1")).unwrap();
        assert_eq!(p.identity, Identity::Operator);
        assert_eq!(p.region, "eu-west-1");
        let [q] = p.queries.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(q.id(), Some("sqs_helloworld_length"));
        assert_eq!(q.return_data(), Some(true));
        let stat = q.metric_stat().unwrap();
        assert_eq!((stat.period(), stat.stat()), (Some(60), Some("Average")));
        assert_eq!(stat.unit(), Some(&StandardUnit::Count));
        let m = stat.metric().unwrap();
        assert_eq!(m.namespace(), Some("AWS/SQS"));
        assert_eq!(m.metric_name(), Some("ApproximateNumberOfMessagesVisible"));
        let d = &m.dimensions()[0];
        assert_eq!(
            (d.name(), d.value()),
            (Some("QueueName"), Some("helloworld"))
        );
    }

    #[test]
    fn role_region_and_expressions() {
        let p = plan(
            &spec(
                "roleArn: arn:aws:iam::222233334444:role/cw\nregion: us-east-2\nqueries:\n\
                 - {id: m1, metricStat: {metric: {namespace: N, metricName: M}, period: 300, stat: Sum}, returnData: false}\n\
                 - {id: e1, expression: m1 * 2, label: doubled}\n",
            ),
            Some("eu-west-1"),
        )
        .unwrap();
        assert_eq!(
            p.identity,
            Identity::AssumeRole {
                role_arn: "arn:aws:iam::222233334444:role/cw".into(),
                external_id: None
            }
        );
        assert_eq!(p.region, "us-east-2");
        assert_eq!(p.queries[0].return_data(), Some(false));
        assert_eq!(p.queries[0].metric_stat().unwrap().unit(), None);
        assert_eq!(p.queries[1].expression(), Some("m1 * 2"));
        assert_eq!(p.queries[1].label(), Some("doubled"));
        assert!(p.queries[1].metric_stat().is_none());
    }

    #[test]
    fn invalid_objects_are_refused_naming_the_field() {
        let stat = "metricStat: {metric: {namespace: N, metricName: M}, period: 60, stat: Average}";
        let cases: &[(&str, Option<&str>, SpecError)] = &[
            ("name: x", Some("r"), SpecError::NoQueries),
            (
                &format!("queries: [{{id: Q1, {stat}}}]"),
                Some("r"),
                SpecError::BadId {
                    index: 0,
                    id: "Q1".into(),
                },
            ),
            (
                &format!("queries: [{{{stat}}}]"),
                Some("r"),
                SpecError::BadId {
                    index: 0,
                    id: "".into(),
                },
            ),
            (
                &format!("queries: [{{id: a, {stat}}}, {{id: a, expression: a}}]"),
                Some("r"),
                SpecError::DuplicateId {
                    index: 1,
                    id: "a".into(),
                },
            ),
            (
                &format!("queries: [{{id: a, expression: x, {stat}}}]"),
                Some("r"),
                SpecError::Both { index: 0 },
            ),
            (
                "queries: [{id: a}]",
                Some("r"),
                SpecError::Neither { index: 0 },
            ),
            (
                "queries: [{id: a, metricStat: {metric: {metricName: M}, period: 60, stat: Average}}]",
                Some("r"),
                SpecError::Missing {
                    index: 0,
                    field: "metric.namespace",
                },
            ),
            (
                "queries: [{id: a, metricStat: {metric: {namespace: N}, period: 60, stat: Average}}]",
                Some("r"),
                SpecError::Missing {
                    index: 0,
                    field: "metric.metricName",
                },
            ),
            (
                "queries: [{id: a, metricStat: {metric: {namespace: N, metricName: M}, period: 60}}]",
                Some("r"),
                SpecError::Missing {
                    index: 0,
                    field: "stat",
                },
            ),
            (
                &format!("queries: [{{id: a, {stat}}}]"),
                None,
                SpecError::NoRegion,
            ),
        ];
        for (yaml, region, want) in cases {
            assert_eq!(plan(&spec(yaml), *region).as_ref(), Err(want), "{yaml}");
        }
        let bad_period = "queries: [{id: a, metricStat: {metric: {namespace: N, metricName: M}, period: 90, stat: Average}}]";
        let e = plan(&spec(bad_period), Some("r")).unwrap_err().to_string();
        assert!(
            e.starts_with("spec.queries[0].metricStat.period: ") && e.contains("multiple of 60"),
            "{e}"
        );
        let bad_unit = "queries: [{id: a, metricStat: {metric: {namespace: N, metricName: M}, period: 60, stat: Average, unit: Items}}]";
        let e = plan(&spec(bad_unit), Some("r")).unwrap_err().to_string();
        assert!(
            e.contains("unit \"Items\" is not one of") && e.contains("Count"),
            "{e}"
        );
    }

    #[test]
    fn stored_objects_missing_fields_still_read() {
        // The adapter's CRD had no schema: anything could be stored.
        let o: ExternalMetricSpec =
            serde_json::from_str(r#"{"queries":[{"metricStat":{}}]}"#).unwrap();
        assert_eq!(o.queries[0].metric_stat.as_ref().unwrap().period, 0);
        let o: ExternalMetricSpec = serde_json::from_str("{}").unwrap();
        assert!(o.queries.is_empty());
    }

    #[test]
    fn window_and_reading_as_the_adapter() {
        // 12:03:27 → 11:58:00 .. 12:03:00
        let now = 1_700_000_607; // 22:23:27 UTC
        assert_eq!(window(now), (now - 27 - 300, now - 27));
        assert_eq!(window(now - 27), (now - 27 - 300, now - 27));
        assert_eq!(reading(None), 0.0);
        assert_eq!(reading(Some(None)), 0.0);
        assert_eq!(reading(Some(Some(vec![]))), 0.0);
        assert_eq!(reading(Some(Some(vec![41.9, 7.0]))), 41.0);
        assert_eq!(reading(Some(Some(vec![-2.5]))), -2.0);
    }
}
