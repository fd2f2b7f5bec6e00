//! The local NATS of this test process (see `hack/nats.sh`) and a small JetStream client that
//! speaks the NATS text protocol over TCP (CONNECT, SUB, PUB, MSG/HMSG): enough to make a
//! stream and a durable pull consumer, publish, and fetch and acknowledge messages, without
//! a NATS client crate.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// One server (`addr`, HTTPS monitoring on `monitor` with a certificate from `tls_ca`) and a
/// 3-node cluster on 127.0.0.1-3 (`cluster_addrs`, HTTP monitoring `cluster_monitor`, the
/// same port on every node).
#[derive(Debug)]
pub struct Nats {
    pub addr: String,
    pub monitor: String,
    pub tls_ca: PathBuf,
    pub cluster_addrs: Vec<String>,
    pub cluster_monitor: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Nats> = OnceLock::new();

impl Nats {
    pub fn shared() -> &'static Nats {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("nats.sh", &[], "NATS", |get| {
                Ok(Nats {
                    addr: get("SWELL_NATS_ADDR")?,
                    monitor: get("SWELL_NATS_MONITOR")?,
                    tls_ca: PathBuf::from(get("SWELL_NATS_TLS_CA")?),
                    cluster_addrs: get("SWELL_NATS_CLUSTER_ADDRS")?
                        .split(',')
                        .map(String::from)
                        .collect(),
                    cluster_monitor: get("SWELL_NATS_CLUSTER_MONITOR")?,
                    dir: PathBuf::from(get("SWELL_NATS_DIR")?),
                })
            })
        })
    }
}

/// One client connection, used by one task at a time.
pub struct NatsConn {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
    inbox: String,
    next: u64,
}

/// A message received: its subject, reply subject and payload.
#[derive(Debug)]
pub struct Msg {
    pub subject: String,
    pub reply: Option<String>,
    /// The status line of a header-only message (`NATS/1.0 404 No Messages`), if any.
    pub status: Option<String>,
    pub payload: Vec<u8>,
}

