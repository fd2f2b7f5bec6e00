//! CloudWatch triggers that share an identity, region, endpoint, SDK settings and query
//! window ask in one `GetMetricData` call per polling interval: a call takes up to 500
//! queries, so N such triggers cost ⌈N/500⌉ calls where KEDA makes N.
//!
//! Each trigger holds a [`Member`] of its [`Batch`] for as long as its scaler lives. When a
//! member needs a value and the batch's last answer is older than the member's polling
//! interval (or lacks its query), the batch asks for every member's query at once, and the
//! others read that answer until it is as old as their own interval.
//!
//! Only metric queries are batched. Expressions stay one call each: a call may hold only one
//! Metrics Insights query, and math functions such as `METRICS()` see every query of the call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDataQuery, ScanBy};

use super::{AwsClients, Call, Identity, Operation, SdkSettings};
use crate::upstream::UpstreamError;

/// The operation every batch calls.
pub const GET_METRIC_DATA: Operation = Operation::new("cloudwatch", "GetMetricData");
/// AWS's limits on one `GetMetricData` call.
pub const MAX_QUERIES: usize = 500;
pub const MAX_DATAPOINTS: i64 = 100_800;

/// What every query of one call shares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub identity: Identity,
    pub region: String,
    pub endpoint: Option<String>,
    pub sdk: SdkSettings,
    /// The query window: `metricStatPeriod`, `metricCollectionTime`, `metricEndTimeOffset`.
    pub period: i64,
    pub collection_time: i64,
    pub end_time_offset: i64,
}

/// The values of one query: `None`, no result at all; `Some(None)`, a result without
/// values (as [`crate::scalers::aws_cloudwatch::MetricDataCall::first_values`]).
pub type Values = Option<Option<Vec<f64>>>;

/// Every batch with a member, by key.
#[derive(Default)]
pub struct Batches {
    batches: Mutex<HashMap<BatchKey, Weak<Batch>>>,
}

impl Batches {
    /// Joins `query` (its `id` is replaced) to the batch of `key`, made if none is alive.
    pub fn join(&self, key: BatchKey, query: MetricDataQuery) -> Member {
        let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        batches.retain(|_, b| b.strong_count() > 0);
        let batch = match batches.get(&key).and_then(Weak::upgrade) {
            Some(b) => b,
            None => {
                let b = Arc::new(Batch {
                    key: key.clone(),
                    queries: Mutex::default(),
                    last: tokio::sync::Mutex::new(None),
                });
                batches.insert(key, Arc::downgrade(&b));
                b
            }
        };
        let id = batch.add(query);
        Member { batch, id }
    }
}

/// The queries of one [`BatchKey`] and the last answer to them.
pub struct Batch {
    key: BatchKey,
    queries: Mutex<Queries>,
    last: tokio::sync::Mutex<Option<Answer>>,
}

/// Identical queries (two triggers reading one metric) are asked once.
#[derive(Default)]
struct Queries {
    /// By the query's content (without id): its id, how many members hold it, the query.
    by_content: BTreeMap<String, (String, usize, MetricDataQuery)>,
    next_id: u64,
}

struct Answer {
    at: Instant,
    values: HashMap<String, Result<Values, UpstreamError>>,
}

/// A trigger's place in its batch; it leaves when dropped.
pub struct Member {
    batch: Arc<Batch>,
    /// The query's id within the batch's calls.
    id: String,
}

fn content(query: &MetricDataQuery) -> String {
    let mut q = query.clone();
    q.id = None;
    format!("{q:?}")
}

impl Batch {
    fn add(&self, mut query: MetricDataQuery) -> String {
        let mut qs = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        let Queries {
            by_content,
            next_id,
        } = &mut *qs;
        let entry = by_content.entry(content(&query)).or_insert_with(|| {
            let id = format!("m{next_id}");
            *next_id += 1;
            query.id = Some(id.clone());
            (id, 0, query)
        });
        entry.1 += 1;
        entry.0.clone()
    }

    fn remove(&self, id: &str) {
        let mut qs = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        qs.by_content.retain(|_, (qid, refs, _)| {
            if qid == id {
                *refs -= 1;
            }
            *refs > 0
        });
    }

    fn all(&self) -> Vec<MetricDataQuery> {
        let qs = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        qs.by_content.values().map(|(_, _, q)| q.clone()).collect()
    }

    /// How many queries one call may hold for this window: 500, fewer when each query's
    /// datapoints would pass the call's 100,800.
    fn per_call(&self) -> usize {
        let points = (self.key.collection_time / self.key.period.max(1)).max(1);
        usize::try_from(MAX_DATAPOINTS / points)
            .unwrap_or(MAX_QUERIES)
            .clamp(1, MAX_QUERIES)
    }

