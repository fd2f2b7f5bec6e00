//! `azure-blob`: scale on the number of blobs in an Azure Storage container, as KEDA's
//! `azure_blob_scaler.go`: a hierarchical listing (`blobDelimiter`, default `/`) counting the
//! blobs directly under `blobPrefix` + delimiter (not the virtual folders), a flat one with
//! `recursive: true`, or with `globPattern` a flat listing under the prefix counting the
//! names that match; every page followed (`NextMarker`). One storage client per account.

mod glob;

use std::time::Duration;

use swell_scaling::naming::metric_name;

use self::glob::Glob;
use crate::azure_storage::{self as az, Account, Service};
use crate::metadata::shown;
use crate::upstream::UpstreamError;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput};

const CONTAINER: Field = Field::new("blobContainerName");
const BLOB_COUNT: Field = Field::new("blobCount");
const ACTIVATION: Field = Field::new("activationBlobCount");
const DELIMITER: Field = Field::new("blobDelimiter");
const PREFIX: Field = Field::new("blobPrefix");
const RECURSIVE: Field = Field::new("recursive");
const GLOB: Field = Field::new("globPattern");

/// Every parameter of its own (the account's are [`az::ACCOUNT_FIELDS`]).
pub const FIELDS: &[Field] = &[
    CONTAINER, BLOB_COUNT, ACTIVATION, DELIMITER, PREFIX, RECURSIVE, GLOB,
];

/// How the blobs are listed and counted.
#[derive(Clone, Debug)]
struct Listing {
    /// `blobPrefix` with the delimiter appended (KEDA's `Validate`); empty: none.
    prefix: String,
    /// Empty: a flat listing (`recursive`, or with a glob).
    delimiter: String,
    glob: Option<(String, Glob)>,
}

pub struct AzureBlobScaler {
    /// `None` only when the connection is known at run time alone (offline `swell check`).
    account: Option<Account>,
    container: String,
    listing: Listing,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl AzureBlobScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<AzureBlobScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> AzureBlobScaler {
        let container = p.string(CONTAINER);
        let target = p.or::<i64>(BLOB_COUNT, "a whole number", 5);
        if target < 1 {
            p.error(
                BLOB_COUNT.name,
                format!(
                    "must be at least 1 (the HPA's target is a positive quantity), got {target}"
                ),
            );
        }
        let activation = p.or::<i64>(ACTIVATION, "a whole number", 0);
        let listing = listing(p);
        let account = az::trigger_account(input, p, Service::Blob);
        AzureBlobScaler {
            account,
            metric: metric_name(input.index, &format!("azure-blob-{container}")),
            container,
            listing,
            target: target as f64,
            activation: activation as f64,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.account.hash(&mut h);
        let l = &self.listing;
        let glob = l.glob.as_ref().map(|(p, _)| p.as_str()).unwrap_or_default();
        format!(
            "azure-blob|{:x}|{}|{:?}|{:?}|{glob:?}",
            h.finish(),
            self.container,
            l.prefix,
            l.delimiter
        )
    }

    async fn read(&self) -> Result<f64, UpstreamError> {
        let Some(account) = &self.account else {
            return Err(UpstreamError::new(
                crate::UpstreamKind::Other,
                "azure-blob: the connection is not known",
            ));
        };
        let client = self.shared.azure.get(&self.shared.http, account)?;
        count_blobs(&client, &self.container, &self.listing).await
    }
}

/// KEDA's `Validate`: `recursive` lists flat, the prefix gets the delimiter, a leading `/`
/// of the glob is dropped (blob names never start with one).
fn listing(p: &mut Params<'_>) -> Listing {
    let mut delimiter = p.opt_string(DELIMITER).unwrap_or_else(|| "/".into());
    let mut prefix = p.opt_string(PREFIX).unwrap_or_default();
    if p.bool(RECURSIVE, false) {
        delimiter.clear();
    }
    let glob = p.opt_string(GLOB).and_then(|g| {
        let pattern = g.strip_prefix('/').unwrap_or(&g).to_string();
        match Glob::compile(&pattern) {
            Ok(c) => Some((pattern, c)),
            Err(why) => {
                p.error(
                    GLOB.name,
                    format!("{} is not a glob pattern: {why}", shown(&g)),
                );
                None
            }
        }
    });
    if !prefix.is_empty() && !delimiter.is_empty() {
        prefix.push_str(&delimiter);
    }
    // A glob is matched against a flat listing under the prefix.
    if glob.is_some() {
        delimiter.clear();
    }
    Listing {
        prefix,
        delimiter,
        glob,
    }
}

/// List Blobs over every page: the blobs of each (not the `BlobPrefix` folders), or those
/// whose name matches the glob.
async fn count_blobs(
    client: &az::StorageClient,
    container: &str,
    l: &Listing,
) -> Result<f64, UpstreamError> {
    let path = az::encode(container);
    let mut marker = String::new();
    let mut count = 0u64;
    loop {
        let mut query = vec![("comp", "list"), ("restype", "container")];
        for (k, v) in [
            ("prefix", &l.prefix),
            ("delimiter", &l.delimiter),
            ("marker", &marker),
        ] {
            if !v.is_empty() {
                query.push((k, v.as_str()));
            }
        }
        let resp = client
            .send(reqwest::Method::GET, &path, &query, &[], Vec::new())
            .await
            .map_err(|mut e| {
                e.message = format!("azure-blob: listing the container's blobs: {}", e.message);
                e
            })?;
        let body = resp.text().await.map_err(|e| {
            UpstreamError::reqwest(
                &e,
                format!(
                    "azure-blob {}{path}: reading the listing: {e}",
                    client.url()
                ),
            )
        })?;
        let page = parse_page(&body).ok_or_else(|| {
            UpstreamError::bad_response(format!(
                "azure-blob {}{path}: the listing is not an EnumerationResults",
                client.url()
            ))
        })?;
        count += match &l.glob {
            Some((_, g)) => page.names.iter().filter(|n| g.matches(n)).count(),
            None => page.names.len(),
        } as u64;
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = m,
            _ => return Ok(count as f64),
        }
    }
}

/// One page of List Blobs.
#[derive(Debug, PartialEq)]
struct Page {
    /// The names of its `<Blob>` items (not its `<BlobPrefix>` folders).
    names: Vec<String>,
    next_marker: Option<String>,
}

/// Reads a List Blobs answer; `None` when it is not one.
fn parse_page(xml: &str) -> Option<Page> {
    if !xml.contains("<EnumerationResults") {
        return None;
    }
    let mut names = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Blob>") {
        rest = &rest[i + "<Blob>".len()..];
        let end = rest.find("</Blob>").unwrap_or(rest.len());
        let item = &rest[..end];
        names.push(blob_name(item)?);
        rest = &rest[end..];
    }
    Some(Page {
        names,
        next_marker: az::xml_text(xml, "NextMarker"),
    })
}

/// A `<Blob>`'s `<Name>`, percent-decoded when the service marks it `Encoded="true"`.
fn blob_name(item: &str) -> Option<String> {
    if let Some(plain) = az::xml_text(item, "Name") {
        return Some(plain);
    }
    let open = "<Name Encoded=\"true\">";
    let start = item.find(open)? + open.len();
    let end = item[start..].find("</Name>")? + start;
    let text = az::xml_unescape(&item[start..end]);
    Some(
        percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[async_trait::async_trait]
impl Scaler for AzureBlobScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "azure-blob",
                &self.coalesce_key(),
                self.polling,
                self.activation,
                || self.read(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }
}

#[cfg(test)]
mod tests;
