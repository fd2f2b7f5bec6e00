use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};

use serde_json::json;

use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn input(index: usize, meta: Pairs, auth: Pairs) -> TriggerInput {
    TriggerInput {
        index,
        type_: "nats-jetstream".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn scaler(index: usize, meta: Pairs, auth: Pairs) -> Result<NatsJetStreamScaler, ScalerError> {
    NatsJetStreamScaler::new(&input(index, meta, auth), &Shared::default())
}

/// KEDA's `testNATSJetStreamMetadata`: metadata, TriggerAuthentication parameters, error.
#[test]
fn parses_keda_metadata_table() {
    const EP: (&str, &str) = ("natsServerMonitoringEndpoint", "nats.nats:8222");
    const ACC: (&str, &str) = ("account", "$G");
    const S: (&str, &str) = ("stream", "mystream");
    const C: (&str, &str) = ("consumer", "pull_consumer");
    let table: &[(Pairs, Pairs, bool)] = &[
        (
            &[
                ("natsServerMonitoringEndpoint", "localhost:8222"),
                ACC,
                ("accountID", "$G"),
                S,
                C,
                ("useHttps", "false"),
            ],
            &[],
            false,
        ),
        (&[EP, ACC, S, C, ("useHttps", "true")], &[], false),
        (
            &[
                ("natsServerMonitoringEndpoint", "localhost:8222"),
                ("accountID", "$G"),
                S,
                C,
                ("useHttps", "false"),
            ],
            &[],
            false,
        ),
        (&[], &[], true),
        (&[EP, S, C], &[], true),
        (&[EP, ACC, C], &[], true),
        (&[EP, ACC, S], &[], true),
        (&[ACC, S], &[], true),
        (
            &[EP, ACC, S, C, ("activationLagThreshold", "10")],
            &[],
            false,
        ),
        (&[EP, ACC, S, C, ("activationLagThreshold", "Y")], &[], true),
        (&[ACC, S, C], &[EP], false),
        (&[ACC, S, C], &[("natsServerMonitoringEndpoint", "")], true),
        (&[EP, ACC, S, C, ("useHttps", "error")], &[], true),
        (&[ACC, S, C, ("lagThreshold", "6")], &[EP], false),
        (&[ACC, S, C, ("lagThreshold", "Y")], &[EP], true),
        (&[S, C], &[ACC, EP], false),
        (&[S, C], &[EP], true),
    ];
    for (i, (meta, auth, is_error)) in table.iter().enumerate() {
        let got = scaler(0, meta, auth);
        assert_eq!(got.is_err(), *is_error, "case {i}: {:?}", got.err());
    }
}

/// KEDA's `natsJetStreamMetricIdentifiers`, the default threshold and what is read.
#[test]
fn names_the_metric_as_keda() {
    let meta: Pairs = &[
        ("natsServerMonitoringEndpoint", "localhost:8222"),
        ("account", "$G"),
        ("stream", "mystream"),
        ("consumer", "pull_consumer"),
    ];
    for (index, name) in [
        (0, "s0-nats-jetstream-mystream"),
        (1, "s1-nats-jetstream-mystream"),
    ] {
        let s = scaler(index, meta, &[]).unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: name.into(),
                target: 10.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!((s.activation, s.account_id.as_str()), (0, "$G"));
    }
    let dotted: Pairs = &[
        ("natsServerMonitoringEndpoint", "localhost:8222"),
        ("accountID", "ABC"),
        ("stream", "orders.v1"),
        ("consumer", "c"),
        ("lagThreshold", "6"),
        ("activationLagThreshold", "-1"),
    ];
    let s = scaler(2, dotted, &[]).unwrap();
    assert_eq!(s.metric_spec().name(), "s2-nats-jetstream-orders-v1");
    assert_eq!((s.lag_threshold, s.activation), (6, -1));
    assert_eq!((s.account.as_str(), s.account_id.as_str()), ("", "ABC"));
}

/// Swell's own refusals: a threshold the HPA refuses, a fraction KEDA's int64 refuses, an
/// endpoint that is a URL rather than host:port; each names its field.
#[test]
fn refuses_what_cannot_work() {
    let base = |extra: (&'static str, &'static str)| {
        vec![
            ("natsServerMonitoringEndpoint", "nats:8222"),
            ("account", "$G"),
            ("stream", "s"),
            ("consumer", "c"),
            extra,
        ]
    };
    for (extra, want) in [
        (
            ("lagThreshold", "0"),
            "triggers[0].metadata.lagThreshold: must be greater than 0",
        ),
        (
            ("lagThreshold", "2.5"),
            "triggers[0].metadata.lagThreshold: \"2.5\" is not a whole number",
        ),
        (
            ("natsServerMonitoringEndpoint", "http://nats:8222"),
            "metadata.natsServerMonitoringEndpoint: \"http://nats:8222\" is not host:port",
        ),
        (
            ("natsServerMonitoringEndpoint", "nats:8222/jsz"),
            "is not host:port",
        ),
    ] {
        let e = scaler(0, &base(extra), &[]).err().unwrap().to_string();
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let e = scaler(0, &[("stream", "s"), ("consumer", "c")], &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("natsServerMonitoringEndpoint): required"), "{e}");
    assert!(e.contains("no account name or id given"), "{e}");
}

/// KEDA's `TestGetNATSJetStreamMonitoringURL` and its node URL tests.
#[test]
fn builds_urls_as_keda() {
    let e = Endpoint::new(false, "nats.nats:8222", "$G");
    assert_eq!(
        e.jsz(),
        "http://nats.nats:8222/jsz?acc=%24G&config=true&consumers=true"
    );
    let e = Endpoint::new(true, "nats.nats:8222", "$G");
    assert_eq!(
        e.jsz(),
        "https://nats.nats:8222/jsz?acc=%24G&config=true&consumers=true"
    );
    let e = Endpoint::new(false, "nats.nats:8222", "myaccount&consumers=false");
    assert_eq!(
        e.jsz(),
        "http://nats.nats:8222/jsz?acc=myaccount%26consumers%3Dfalse&config=true&consumers=true"
    );
    let e = Endpoint::new(false, "localhost:8222", "$G");
    assert_eq!(
        e.jsz_on_host("leader.nats.svc"),
        "http://leader.nats.svc:8222/jsz?acc=%24G&config=true&consumers=true"
    );
    assert_eq!(
        e.jsz_by_node("leader"),
        "http://leader.localhost:8222/jsz?acc=%24G&config=true&consumers=true"
    );
    assert_eq!(e.varz(None), "http://localhost:8222/varz");
    assert_eq!(e.varz(Some("10.0.0.7")), "http://10.0.0.7:8222/varz");
    let no_port = Endpoint::new(false, "nats", "a b");
    assert_eq!(no_port.varz(Some("n1")), "http://n1/varz");
    assert_eq!(
        no_port.jsz(),
        "http://nats/jsz?acc=a+b&config=true&consumers=true"
    );
}

/// A monitoring server on loopback: `answer(local address, path)` gives the status and
/// body; every request's local address and path is recorded.
struct Mock {
    seen: Arc<StdMutex<Vec<(SocketAddr, String)>>>,
}

type Answer = Arc<dyn Fn(SocketAddr, &str) -> (u16, String) + Send + Sync>;

impl Mock {
    fn start(listeners: Vec<std::net::TcpListener>, answer: Answer) -> Mock {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let seen = Arc::new(StdMutex::new(Vec::new()));
        for l in listeners {
            l.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                while let Ok((mut tcp, _)) = l.accept().await {
                    let local = tcp.local_addr().unwrap();
                    let (seen, answer) = (seen.clone(), answer.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let target = text.split(' ').nth(1).unwrap_or_default().to_string();
                        seen.lock().unwrap().push((local, target.clone()));
                        let (status, body) = answer(local, &target);
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tcp.write_all(reply.as_bytes()).await;
                    });
                }
            });
        }
        Mock { seen }
    }

    fn take(&self) -> Vec<(SocketAddr, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn good(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("natsServerMonitoringEndpoint", endpoint.to_string()),
        ("account", "$G".into()),
        ("stream", "mystream".into()),
        ("consumer", "pull_consumer".into()),
        ("useHttps", "false".into()),
        ("activationLagThreshold", "10".into()),
    ]
}

fn build(meta: &[(&'static str, String)]) -> NatsJetStreamScaler {
    let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
    scaler(0, &pairs, &[]).unwrap()
}

fn jsz(cluster_size: i64, streams: serde_json::Value) -> String {
    json!({
        "meta_cluster": {"cluster_size": cluster_size},
        "account_details": [{"name": "$G", "id": "$G", "stream_detail": streams}]
    })
    .to_string()
}

/// A value and activity, or what the error says.
type Reading = Result<(f64, bool), &'static str>;

/// KEDA's `testNATSJetStreamMockResponses` on a single server, and answers that are not
/// the monitoring JSON.
#[tokio::test]
async fn reads_a_single_server_as_keda() {
    let cases: &[(&str, String, Reading)] = &[
        (
            "no messages waiting",
            jsz(
                0,
                json!([{"name": "mystream", "consumer_detail": [{"name": "pull_consumer"}]}]),
            ),
            Ok((0.0, false)),
        ),
        (
            "messages waiting",
            jsz(
                0,
                json!([{"name": "mystream", "consumer_detail": [{"name": "pull_consumer", "num_pending": 100}]}]),
            ),
            Ok((100.0, true)),
        ),
        (
            "pending and unacknowledged",
            jsz(
                0,
                json!([{"name": "mystream", "state": {"last_seq": 9999}, "consumer_detail": [{"name": "pull_consumer", "num_pending": 7, "num_ack_pending": 3}]}]),
            ),
            Ok((10.0, false)),
        ),
        (
            "consumer missing",
            jsz(
                0,
                json!([{"name": "mystream", "state": {"last_seq": 1000}, "consumer_detail": [{"name": "pull_consumer_bad", "num_pending": 100}]}]),
            ),
            Err("consumer \"pull_consumer\" not found in stream \"mystream\""),
        ),
        (
            "stream missing",
            jsz(
                0,
                json!([{"name": "mystreamBad", "consumer_detail": [{"name": "pull_consumer", "num_pending": 100}]}]),
            ),
            Err("stream \"mystream\" not found in account \"$G\""),
        ),
        (
            "garbage",
            "{invalidJSON}".into(),
            Err("not the NATS monitoring JSON"),
        ),
        ("null", "null".into(), Err("not the NATS monitoring JSON")),
    ];
    for (name, body, want) in cases {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let body = body.clone();
        let _mock = Mock::start(vec![l], Arc::new(move |_, _| (200, body.clone())));
        let s = build(&good(&addr.to_string()));
        let got = s.sample().await.map(|s| (s.value, s.active));
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, *want, "{name}"),
            (Err(e), Err(want)) => {
                let e = e.to_string();
                assert!(
                    e.contains(want)
                        && e.contains(&format!("nats-jetstream GET http://{addr}/jsz?acc=%24G"))
                        || e.contains(want) && e.contains(&addr.to_string()),
                    "{name}: {e}"
                );
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let _mock = Mock::start(vec![l], Arc::new(|_, _| (404, "404 page not found".into())));
    let e = build(&good(&addr.to_string())).sample().await.unwrap_err();
    assert_eq!(e.upstream().map(|u| u.kind), Some(K::NotFound));
    assert!(e.to_string().contains("returned 404"), "{e}");
}

/// KEDA's "Unresolvable nats endpoint" and a port nobody listens on.
#[tokio::test]
async fn says_why_the_server_cannot_be_reached() {
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = build(&good(&down.to_string())).sample().await.unwrap_err();
    assert_eq!(e.upstream().map(|u| u.kind), Some(K::Connect), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("nats-jetstream GET http://{down}/jsz")),
        "{e}"
    );
    let e = build(&good("asdf32423fdsafdasdf.invalid:8222"))
        .sample()
        .await
        .unwrap_err();
    assert_eq!(e.upstream().map(|u| u.kind), Some(K::Connect), "{e}");
}

/// Three listeners on 127.0.0.1-3 with one port, as three pods of a cluster.
fn three_nodes() -> Vec<std::net::TcpListener> {
    for _ in 0..20 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        let mut all = vec![a];
        all.extend(
            ["127.0.0.2", "127.0.0.3"]
                .iter()
                .filter_map(|ip| std::net::TcpListener::bind((*ip, port)).ok()),
        );
        if all.len() == 3 {
            return all;
        }
    }
    panic!("no port free on 127.0.0.1-3");
}

/// KEDA's clustered cases: the first answer has the stream but not the consumer (a node
/// that is not its leader), so every advertised node is asked its name and its `/jsz`
/// until the leader (n3 on 127.0.0.3) names itself; the next reading goes to the leader
/// alone; when the leader moves, it is found again; a leader that fails is forgotten;
/// with no leader anywhere the reading
/// fails, as KEDA's "consumer missing (clustered)" case.
#[tokio::test]
async fn finds_the_consumer_leader_on_a_cluster() {
    let listeners = three_nodes();
    let port = listeners[0].local_addr().unwrap().port();
    let leader = Arc::new(StdMutex::new("n3".to_string()));
    let l2 = leader.clone();
    let n2_fails = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fails = n2_fails.clone();
    let answer: Answer = Arc::new(move |local, path| {
        let me = format!("n{}", local.ip().to_string().rsplit('.').next().unwrap());
        let leader = l2.lock().unwrap().clone();
        if me == "n2" && fails.load(std::sync::atomic::Ordering::SeqCst) {
            return (503, "{}".into());
        }
        if path == "/varz" {
            let urls: Vec<String> = (1..=3).map(|i| format!("127.0.0.{i}:4222")).collect();
            return (
                200,
                json!({"server_name": me, "connect_urls": urls}).to_string(),
            );
        }
        let consumers = if me == leader {
            json!([{"name": "pull_consumer", "num_pending": 100, "cluster": {"leader": leader}}])
        } else {
            json!([])
        };
        (
            200,
            jsz(
                3,
                json!([{"name": "mystream", "consumer_detail": consumers}]),
            ),
        )
    });
    let mock = Mock::start(listeners, answer);
    let s = build(&good(&format!("127.0.0.1:{port}")));
    let read = || async { s.read().await.map_err(|e| e.to_string()) };
    assert_eq!(read().await, Ok(100.0));
    let q = "/jsz?acc=%24G&config=true&consumers=true";
    let asked: Vec<String> = mock
        .take()
        .iter()
        .map(|(a, p)| format!("{} {p}", a.ip()))
        .collect();
    assert_eq!(
        asked,
        [
            format!("127.0.0.1 {q}"),
            "127.0.0.1 /varz".into(),
            "127.0.0.1 /varz".into(),
            format!("127.0.0.1 {q}"),
            "127.0.0.2 /varz".into(),
            format!("127.0.0.2 {q}"),
            "127.0.0.3 /varz".into(),
            format!("127.0.0.3 {q}"),
        ]
    );
    assert_eq!(read().await, Ok(100.0));
    let asked: Vec<String> = mock
        .take()
        .iter()
        .map(|(a, p)| format!("{} {p}", a.ip()))
        .collect();
    assert_eq!(
        asked,
        [format!("127.0.0.3 {q}")],
        "the remembered leader alone"
    );

    *leader.lock().unwrap() = "n2".into();
    assert_eq!(read().await, Ok(100.0));
    let last = mock.take().last().map(|(a, _)| a.ip().to_string());
    assert_eq!(last.as_deref(), Some("127.0.0.2"));
    assert_eq!(s.remembered().name, "n2");

    // The remembered leader fails: the error names it, and it is forgotten.
    n2_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = read().await.unwrap_err();
    assert!(
        e.contains(&format!("GET http://127.0.0.2:{port}/jsz")) && e.contains("503"),
        "{e}"
    );
    assert_eq!(s.remembered(), Leader::default());
    n2_fails.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(read().await, Ok(100.0));
    assert_eq!(s.remembered().name, "n2", "found again from the endpoint");

    *leader.lock().unwrap() = "nobody".into();
    let e = read().await.unwrap_err();
    assert!(
        e.contains("leader node not found for consumer \"pull_consumer\""),
        "{e}"
    );
    assert_eq!(
        s.remembered(),
        Leader::default(),
        "the old leader is forgotten"
    );
}

/// Servers that do not tell clients about each other (`no_advertise`): the route URLs'
/// first labels name the nodes, reached as `<node>.<endpoint>`.
#[tokio::test]
async fn names_unadvertised_nodes_after_the_endpoint() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let answer: Answer = Arc::new(|_, path| {
        if path == "/varz" {
            let urls = ["nats-0.nats.nats.svc:6222", "nats-1.nats.nats.svc:6222"];
            return (
                200,
                json!({"server_name": "nats-0", "cluster": {"urls": urls}}).to_string(),
            );
        }
        (200, jsz(3, json!([{"name": "mystream"}])))
    });
    let _mock = Mock::start(vec![l], answer);
    let e = build(&good(&addr.to_string()))
        .read()
        .await
        .unwrap_err()
        .to_string();
    // 127.0.0.1 cannot be prefixed with a node name: KEDA's URL, and the failure to resolve it.
    assert!(
        e.contains(&format!("GET http://nats-0.{addr}/jsz?acc=%24G")),
        "{e}"
    );
}

/// Two triggers on the same consumer share one reading; another consumer is its own.
#[tokio::test]
async fn triggers_share_the_reading() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let body = jsz(
        0,
        json!([{"name": "mystream", "consumer_detail": [
        {"name": "pull_consumer", "num_pending": 4}, {"name": "other", "num_ack_pending": 2}]}]),
    );
    let mock = Mock::start(vec![l], Arc::new(move |_, _| (200, body.clone())));
    let shared = Shared::default();
    let meta = good(&addr.to_string());
    let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut other = pairs.clone();
    other[3] = ("consumer", "other");
    let i = |index, pairs: &[(&str, &str)]| {
        let mut t = input(index, pairs, &[]);
        t.polling_interval = Duration::from_secs(30);
        NatsJetStreamScaler::new(&t, &shared).unwrap()
    };
    let (a, b, c) = (i(0, &pairs), i(1, &pairs), i(2, &other));
    assert_eq!(a.sample().await.unwrap().value, 4.0);
    assert_eq!(b.sample().await.unwrap().value, 4.0);
    assert_eq!(c.sample().await.unwrap().value, 2.0);
    assert_eq!(mock.take().len(), 2);
    let calls = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "nats-jetstream".to_string())])
        .get();
    assert_eq!(calls, 2);
    assert_eq!(shared.http.len(), 1, "one HTTP client");
}
