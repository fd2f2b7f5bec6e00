//! A local HTTP sink that records every request it gets (CloudEvents from the operator).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One request as received: method, path, headers (names lower-cased) and body.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status the sink answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses to answer next, in order; 200 once empty.
    script: VecDeque<u16>,
}

/// Listens on 127.0.0.1; answers 200 unless told otherwise with [`RecordingSink::answer`].
pub struct RecordingSink {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl RecordingSink {
    pub async fn start() -> RecordingSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let state: Arc<Mutex<State>> = Arc::default();
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, s.clone()));
            }
        });
        RecordingSink {
            url: format!("http://127.0.0.1:{port}/events"),
            state,
        }
    }

    /// Answers the next requests with these statuses, then 200 again.
    pub fn answer(&self, statuses: &[u16]) {
        if let Ok(mut s) = self.state.lock() {
            s.script.extend(statuses);
        }
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .map(|s| s.received.clone())
            .unwrap_or_default()
    }

    /// The requests whose `ce-type` is `type_`.
    pub fn of_type(&self, type_: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.header("ce-type") == type_)
            .collect()
    }
}

/// Serves one connection: requests one after another (keep-alive), each fully read.
async fn serve(mut tcp: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some((head_len, headers, first)) = read_head(&mut tcp, &mut buf).await else {
            return;
        };
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_len + length {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_len..head_len + length]).into_owned();
        buf.drain(..head_len + length);
        let mut parts = first.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let status = match state.lock() {
            Ok(mut s) => {
                let status = s.script.pop_front().unwrap_or(200);
                s.received.push(Received {
                    method: method.to_string(),
                    path: path.to_string(),
                    headers,
                    body,
                    status,
                });
                status
            }
            Err(_) => 500,
        };
        let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        if tcp.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads until the end of a request's head: its length, headers and request line.
async fn read_head(
    tcp: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(usize, BTreeMap<String, String>, String)> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let mut lines = head.split("\r\n");
            let first = lines.next().unwrap_or("").to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            return Some((i + 4, headers, first));
        }
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
