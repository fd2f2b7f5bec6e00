//! The `rabbitmq` scaler against a real RabbitMQ (Debian's rabbitmq-server with the
//! management plugin, started by `hack/rabbitmq.sh`): queue length over AMQP, AMQPS and the
//! management API, vhosts, regex listings, message rates, one AMQP connection per server
//! shared by triggers and remade after the server closed it, a server that is down, a
//! missing queue and a wrong password; and Deployments scaled 0 → N → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_scalers::{RawParams, Sample, Shared, TriggerInput, map};
use swell_testkit::{RabbitMq, Seen, unique_suffix, wait_until};

const WAIT: Duration = Duration::from_secs(60);

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "rabbitmq".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            ..Default::default()
        },
        polling_interval: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The test's own management API client (to declare, fill and purge queues).
struct Admin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Admin {
    fn new(r: &RabbitMq) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: r.http_base(),
            user: r.user.clone(),
            password: r.password.clone(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// A new queue `<prefix>-<unique>` in `vhost` (`%2F` for `/`) holding `n` messages.
    async fn queue(&self, vhost: &str, prefix: &str, n: usize) -> String {
        let q = format!("{prefix}-{}", unique_suffix());
        self.call(
            reqwest::Method::PUT,
            &format!("/api/queues/{vhost}/{q}"),
            Some(serde_json::json!({"durable": false})),
        )
        .await;
        self.publish(vhost, &q, n).await;
        q
    }

    async fn publish(&self, vhost: &str, q: &str, n: usize) {
        for i in 0..n {
            let body = serde_json::json!({"properties": {}, "routing_key": q, "payload": format!("m{i}"), "payload_encoding": "string"});
            let routed = self
                .call(
                    reqwest::Method::POST,
                    &format!("/api/exchanges/{vhost}/amq.default/publish"),
                    Some(body),
                )
                .await;
            assert_eq!(routed["routed"], true, "{routed}");
        }
    }

    async fn purge(&self, vhost: &str, q: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/queues/{vhost}/{q}/contents"),
            None,
        )
        .await;
    }

