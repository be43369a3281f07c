//! Connections cannot starve the API (contract, HTTP API, "Connections"): idle keep-alive
//! connections stay open, request heads that stall are closed after
//! `API_HEADER_TIMEOUT_SECS`, and past `API_MAX_CONNECTIONS` new connections are closed
//! at once while the open ones are served. A real server on real sockets; every wait is
//! for an event, with a deadline.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Idle connections held open: half after a request, half before their first byte.
const IDLE: usize = 2_000;
/// HTTP/1 connections that send a few bytes of a head, then nothing.
const SLOW: usize = 200;
const HEADER_TIMEOUT_SECS: u64 = 1;
/// Connections opened at once. The listen backlog holds 128 connections not yet
/// accepted; past it the kernel drops a SYN, and the client sends it again only a second
/// later (the test still passes, in many more seconds).
const BATCH: usize = 50;
/// The longest any wait below may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_HEADERS: u8 = 0x1;
const H2_SETTINGS: u8 = 0x4;
const H2_PING: u8 = 0x6;
const H2_ACK: u8 = 0x1;

/// Opens `count` connections to `addr`.
async fn open(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let batch = (count - streams.len()).min(BATCH);
        let connected = join_all((0..batch).map(|_| TcpStream::connect(addr))).await;
        streams.extend(connected.into_iter().map(|c| c.expect("connect")));
    }
    streams
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Sends `request` and reads the whole response: its status and body, or `None` when the
/// connection was closed or reset instead.
async fn exchange(stream: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut received = Vec::new();
    let mut chunk = [0; 16 * 1024];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let status: u16 = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            let length = if status == 304 { 0 } else { length };
            if received.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]);
                return Some((status, body.into_owned()));
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    }
}

async fn status(stream: &mut TcpStream, path: &str) -> Option<u16> {
    exchange(stream, &get(path)).await.map(|(status, _)| status)
}

