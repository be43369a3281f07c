//! Clients that ask for more than the kernel's socket buffers hold and never read: on
//! loopback a 270 KB body is handed to the kernel at once (the send buffer grows to ~4 MiB
//! and the receiver's to ~6 MiB), so each slow reader pipelines enough requests for
//! identity documents to stall the server's writes for real. Meanwhile a normal client
//! keeps being served, the server's memory stays bounded (its bodies are shared and sent
//! from their files), and the stalled connections are closed at `API_SEND_TIMEOUT_SECS`.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::process::ApiProcess;
use super::raw::{closed, exchange, get, open, sample};
use crate::helpers::*;

const SLOW_READERS: usize = 20;
/// Bytes each slow reader asks for: several times what the socket buffers hold.
const ASKED_BYTES: u64 = 48 << 20;
const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// How much the server's peak resident memory may grow while the slow readers stall: what
/// it holds per stalled connection is a few buffers, not the bodies.
const MEMORY_BOUND_MIB: u64 = 32;
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_closed_at_the_send_timeout_while_a_normal_client_is_served() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(2_000, false).await;
    let send_timeout = SEND_TIMEOUT.as_secs().to_string();
    let api = ApiProcess::start(&prefix.0, &[("API_SEND_TIMEOUT_SECS", &send_timeout)], None).await;
    let authorization = format!("authorization: Bearer {}", user_token());
    let identity = get(
        "/api/v4/ofertasws",
        &[&authorization, "accept-encoding: identity"],
    );
    let zstd = get(
        "/api/v4/ofertasws",
        &[&authorization, "accept-encoding: zstd"],
    );
    let mut normal = TcpStream::connect(api.addr).await.unwrap();
    eventually(DEADLINE, "the API to serve the snapshot", || async {
        let Ok(mut stream) = TcpStream::connect(api.addr).await else {
            return false;
        };
        exchange(&mut stream, &zstd).await.map(|r| r.0) == Some(200)
    })
    .await;
    assert_eq!(exchange(&mut normal, &zstd).await.map(|r| r.0), Some(200));
    let baseline = api.memory_kib("VmRSS");

    let copies = (ASKED_BYTES / written.meta.json_bytes + 1) as usize;
    let pipelined = identity.repeat(copies);
    let mut slow = open(api.addr, SLOW_READERS).await;
    let began = Instant::now();
    for stream in &mut slow {
        stream.write_all(pipelined.as_bytes()).await.unwrap();
    }

    // The normal client, on its own connection, keeps getting whole responses.
    let mut served = 0;
    while sample(&api.metrics().await, "ofertasws_http_send_timeouts_total") < SLOW_READERS as f64 {
        let (status, body) = exchange(&mut normal, &zstd)
            .await
            .expect("the normal client is served");
        assert_eq!((status, body.len() as u64 > 0), (200, true));
        served += 1;
        assert!(
            began.elapsed() < DEADLINE,
            "the slow readers were not all closed"
        );
    }
    let closed_after = began.elapsed();
    assert!(
        closed_after >= SEND_TIMEOUT,
        "closed after {closed_after:?}, before the timeout"
    );

    let peak = api.memory_kib("VmHWM");
    let grown = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "slow readers: {SLOW_READERS} × {copies} identity documents of {} B pipelined and unread; \
         closed {closed_after:?} after they began; the normal client was served {served} times; \
         server resident memory {} MiB before, peak {} MiB (+{grown} MiB)",
        written.meta.json_bytes,
        baseline / 1024,
        peak / 1024
    );
    assert!(
        grown < MEMORY_BOUND_MIB,
        "the server's memory grew by {grown} MiB"
    );
    for stream in slow {
        let (received, _) = closed(stream, DEADLINE).await;
        assert!(
            (received.len() as u64) < copies as u64 * written.meta.json_bytes,
            "a slow reader was sent everything it asked for"
        );
    }
    let metrics = api.metrics().await;
    assert_eq!(
        sample(&metrics, "ofertasws_http_connections_open"),
        2.0,
        "normal + this one"
    );
    api.stop().await;
}
