//! No mix of idle, silent and slow connections below the cap keeps a normal client from
//! being served; past `API_MAX_CONNECTIONS` new connections are closed at once while the
//! open ones are served; out of file descriptors the process keeps serving.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::process::ApiProcess;
use super::raw::{closed, exchange, get, h2, open, sample, status};
use crate::helpers::*;

/// Connections opened: half make a request and then idle (they stay open), half never
/// send a byte (closed at the header timeout).
const IDLE: usize = 2_000;
/// HTTP/1 connections that send a few bytes of a head, then nothing.
const SLOW: usize = 200;
const HEADER_TIMEOUT_SECS: u64 = 1;
/// The longest any wait below may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn silent_and_stalled_connections_are_closed_while_idle_ones_and_a_normal_client_are_served()
{
    let fds = api_service::http::connections::raise_fd_limit().unwrap_or(u64::MAX);
    assert!(
        fds > 3 * (IDLE + SLOW) as u64,
        "the test needs more open files than {fds}"
    );
    let (_prefix, _writer, _written, api) = ready_api_with(40, |settings| {
        settings.header_timeout_secs = HEADER_TIMEOUT_SECS
    })
    .await;

    // Every silent or stalled connection opens after this instant, so none can be closed
    // before one timeout has passed from it, however slow the machine.
    let started = Instant::now();
    let mut opened = open(api.addr, IDLE).await;
    let silent: Vec<TcpStream> = opened.split_off(IDLE / 2);
    let mut idle = opened;
    for stream in &mut idle {
        assert_eq!(status(stream, "/health").await, Some(200));
    }
    let mut slow = open(api.addr, SLOW).await;
    for stream in &mut slow {
        stream
            .write_all(b"GET /api/v4/ofertasws HTTP/1.1\r\nHo")
            .await
            .unwrap();
    }
    let mut slow_h2 = TcpStream::connect(api.addr).await.unwrap();
    slow_h2.write_all(&h2::PREFACE[..16]).await.unwrap();

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

    let stalled = slow.into_iter().chain(silent).chain([slow_h2]);
    let answers = join_all(stalled.map(|stream| closed(stream, DEADLINE))).await;
    for (answer, at) in answers {
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let waited = at.into_std() - started;
        assert!(
            waited >= Duration::from_secs(HEADER_TIMEOUT_SECS),
            "closed after {waited:?}, before the timeout"
        );
    }

    // The idle connections have now been idle for longer than the header timeout.
    for stream in &mut idle {
        assert_eq!(
            status(stream, "/health").await,
            Some(200),
            "an idle connection was closed"
        );
    }
    let (_, metrics) = exchange(&mut idle[0], &get("/metrics", &[])).await.unwrap();
    let timeouts = sample(&metrics, "ofertasws_http_header_timeouts_total");
    assert_eq!(
        timeouts,
        (SLOW + IDLE / 2 + 1) as f64,
        "only the silent and stalled connections timed out"
    );
    assert!(sample(&metrics, "ofertasws_http_connections_open") >= (IDLE / 2) as f64);
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

    // The kernel completes each handshake; the API resets each connection as it accepts
    // it, which the client may see already while it completes its `connect`.
    for _ in 0..EXTRA {
        let answer = tokio::time::timeout(DEADLINE, async {
            match TcpStream::connect(api.addr).await {
                Ok(mut extra) => status(&mut extra, "/health").await,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
                Err(e) => panic!("connect: {e}"),
            }
        })
        .await
        .expect("a connection past the cap closed");
        assert_eq!(answer, None, "a connection past the cap was served");
    }

    assert_eq!(status(&mut existing, "/health").await, Some(200));
    let (_, metrics) = exchange(&mut existing, &get("/metrics", &[]))
        .await
        .unwrap();
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
    let mut api = ApiProcess::start(&prefix.0, &[], Some(64)).await;
    let addr = api.addr;

    let mut existing = TcpStream::connect(addr).await.unwrap();
    assert_eq!(status(&mut existing, "/health").await, Some(200));
    // More than the 64 files allow, fewer than the listen backlog (128) can queue besides.
    let flood = open(addr, 100).await;
    let failed = tokio::time::timeout(DEADLINE, async {
        while !api.logged("cannot accept connections; retrying every 100 ms") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        failed.is_ok(),
        "accepting never failed; the API logged:\n{}",
        api.log_lines()
    );
    assert_eq!(
        status(&mut existing, "/health").await,
        Some(200),
        "an open connection is still served"
    );
    assert!(api.alive(), "the API is still running");

    drop(flood);
    eventually(DEADLINE, "a new connection to be served", || async {
        match TcpStream::connect(addr).await {
            Ok(mut stream) => status(&mut stream, "/health").await == Some(200),
            Err(_) => false,
        }
    })
    .await;
    api.stop().await;
}