/// Reads until the server closes the connection; returns what it sent before.
async fn closed(mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A sample's value in the Prometheus text `exposition`.
fn sample(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len().to_be_bytes();
    let mut frame = length[length.len() - 3..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// An HTTP/2 (prior knowledge) connection that has sent its preface, its SETTINGS, then
/// `then`.
async fn h2_connection(api: &TestApi, then: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    bytes.extend(then);
    stream.write_all(&bytes).await.unwrap();
    stream
}

/// Pings over an HTTP/2 connection and reads frames up to the answer, acknowledging the
/// server's SETTINGS on the way; `false` when the connection closes first.
async fn h2_ping(stream: &mut TcpStream) -> bool {
    let ping = h2_frame(H2_PING, 0, 0, &[7; 8]);
    if stream.write_all(&ping).await.is_err() {
        return false;
    }
    loop {
        let mut header = [0; 9];
        if stream.read_exact(&mut header).await.is_err() {
            return false;
        }
        let length =
            (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        let mut payload = vec![0; length];
        if stream.read_exact(&mut payload).await.is_err() {
            return false;
        }
        let (kind, flags) = (header[3], header[4]);
        if kind == H2_PING && flags & H2_ACK != 0 {
            return true;
        }
        if kind == H2_SETTINGS && flags & H2_ACK == 0 {
            let ack = h2_frame(H2_SETTINGS, H2_ACK, 0, &[]);
            if stream.write_all(&ack).await.is_err() {
                return false;
            }
        }
    }
}

#[tokio::test]
async fn stalled_heads_are_closed_while_idle_connections_and_a_normal_client_are_served() {
    let fds = api_service::connections::raise_fd_limit().unwrap_or(u64::MAX);
    assert!(
        fds > 3 * (IDLE + SLOW) as u64,
        "the test needs more open files than {fds}"
    );
    let (_prefix, _writer, _written, api) = ready_api_with(40, |settings| {
        settings.header_timeout_secs = HEADER_TIMEOUT_SECS
    })
    .await;

    let mut idle = open(api.addr, IDLE).await;
    for stream in idle.iter_mut().step_by(2) {
        assert_eq!(status(stream, "/health").await, Some(200));
    }
    let mut idle_h2 = h2_connection(&api, &[]).await;
    assert!(
        h2_ping(&mut idle_h2).await,
        "an HTTP/2 connection is served"
    );

    // Every stalled head starts after this instant, so none can be closed before one
    // timeout has passed from it, however slow the machine.
    let started = Instant::now();
    let mut slow = open(api.addr, SLOW).await;
    for stream in &mut slow {
        stream
            .write_all(b"GET /api/v4/ofertasws HTTP/1.1\r\nHo")
            .await
            .unwrap();
    }
    let mut partial_headers = h2_frame(H2_HEADERS, 0x4 | 0x1, 1, &[0; 40]);
    partial_headers.truncate(9 + 10);
    let slow_h2 = vec![
        {
            let mut stream = TcpStream::connect(api.addr).await.unwrap();
            stream.write_all(&H2_PREFACE[..16]).await.unwrap();
            stream
        },
        h2_connection(&api, &partial_headers).await,
    ];

    // A normal client meanwhile: keep-alive, every 200 and every revalidation's 304.
    let client = reqwest::Client::new();
    let url = api.url("/api/v4/ofertasws");
    let authorization = bearer(&user_token());
    for _ in 0..50 {
        let ok = client
            .get(&url)
            .header("authorization", &authorization)
            .header("accept-encoding", "zstd, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let etag = ok.headers()["etag"].clone();
        ok.bytes().await.unwrap();
        let revalidated = client
            .get(&url)
            .header("authorization", &authorization)
            .header("accept-encoding", "zstd, gzip")
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status().as_u16(), 304);
    }

    let answers = tokio::time::timeout(DEADLINE, join_all(slow.into_iter().map(closed)))
        .await
        .expect("stalled HTTP/1 heads closed");
    for answer in answers {
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    tokio::time::timeout(DEADLINE, join_all(slow_h2.into_iter().map(closed)))
        .await
        .expect("a stalled HTTP/2 preface and header block closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(HEADER_TIMEOUT_SECS),
        "closed after {waited:?}, before the timeout"
    );

    // The idle connections have now been idle for longer than the timeout.
    for stream in &mut idle {
        assert_eq!(
            status(stream, "/health").await,
            Some(200),
            "an idle connection was closed"
        );
    }
    assert!(
        h2_ping(&mut idle_h2).await,
        "an idle HTTP/2 connection was closed"
    );
    let (_, metrics) = exchange(&mut idle[0], &get("/metrics")).await.unwrap();
    let timeouts = sample(&metrics, "ofertasws_http_header_timeouts_total");
    assert_eq!(
        timeouts,
        (SLOW + 2) as f64,
        "only the stalled heads timed out"
    );
    assert!(sample(&metrics, "ofertasws_http_connections_open") > IDLE as f64);
}

#[tokio::test]
async fn past_the_cap_new_connections_are_closed_at_once_and_accepted_again_later() {
    const CAP: usize = 40;
    const EXTRA: usize = 20;
    let (_prefix, _writer, _written, api) =
        ready_api_with(1, |settings| settings.max_connections = CAP).await;
    let mut existing = open(api.addr, 1).await.remove(0);
    assert_eq!(status(&mut existing, "/health").await, Some(200));
    let mut admitted = open(api.addr, CAP - 1).await;
    for stream in &mut admitted {
        assert_eq!(status(stream, "/health").await, Some(200));
    }

    // The kernel completes each handshake; the API closes each connection as it accepts it.
    for mut extra in open(api.addr, EXTRA).await {
        let answer = tokio::time::timeout(DEADLINE, status(&mut extra, "/health"))
            .await
            .expect("a connection past the cap closed");
        assert_eq!(answer, None, "a connection past the cap was served");
    }

    assert_eq!(status(&mut existing, "/health").await, Some(200));
    let (_, metrics) = exchange(&mut existing, &get("/metrics")).await.unwrap();
    assert_eq!(
        sample(&metrics, "ofertasws_http_connections_refused_total"),
        EXTRA as f64
    );
    assert_eq!(
        sample(&metrics, "ofertasws_http_connections_open"),
        CAP as f64
    );

    drop(admitted);
    eventually(DEADLINE, "a new connection to be served", || async {
        match TcpStream::connect(api.addr).await {
            Ok(mut stream) => status(&mut stream, "/health").await == Some(200),
            Err(_) => false,
        }
    })
    .await;
    assert_eq!(status(&mut existing, "/health").await, Some(200));
}

#[tokio::test]
async fn out_of_file_descriptors_the_process_keeps_serving_and_accepts_again_later() {
    let prefix = TestPrefix::new();
    // `ulimit -n` sets the hard limit too, so the API cannot raise it.
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", r#"ulimit -n 64 && exec "$0" serve"#])
        .arg(env!("CARGO_BIN_EXE_api-service"))
        .env_clear()
        .env("REDIS_URL", redis_url())
        .env("OFERTASWS_PREFIX", &prefix.0)
        .env("API_BIND", "127.0.0.1:0")
        .env("JWT_SECRET", SECRET)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(entry) = serde_json::from_str(&line) {
                kept.lock().unwrap().push(entry);
            }
        }
    });
    let logged = |what: &'static str| {
        let logs = logs.clone();
        move || {
            let logs = logs.clone();
            async move {
                logs.lock()
                    .unwrap()
                    .iter()
                    .any(|e| e["fields"]["message"] == what)
            }
        }
    };
    eventually(
        DEADLINE,
        "the API to listen",
        logged("api-service listening"),
    )
    .await;
    let addr: SocketAddr = logs
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| e["fields"]["addr"].as_str()?.parse().ok())
        .unwrap();

    let mut existing = TcpStream::connect(addr).await.unwrap();
    assert_eq!(status(&mut existing, "/health").await, Some(200));
    // More than the 64 files allow, fewer than the listen backlog (128) can queue besides.
    let flood = open(addr, 100).await;
    eventually(
        DEADLINE,
        "accepting to fail",
        logged("cannot accept connections; retrying every 100 ms"),
    )
    .await;
    assert_eq!(
        status(&mut existing, "/health").await,
        Some(200),
        "an open connection is still served"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the API is still running"
    );

    drop(flood);
    eventually(DEADLINE, "a new connection to be served", || async {
        match TcpStream::connect(addr).await {
            Ok(mut stream) => status(&mut stream, "/health").await == Some(200),
            Err(_) => false,
        }
    })
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