    /// One call per chunk of every query, one after the other (a batch's calls share a rate
    /// limit anyway); each chunk's failure is its queries' answer.
    async fn ask(&self, aws: &AwsClients, window: (i64, i64)) -> Answer {
        let queries = self.all();
        let mut values = HashMap::new();
        for chunk in queries.chunks(self.per_call()) {
            match self.call(aws, window, chunk).await {
                Ok(mut got) => {
                    for q in chunk {
                        let id = q.id.clone().unwrap_or_default();
                        let v = got.remove(&id);
                        values.insert(id, Ok(v));
                    }
                }
                Err(e) => {
                    for q in chunk {
                        values.insert(q.id.clone().unwrap_or_default(), Err(e.clone()));
                    }
                }
            }
        }
        Answer {
            at: Instant::now(),
            values,
        }
    }

    async fn call(
        &self,
        aws: &AwsClients,
        window: (i64, i64),
        chunk: &[MetricDataQuery],
    ) -> Result<HashMap<String, Option<Vec<f64>>>, UpstreamError> {
        let k = &self.key;
        let client = aws
            .cloudwatch(&k.identity, &k.region, k.endpoint.as_deref(), &k.sdk)
            .await;
        let resource = format!(
            "{} CloudWatch metric(s) in {} (one GetMetricData call for the triggers sharing this identity)",
            chunk.len(),
            k.region
        );
        let to = Call {
            identity: &k.identity,
            region: &k.region,
            sdk: &k.sdk,
            operation: GET_METRIC_DATA,
            resource: &resource,
        };
        let out = aws
            .call(&to, chunk.len() as f64, || {
                client
                    .get_metric_data()
                    .start_time(DateTime::from_secs(window.0))
                    .end_time(DateTime::from_secs(window.1))
                    .scan_by(ScanBy::TimestampDescending)
                    .set_metric_data_queries(Some(chunk.to_vec()))
                    .send()
            })
            .await?;
        // The first result of each id, as a single query's first result.
        let mut by_id = HashMap::new();
        for r in out.metric_data_results.unwrap_or_default() {
            if let Some(id) = r.id {
                by_id.entry(id).or_insert(r.values);
            }
        }
        Ok(by_id)
    }
}

impl Member {
    /// This member's values, no older than `max_age`, over `window` (seconds since the
    /// epoch, computed by the caller for this batch's period and offsets). The bool is true
    /// when this reading made the batch's call.
    pub async fn values(
        &self,
        aws: &AwsClients,
        max_age: Duration,
        window: (i64, i64),
    ) -> (Result<Values, UpstreamError>, bool) {
        let mut last = self.batch.last.lock().await;
        if let Some(v) = last
            .as_ref()
            .filter(|a| a.at.elapsed() < max_age)
            .and_then(|a| a.values.get(&self.id))
        {
            return (v.clone(), false);
        }
        let answer = self.batch.ask(aws, window).await;
        let mine = answer.values.get(&self.id).cloned().unwrap_or(Ok(None));
        *last = Some(answer);
        (mine, true)
    }

    /// How many distinct queries the batch holds (tests).
    pub fn batch_size(&self) -> usize {
        let qs = self.batch.queries.lock().unwrap_or_else(|p| p.into_inner());
        qs.by_content.len()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.batch.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricStat};

    fn key(collection_time: i64, period: i64) -> BatchKey {
        BatchKey {
            identity: Identity::Operator,
            region: "eu-west-1".into(),
            endpoint: None,
            sdk: SdkSettings::default(),
            period,
            collection_time,
            end_time_offset: 0,
        }
    }

    fn query(queue: &str) -> MetricDataQuery {
        let metric = Metric::builder()
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .dimensions(Dimension::builder().name("QueueName").value(queue).build())
            .build();
        let stat = MetricStat::builder()
            .metric(metric)
            .period(300)
            .stat("Average")
            .build();
        MetricDataQuery::builder()
            .id("c1")
            .metric_stat(stat)
            .build()
    }

    #[test]
    fn members_share_a_batch_per_key_and_identical_queries_once() {
        let batches = Batches::default();
        let a = batches.join(key(300, 300), query("a"));
        let a2 = batches.join(key(300, 300), query("a"));
        let b = batches.join(key(300, 300), query("b"));
        let other = batches.join(key(600, 300), query("a"));
        assert_eq!(
            (a.id.as_str(), a2.id.as_str(), b.id.as_str()),
            ("m0", "m0", "m1")
        );
        assert_eq!(a.batch_size(), 2);
        assert_eq!(other.batch_size(), 1, "another window is another batch");
        drop(a);
        assert_eq!(b.batch_size(), 2, "m0 is still held by a2");
        drop(a2);
        assert_eq!(b.batch_size(), 1);
        let ids: Vec<_> = b.batch.all().into_iter().map(|q| q.id.unwrap()).collect();
        assert_eq!(ids, vec!["m1"]);
    }

    #[test]
    fn a_call_holds_at_most_500_queries_and_100800_datapoints() {
        let batches = Batches::default();
        for (collection, period, per_call) in [
            (300, 300, 500),
            (60, 1, 500),
            (86_400, 60, 70),
            (3_600 * 24 * 7, 1, 1),
        ] {
            let m = batches.join(key(collection, period), query("q"));
            assert_eq!(m.batch.per_call(), per_call, "{collection}/{period}");
        }
    }
}