    /// The names of the AMQP connections Swell opened.
    async fn swell_connections(&self) -> Vec<String> {
        let all = self
            .call(reqwest::Method::GET, "/api/connections", None)
            .await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["client_properties"]["connection_name"] == "swell")
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn read(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<Sample, String> {
    let s = swell_scalers::build(&trigger(0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.map_err(|e| e.to_string())
}

async fn length(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, String> {
    read(meta, auth).await.map(|s| s.value)
}

/// Waits for a reading of `want`: the management API's counts follow the queue a
/// statistics interval late.
async fn reaches(meta: &[(&str, &str)], auth: &[(&str, &str)], want: f64) {
    wait_until(
        &format!("a reading of {want} from {meta:?}"),
        WAIT,
        || async {
            match length(meta, auth).await {
                Ok(v) if v == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// The same queue length over AMQP (vhost in the URL, or vhostName and credentials from
/// the TriggerAuthentication), AMQPS (the run's CA, unsafeSsl, the system roots alone,
/// which refuse it, and a client certificate with SASL EXTERNAL) and the management API
/// (likewise, with excludeUnacknowledged, and over HTTPS).
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_reads_the_queue_length() {
    let r = RabbitMq::shared();
    let admin = Admin::new(r);
    let q = admin.queue(&r.vhost, "len", 5).await;
    let creds = [
        ("username", r.user.as_str()),
        ("password", r.password.as_str()),
    ];
    let amqp = r.amqp_url(&r.vhost);
    let bare = format!("amqp://127.0.0.1:{}/", r.amqp_port);
    let http = format!(
        "http://{}:{}@127.0.0.1:{}/{}",
        r.user, r.password, r.http_port, r.vhost
    );
    let http_bare = format!("{}/", r.http_base());
    let qn = q.as_str();
    let vh = r.vhost.as_str();
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [(&'a str, &'a str)]);
    let cases: Vec<Case> = vec![
        (vec![("host", &amqp), ("queueName", qn)], &[]),
        (
            vec![("host", &bare), ("vhostName", vh), ("queueName", qn)],
            &creds,
        ),
        (vec![("host", &http), ("queueName", qn)], &[]),
        (
            vec![("host", &http_bare), ("vhostName", vh), ("queueName", qn)],
            &creds,
        ),
        (
            vec![
                ("host", &http),
                ("queueName", qn),
                ("excludeUnacknowledged", "true"),
            ],
            &[],
        ),
        (
            vec![
                ("host", &http),
                ("queueName", qn),
                ("protocol", "http"),
                ("timeout", "2s"),
            ],
            &[],
        ),
    ];
    // AMQP answers at once; the management API once its statistics caught up.
    assert_eq!(length(&cases[0].0, cases[0].1).await, Ok(5.0));
    for (meta, auth) in &cases {
        reaches(meta, auth, 5.0).await;
    }

    let ca = std::fs::read_to_string(&r.ca).unwrap();
    let amqps = format!(
        "amqps://{}:{}@127.0.0.1:{}/{}",
        r.user, r.password, r.amqps_port, r.vhost
    );
    let meta = [("host", amqps.as_str()), ("queueName", qn)];
    assert_eq!(
        length(&meta, &[("tls", "enable"), ("ca", ca.as_str())]).await,
        Ok(5.0)
    );
    let unsafe_meta = [
        ("host", amqps.as_str()),
        ("queueName", qn),
        ("unsafeSsl", "true"),
    ];
    assert_eq!(length(&unsafe_meta, &[("tls", "enable")]).await, Ok(5.0));
    let e = length(&meta, &[]).await.unwrap_err();
    assert!(
        e.contains(&format!(
            "rabbitmq amqps://127.0.0.1:{}/{}",
            r.amqps_port, r.vhost
        )) && e.contains("certificate"),
        "{e}"
    );
    assert!(!e.contains(&r.password), "{e}");

    // A client certificate and no password: SASL EXTERNAL logs in as its common name.
    let (cert, key) = (
        std::fs::read_to_string(&r.client_cert).unwrap(),
        std::fs::read_to_string(&r.client_key).unwrap(),
    );
    let external = format!("amqps://127.0.0.1:{}/{}", r.amqps_port, r.vhost);
    let mtls = [
        ("tls", "enable"),
        ("ca", ca.as_str()),
        ("cert", cert.as_str()),
        ("key", key.as_str()),
    ];
    assert_eq!(
        length(&[("host", &external), ("queueName", qn)], &mtls).await,
        Ok(5.0)
    );

    // The management API over HTTPS: the run's CA, unsafeSsl alone (as KEDA's HTTP client),
    // and the system roots alone, which refuse it.
    let https = format!(
        "https://{}:{}@127.0.0.1:{}/{}",
        r.user, r.password, r.https_port, r.vhost
    );
    let meta = [("host", https.as_str()), ("queueName", qn)];
    reaches(&meta, &[("tls", "enable"), ("ca", ca.as_str())], 5.0).await;
    let unsafe_meta = [
        ("host", https.as_str()),
        ("queueName", qn),
        ("unsafeSsl", "true"),
    ];
    reaches(&unsafe_meta, &[], 5.0).await;
    let e = length(&meta, &[]).await.unwrap_err();
    assert!(
        e.contains(&format!("rabbitmq https://127.0.0.1:{}", r.https_port))
            && e.contains("certificate"),
        "{e}"
    );
    assert!(!e.contains(&r.password), "{e}");

    // The queue is in vhost `swell`, not in `/`.
    let root = r.amqp_url("");
    let e = length(
        &[("host", &root), ("vhostName", "/"), ("queueName", qn)],
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        e.contains(&format!("NOT_FOUND - no queue '{q}' in vhost '/'")),
        "{e}"
    );
    let e = length(&[("host", &http_bare), ("queueName", qn)], &creds)
        .await
        .unwrap_err();
    assert!(
        e.contains("404 Not Found") && e.contains(&format!("/api/queues/%2F/{q}")),
        "{e}"
    );
}

/// useRegex sums, maximises or averages the matching queues (KEDA's integer average);
/// MessageRate reads the publish rate while messages arrive.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_combines_queues_and_reads_rates() {
    let r = RabbitMq::shared();
    let admin = Admin::new(r);
    let prefix = format!("rx-{}", unique_suffix());
    admin.queue(&r.vhost, &format!("{prefix}-a"), 2).await;
    admin.queue(&r.vhost, &format!("{prefix}-b"), 3).await;
    let http = format!(
        "http://{}:{}@127.0.0.1:{}/{}",
        r.user, r.password, r.http_port, r.vhost
    );
    let pattern = format!("^{prefix}-");
    for (op, want) in [("sum", 5.0), ("max", 3.0), ("avg", 2.0)] {
        let meta = [
            ("host", http.as_str()),
            ("queueName", pattern.as_str()),
            ("useRegex", "true"),
            ("operation", op),
        ];
        reaches(&meta, &[], want).await;
    }
    let meta = [
        ("host", http.as_str()),
        ("queueName", pattern.as_str()),
        ("useRegex", "true"),
        ("pageSize", "1"),
    ];
    let e = length(&meta, &[]).await.unwrap_err();
    assert!(
        e.contains("more queues than can be recovered at once"),
        "{e}"
    );

    let q = admin.queue(&r.vhost, "rate", 0).await;
    let meta = [
        ("host", http.as_str()),
        ("queueName", q.as_str()),
        ("mode", "MessageRate"),
        ("value", "1"),
        ("activationValue", "1000"),
    ];
    let rate = wait_until("a publish rate above 0", WAIT, || async {
        admin.publish(&r.vhost, &q, 20).await;
        match read(&meta, &[]).await {
            Ok(s) if s.value > 0.0 => Ok(s),
            other => Seen::Err(format!("{other:?}")),
        }
    })
    .await;
    // Neither the rate nor the queued messages are above activationValue 1000.
    assert!(!rate.active, "{rate:?}");
    let meta = [
        ("host", http.as_str()),
        ("queueName", q.as_str()),
        ("mode", "MessageRate"),
        ("value", "1"),
    ];
    assert!(
        read(&meta, &[]).await.unwrap().active,
        "messages are queued"
    );
}

/// Two triggers on one queue share one reading; a trigger on another queue of the same
/// server shares the AMQP connection. When the server closes that connection, the next
/// reading makes a new one.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_triggers_share_the_connection_and_the_reading() {
    let r = RabbitMq::shared();
    let admin = Admin::new(r);
    let (q1, q2) = (
        admin.queue(&r.vhost, "sh", 3).await,
        admin.queue(&r.vhost, "sh", 1).await,
    );
    let amqp = r.amqp_url(&r.vhost);
    let shared = Shared::default();
    let meta = |q: &str| {
        vec![
            ("host", amqp.clone()),
            ("queueName", q.to_string()),
            ("mode", "QueueLength".into()),
            ("value", "1".into()),
            ("activationValue", "2".into()),
        ]
    };
    let build = |i: usize, q: &str| {
        let m = meta(q);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (*k, v.as_str())).collect();
        swell_scalers::build(&trigger(i, &pairs, &[]), &shared).unwrap()
    };
    let (a, b, c) = (build(0, &q1), build(1, &q1), build(2, &q2));
    assert_eq!(a.metric_spec().name(), format!("s0-rabbitmq-{q1}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active, sb.value), (3.0, true, 3.0));
    let calls = || -> u64 {
        shared
            .upstream_calls
            .get_or_create(&vec![("scaler", "rabbitmq".to_string())])
            .get()
    };
    assert_eq!(calls(), 1, "the second trigger reused the first reading");
    let sc = c.sample().await.unwrap();
    assert_eq!((sc.value, sc.active), (1.0, false));
    assert_eq!(calls(), 2);
    assert_eq!(shared.rabbitmq.len(), 1, "one connection for the server");

    let before = wait_until("Swell's connection in the management API", WAIT, || async {
        let names = admin.swell_connections().await;
        if names.is_empty() {
            Err("none".to_string())
        } else {
            Ok(names)
        }
    })
    .await;
    for name in &before {
        let path = format!("/api/connections/{}", urlencode(name));
        admin.call(reqwest::Method::DELETE, &path, None).await;
    }
    // A fresh trigger (its own reading) on the shared connection's server.
    let fresh = TriggerInput {
        polling_interval: Duration::ZERO,
        ..trigger(3, &[("host", &amqp), ("queueName", &q2)], &[])
    };
    let d = swell_scalers::build(&fresh, &shared).unwrap();
    let value = wait_until(
        "a reading after the server closed the connection",
        WAIT,
        || async { d.sample().await.map(|s| s.value).map_err(|e| e.to_string()) },
    )
    .await;
    assert_eq!(value, 1.0);
    assert_eq!(shared.rabbitmq.len(), 1);
    wait_until("a new connection in the management API", WAIT, || async {
        let after = admin.swell_connections().await;
        if !after.is_empty() && after.iter().all(|n| !before.contains(n)) {
            Ok(())
        } else {
            Err(format!("{before:?} → {after:?}"))
        }
    })
    .await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A server nobody listens on and a wrong password, over AMQP and HTTP: the error names
/// the server and the cause, never the password.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_errors_name_the_server_and_the_cause() {
    let r = RabbitMq::shared();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for host in [
        format!("amqp://u:hunter2@127.0.0.1:{down}/"),
        format!("http://u:hunter2@127.0.0.1:{down}/"),
    ] {
        let e = length(&[("host", &host), ("queueName", "q")], &[])
            .await
            .unwrap_err();
        eprintln!("{e}");
        let scheme = &host[..4];
        assert!(
            e.contains(&format!("rabbitmq {scheme}")) && e.contains(&format!("127.0.0.1:{down}")),
            "{e}"
        );
        assert!(
            e.to_lowercase().contains("refused") && !e.contains("hunter2"),
            "{e}"
        );
    }
    let wrong = [
        ("username", r.user.as_str()),
        ("password", "not-the-password"),
    ];
    let amqp = format!("amqp://127.0.0.1:{}/{}", r.amqp_port, r.vhost);
    let e = length(&[("host", &amqp), ("queueName", "q")], &wrong)
        .await
        .unwrap_err();
    eprintln!("{e}");
    assert!(
        e.contains(&format!("rabbitmq {amqp}")) && e.contains("ACCESS_REFUSED"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let http = format!("{}/{}", r.http_base(), r.vhost);
    let e = length(&[("host", &http), ("queueName", "q")], &wrong)
        .await
        .unwrap_err();
    eprintln!("{e}");
    assert!(
        e.contains(&format!("rabbitmq {}", r.http_base())) && e.contains("401 Unauthorized"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
}

/// 0 → 3 → 0 over AMQP and over the management API: 6 messages at value 2 is 3 replicas;
/// purging the queue takes the Deployment back to 0. The host comes from the
/// TriggerAuthentication's Secret; a ScaledObject with a wrong password gets
/// KEDAScalerFailed naming the server and the cause, and stays put.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let r = RabbitMq::shared();
    cluster
        .with_namespace("sc-rabbitmq", |ns| async move {
            let admin = Admin::new(r);
            let (qa, qh) = (admin.queue(&r.vhost, "e2e-amqp", 0).await, admin.queue(&r.vhost, "e2e-http", 0).await);
            let auth = |name: &str, host: &str| {
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{host: \"{host}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: host, name: {name}, key: host}}\n"
                )
            };
            let so = |name: &str, auth: &str, queue: &str| {
                format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 10
  triggers:
  - type: rabbitmq
    metadata: {{queueName: "{queue}", mode: QueueLength, value: "2"}}
    authenticationRef: {{name: {auth}}}
"#
                )
            };
            let http = format!("http://{}:{}@127.0.0.1:{}/{}", r.user, r.password, r.http_port, r.vhost);
            let wrong = format!("amqp://{}:not-the-password@127.0.0.1:{}/{}", r.user, r.amqp_port, r.vhost);
            ns.apply(cluster, &auth("by-amqp", &r.amqp_url(&r.vhost))).unwrap();
            ns.apply(cluster, &auth("by-http", &http)).unwrap();
            ns.apply(cluster, &auth("wrong", &wrong)).unwrap();
            for name in ["amqp", "http", "wrong"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
            }
            ns.apply(cluster, &so("amqp", "by-amqp", &qa)).unwrap();
            ns.apply(cluster, &so("http", "by-http", &qh)).unwrap();
            ns.apply(cluster, &so("wrong", "wrong", &qa)).unwrap();

            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            for name in ["amqp", "http"] {
                wait_condition(&ns, name, "Ready", "True").await;
                wait_condition(&ns, name, "Active", "False").await;
            }
            let e = wait_event(&ns, "KEDAScalerFailed", "ACCESS_REFUSED").await;
            assert!(
                e.contains(&format!("rabbitmq amqp://127.0.0.1:{}/{}", r.amqp_port, r.vhost))
                    && !e.contains("not-the-password"),
                "{e}"
            );

            admin.publish(&r.vhost, &qa, 6).await;
            admin.publish(&r.vhost, &qh, 6).await;
            wait_replicas(&ns, "amqp", 3).await;
            wait_replicas(&ns, "http", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"rabbitmq\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            admin.purge(&r.vhost, &qa).await;
            admin.purge(&r.vhost, &qh).await;
            wait_replicas(&ns, "amqp", 0).await;
            wait_replicas(&ns, "http", 0).await;
        })
        .await;
}