impl NatsConn {
    pub async fn connect(addr: &str) -> anyhow::Result<NatsConn> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to NATS at {addr}"))?;
        let (r, w) = tcp.into_split();
        let mut c = NatsConn {
            read: BufReader::new(r),
            write: w,
            inbox: format!("_INBOX.swell{}", crate::unique_suffix()),
            next: 0,
        };
        let info = c.line().await?;
        anyhow::ensure!(info.starts_with("INFO "), "not a NATS server: {info}");
        let connect =
            json!({"verbose": false, "pedantic": false, "headers": true, "no_responders": true});
        c.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
            .await?;
        let pong = c.line().await?;
        anyhow::ensure!(pong == "PONG", "NATS refused CONNECT: {pong}");
        let sub = format!("SUB {}.* 1\r\n", c.inbox);
        c.send(sub.as_bytes()).await?;
        Ok(c)
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.write.write_all(bytes).await?;
        Ok(())
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut l = String::new();
        anyhow::ensure!(
            self.read.read_line(&mut l).await? > 0,
            "NATS closed the connection"
        );
        Ok(l.trim_end().to_string())
    }

    /// Publishes `payload` to `subject`, replies (if `reply`) to that subject.
    pub async fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut out = format!("PUB {subject}{reply} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.send(&out).await
    }

    /// The next message on the inbox (answering the server's PINGs on the way).
    pub async fn next_msg(&mut self) -> anyhow::Result<Msg> {
        loop {
            let l = self.line().await?;
            let parts: Vec<&str> = l.split(' ').collect();
            match parts[0] {
                "PING" => self.send(b"PONG\r\n").await?,
                "MSG" | "HMSG" => return self.body(&parts).await,
                "-ERR" => bail!("NATS: {l}"),
                _ => {}
            }
        }
    }

    /// `MSG subject sid [reply] len` or `HMSG subject sid [reply] hdrlen totallen`.
    async fn body(&mut self, parts: &[&str]) -> anyhow::Result<Msg> {
        let headers = parts[0] == "HMSG";
        let n = |s: &str| {
            s.parse::<usize>()
                .with_context(|| format!("bad length in {parts:?}"))
        };
        let (reply, hdr, total) = match (headers, parts.len()) {
            (false, 4) => (None, 0, n(parts[3])?),
            (false, 5) => (Some(parts[3]), 0, n(parts[4])?),
            (true, 5) => (None, n(parts[3])?, n(parts[4])?),
            (true, 6) => (Some(parts[3]), n(parts[4])?, n(parts[5])?),
            _ => bail!("unexpected NATS line {parts:?}"),
        };
        let mut buf = vec![0; total + 2];
        self.read.read_exact(&mut buf).await?;
        buf.truncate(total);
        let payload = buf.split_off(hdr);
        let status = headers.then(|| {
            let text = String::from_utf8_lossy(&buf);
            text.lines().next().unwrap_or_default().to_string()
        });
        Ok(Msg {
            subject: parts[1].to_string(),
            reply: reply.map(String::from),
            status,
            payload,
        })
    }

    /// A request and its one answer, as JSON (JetStream's API).
    pub async fn request(&mut self, subject: &str, body: &Value) -> anyhow::Result<Value> {
        self.next += 1;
        let reply = format!("{}.{}", self.inbox, self.next);
        self.publish(subject, Some(&reply), body.to_string().as_bytes())
            .await?;
        loop {
            let m = self.next_msg().await?;
            if m.subject != reply {
                continue;
            }
            if let Some(s) = m.status.filter(|s| s.contains(" 503")) {
                bail!("no responders for {subject}: {s}");
            }
            let v: Value = serde_json::from_slice(&m.payload)
                .with_context(|| format!("answer to {subject} is not JSON"))?;
            if let Some(e) = v.get("error") {
                bail!("{subject}: {e}");
            }
            return Ok(v);
        }
    }

    /// Creates stream `name` on `subjects` with `replicas` copies.
    pub async fn create_stream(
        &mut self,
        name: &str,
        subjects: &[&str],
        replicas: u32,
    ) -> anyhow::Result<Value> {
        let config = json!({"name": name, "subjects": subjects, "num_replicas": replicas, "storage": "memory"});
        self.request(&format!("$JS.API.STREAM.CREATE.{name}"), &config)
            .await
    }

    /// Creates durable pull consumer `name` on `stream` with explicit acks.
    pub async fn create_consumer(&mut self, stream: &str, name: &str) -> anyhow::Result<Value> {
        let body = json!({"stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit"}});
        self.request(
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}"),
            &body,
        )
        .await
    }

    /// Publishes `count` messages to `subject`, each acknowledged by JetStream.
    pub async fn publish_acked(&mut self, subject: &str, count: usize) -> anyhow::Result<()> {
        for i in 0..count {
            self.request(subject, &json!({"n": i})).await?;
        }
        Ok(())
    }

    /// Fetches up to `batch` messages from the pull consumer and acknowledges each; how
    /// many came.
    pub async fn fetch_and_ack(
        &mut self,
        stream: &str,
        consumer: &str,
        batch: usize,
    ) -> anyhow::Result<usize> {
        if batch == 0 {
            return Ok(0);
        }
        self.next += 1;
        let reply = format!("{}.{}", self.inbox, self.next);
        let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
        let body = json!({"batch": batch, "no_wait": true});
        self.publish(&subject, Some(&reply), body.to_string().as_bytes())
            .await?;
        let mut got = 0;
        while got < batch {
            // Messages keep their own subject (only the sid says they answer the pull);
            // their reply subject is where the acknowledgement goes.
            let m = self.next_msg().await?;
            match (m.status, m.reply) {
                // 404 No Messages, 408 Request Timeout: the batch ends early.
                (Some(s), _) if m.subject == reply && s.trim_end() != "NATS/1.0" => break,
                (_, Some(ack)) if ack.starts_with("$JS.ACK.") => {
                    self.publish(&ack, None, b"+ACK").await?;
                    got += 1;
                }
                _ => {}
            }
        }
        // A PING round trip: the acks reached the server before this returns.
        self.send(b"PING\r\n").await?;
        loop {
            if self.line().await? == "PONG" {
                return Ok(got);
            }
        }
    }
}
