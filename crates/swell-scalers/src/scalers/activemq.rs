//! `activemq`: an ActiveMQ "Classic" queue's `QueueSize`, read over Jolokia as KEDA's
//! `activemq_scaler.go` reads it: the URL from `managementEndpoint`, `brokerName` and
//! `destinationName` in KEDA's template (a Go html/template, so the values are HTML-escaped
//! as KEDA escapes them), or from `restAPITemplate`.

use std::time::Duration;

use swell_scaling::naming::metric_name;

use super::artemis::{count, endpoint, host_as_written, parse_query};
use super::jolokia::Read;
use crate::http::HttpClientKey;
use crate::metadata::shown;
use crate::tls::Secret;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const MANAGEMENT_ENDPOINT: Field = Field::new("managementEndpoint")
    .hint("host:port of the broker's Jolokia (web console), e.g. activemq:8161");
const DESTINATION_NAME: Field = Field::new("destinationName").hint("the queue's name");
const BROKER_NAME: Field = Field::new("brokerName").hint("the broker's brokerName in activemq.xml");
const USERNAME: Field = Field::new("username").from(&[Source::Auth, Source::Metadata]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);
const CORS_HEADER: Field = Field::new("corsHeader");
const REST_API_TEMPLATE: Field = Field::new("restAPITemplate");
const TARGET: Field = Field::new("targetQueueSize");
const ACTIVATION: Field = Field::new("activationTargetQueueSize");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    MANAGEMENT_ENDPOINT,
    DESTINATION_NAME,
    BROKER_NAME,
    USERNAME,
    PASSWORD,
    CORS_HEADER,
    REST_API_TEMPLATE,
    TARGET,
    ACTIVATION,
];

/// KEDA's `defaultActiveMQRestAPITemplate`.
pub const DEFAULT_TEMPLATE: &str = "http://{{.ManagementEndpoint}}/api/jolokia/read/org.apache.activemq:type=Broker,brokerName={{.BrokerName}},destinationType=Queue,destinationName={{.DestinationName}}/QueueSize";

/// Where the queue is: from the fields, or read back from `restAPITemplate` as KEDA does.
#[derive(Debug, Default, PartialEq)]
pub struct Names {
    pub endpoint: String,
    pub broker: String,
    pub destination: String,
}

pub struct ActiveMqScaler {
    /// `None` only when a parameter is known at run time alone (offline `swell check`).
    read: Option<Read>,
    pub names: Names,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl ActiveMqScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<ActiveMqScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> ActiveMqScaler {
        let (template, names) = match p.opt_url(REST_API_TEMPLATE, true) {
            // A template that is not an http(s) URL is reported as such already.
            Some(t) if !(t.starts_with("http://") || t.starts_with("https://")) => {
                (t, Names::default())
            }
            Some(t) => {
                let names = template_names(&t).unwrap_or_else(|why| {
                    p.error(
                        "restAPITemplate",
                        format!("unable to parse ActiveMQ restAPITemplate: {why}"),
                    );
                    Names::default()
                });
                (t, names)
            }
            None => {
                let names = Names {
                    endpoint: endpoint(p, MANAGEMENT_ENDPOINT),
                    destination: p.string(DESTINATION_NAME),
                    broker: p.string(BROKER_NAME),
                };
                (DEFAULT_TEMPLATE.to_string(), names)
            }
        };
        let username = p.string(USERNAME);
        let password = p.string(PASSWORD);
        let target = count(p, TARGET, 10, 1);
        let activation = count(p, ACTIVATION, 0, i64::MIN);
        let origin = p
            .opt_string(CORS_HEADER)
            .unwrap_or_else(|| format!("http://{}", names.endpoint));
        let url = match execute(&template, &names) {
            Ok(url) => reqwest::Url::parse(&url)
                .ok()
                .filter(reqwest::Url::has_host)
                .or_else(|| {
                    // A missing endpoint is reported as missing already.
                    if !names.endpoint.is_empty() {
                        let field = if template == DEFAULT_TEMPLATE {
                            "managementEndpoint"
                        } else {
                            "restAPITemplate"
                        };
                        p.error(
                            field,
                            format!("makes {} which is not a URL; give host:port", shown(&url)),
                        );
                    }
                    None
                }),
            Err(why) => {
                p.error("restAPITemplate", why);
                None
            }
        };
        let complete = !p.is_deferred("username") && !p.is_deferred("password");
        let read = url.filter(|_| complete).map(|url| Read {
            scaler: "activemq",
            url,
            username,
            password: Secret::new(password),
            origin,
            json_content_type: true,
            // KEDA's ActiveMQ client: the global timeout, certificates checked.
            client: HttpClientKey {
                ..Default::default()
            },
        });
        ActiveMqScaler {
            read,
            metric: metric_name(input.index, &format!("activemq-{}", names.destination)),
            names,
            target,
            activation,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    pub fn url(&self) -> Option<String> {
        self.read.as_ref().map(|r| r.url.to_string())
    }

    pub fn origin(&self) -> Option<&str> {
        self.read.as_ref().map(|r| r.origin.as_str())
    }
}

/// KEDA's reading of `restAPITemplate`: the host, and `brokerName` and `destinationName`
/// from the decoded path between its first and second `:` up to the next `/`, read as a
/// query with `,` for `&`.
pub fn template_names(template: &str) -> Result<Names, String> {
    let endpoint = host_as_written(template)?;
    let url = reqwest::Url::parse(template).map_err(|e| format!("not a URL ({e})"))?;
    // Go's u.Path is the decoded path.
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    let object = path
        .split(':')
        .nth(1)
        .ok_or("its path has no MBean name (no ':')")?;
    let object = object.split('/').next().unwrap_or_default();
    let values = parse_query(&object.replace(',', "&"))?;
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let names = Names {
        endpoint,
        destination: get("destinationName"),
        broker: get("brokerName"),
    };
    if names.destination.is_empty() {
        return Err("no destinationName is given".into());
    }
    if names.broker.is_empty() {
        return Err(format!("no brokerName given: {template}"));
    }
    Ok(names)
}

/// The template executed as KEDA's Go html/template executes it: `{{.ManagementEndpoint}}`,
/// `{{.BrokerName}}` and `{{.DestinationName}}` (spaces inside the braces allowed) replaced
/// by their values, HTML-escaped; any other action is refused.
pub fn execute(template: &str, n: &Names) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or("error parsing template: unclosed action ({{ without }})")?;
        let value = match after[..end].trim() {
            ".ManagementEndpoint" => &n.endpoint,
            ".BrokerName" => &n.broker,
            ".DestinationName" => &n.destination,
            other => {
                return Err(format!(
                    "{{{{{other}}}}} is not supported; use {{{{.ManagementEndpoint}}}}, {{{{.BrokerName}}}} or {{{{.DestinationName}}}}"
                ));
            }
        };
        out.push_str(&html_escape(value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Go html/template's escaping of a value in HTML text.
fn html_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait::async_trait]
impl Scaler for ActiveMqScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let Some(read) = &self.read else {
            return Err(ScalerError::Internal(
                "activemq: the endpoint is not known".into(),
            ));
        };
        let key = read.coalesce_key();
        self.shared
            .sample_value("activemq", &key, self.polling, self.activation, || {
                read.get(&self.shared)
            })
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        self.read.as_ref().map(Read::coalesce_key)
    }
}

#[cfg(test)]
mod tests;
