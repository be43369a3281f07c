//! h2c under the known HTTP/2 floods: a real HTTP/2 client (the `h2` crate, hyper's own)
//! gets its 200s and 304s while other connections try rapid reset, a CONTINUATION flood,
//! an oversized header block, SETTINGS and PING floods and a stalled header block. The
//! server is the real binary, so its memory is its own: it stays up, its peak resident
//! memory grows by less than `MEMORY_BOUND_MIB`, each abusive connection is closed, and the
//! normal client is never refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::ApiProcess;
use super::raw::{exchange, get, h2, sample};
use crate::helpers::*;

/// How much the server's peak resident memory may grow over the whole test: the floods
/// must not make it hold more than a few connections' buffers.
const MEMORY_BOUND_MIB: u64 = 64;
/// The longest any step may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Reads frames until the server closes the connection; returns the error code of the
/// GOAWAY it sent, if any.
async fn goaway(mut stream: TcpStream) -> Option<u32> {
    let read = async {
        let mut code = None;
        loop {
            let mut header = [0; 9];
            if stream.read_exact(&mut header).await.is_err() {
                return code;
            }
            let length =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0; length];
            if stream.read_exact(&mut payload).await.is_err() {
                return code;
            }
            if header[3] == h2::GOAWAY && payload.len() >= 8 {
                code = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the abusive connection to be closed")
}

/// Connects and writes `bytes` (a write cut short by the server's close is fine).
async fn send(api: &ApiProcess, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    stream
}

/// Rapid reset (CVE-2023-44487): streams opened and cancelled at once, in one write.
async fn rapid_reset(api: &ApiProcess) -> Option<u32> {
    let mut bytes = h2::start();
    for n in 0..1_000u32 {
        let id = 2 * n + 1;
        let flags = h2::END_HEADERS | h2::END_STREAM;
        bytes.extend(h2::frame(h2::HEADERS, flags, id, &h2::get_health()));
        bytes.extend(h2::frame(h2::RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    goaway(send(api, &bytes).await).await
}

/// A header block that never ends: CONTINUATION frames after CONTINUATION frames.
async fn continuation_flood(api: &ApiProcess) -> Option<u32> {
    let mut bytes = h2::start();
    bytes.extend(h2::frame(h2::HEADERS, h2::END_STREAM, 1, &h2::get_health()));
    let field = h2::literal("x-a", 1_000);
    for _ in 0..2_000 {
        bytes.extend(h2::frame(h2::CONTINUATION, 0, 1, &field));
    }
    goaway(send(api, &bytes).await).await
}

/// One header block far over the 32 KiB list the server announces, in legal frames.
async fn oversized_headers(api: &ApiProcess) -> Option<u32> {
    let mut block = h2::get_health();
    for n in 0..200u32 {
        block.extend(h2::literal(&format!("x-{n:03}"), 1_000));
    }
    let mut bytes = h2::start();
    let mut chunks = block.chunks(16_384).peekable();
    let mut kind = h2::HEADERS;
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let end_headers = if last { h2::END_HEADERS } else { 0 };
        let end_stream = if kind == h2::HEADERS {
            h2::END_STREAM
        } else {
            0
        };
        let flags = end_headers | end_stream;
        bytes.extend(h2::frame(kind, flags, 1, chunk));
        kind = h2::CONTINUATION;
    }
    goaway(send(api, &bytes).await).await
}

/// SETTINGS or PING frames, each asking for an acknowledgement, written for as long as
/// the server reads them, and none of its answers read: after one ordinary request, so
/// that only the send timeout can be what closes it. Returns the connection, unread.
async fn control_flood(api: &ApiProcess, kind: u8) -> TcpStream {
    let payload: &[u8] = if kind == h2::PING { &[7; 8] } else { &[] };
    let frame = h2::frame(kind, 0, 0, payload);
    let batch = frame.repeat(4_096);
    let mut stream = TcpStream::connect(api.addr).await.unwrap();
    let mut start = h2::start();
    let flags = h2::END_HEADERS | h2::END_STREAM;
    start.extend(h2::frame(h2::HEADERS, flags, 1, &h2::get_health()));
    stream.write_all(&start).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&batch)).await {
            Ok(Ok(())) => {}
            // The server stopped reading (or closed): the flood is as big as it gets.
            Ok(Err(_)) | Err(_) => return stream,
        }
    }
}

/// An HTTP/2 client doing what an app does, until `stop`: the snapshot (200, all of it),
/// then a revalidation (304). Returns the rounds it completed; any failure fails the test.
async fn normal_client(
    api_addr: std::net::SocketAddr,
    zstd_bytes: u64,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
) {
    let stream = TcpStream::connect(api_addr).await.unwrap();
    let (client, connection) = ::h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let url = format!("http://{api_addr}/api/v4/ofertasws");
    let authorization = bearer(&user_token());
    while !stop.load(Ordering::SeqCst) || rounds.load(Ordering::SeqCst) < 10 {
        let request = hyper::Request::get(&url)
            .header("authorization", &authorization)
            .header("accept-encoding", "zstd")
            .body(())
            .unwrap();
        let mut sender = client
            .clone()
            .ready()
            .await
            .expect("the client is never refused");
        let (response, _) = sender.send_request(request, true).unwrap();
        let response = response.await.expect("a response");
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"].clone();
        let mut body = response.into_body();
        let mut received = 0u64;
        while let Some(chunk) = body.data().await {
            let chunk: Bytes = chunk.unwrap();
            received += chunk.len() as u64;
            body.flow_control().release_capacity(chunk.len()).unwrap();
        }
        assert_eq!(received, zstd_bytes, "the whole zstd body");

        let request = hyper::Request::get(&url)
            .header("authorization", &authorization)
            .header("accept-encoding", "zstd")
            .header("if-none-match", etag)
            .body(())
            .unwrap();
        let mut sender = client
            .clone()
            .ready()
            .await
            .expect("the client is never refused");
        let (response, _) = sender.send_request(request, true).unwrap();
        assert_eq!(response.await.expect("a response").status(), 304);
        rounds.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_h2_client_is_served_while_floods_are_closed_in_bounded_memory() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(2_000, false).await;
    let mut api = ApiProcess::start(
        &prefix.0,
        // The default header timeout (its pings every 5 s): the normal client answers
        // them from a loaded test process.
        &[("API_SEND_TIMEOUT_SECS", "2")],
        None,
    )
    .await;
    eventually(DEADLINE, "the API to be ready", || async {
        let Ok(mut stream) = TcpStream::connect(api.addr).await else {
            return false;
        };
        exchange(&mut stream, &get("/ready", &[]))
            .await
            .map(|r| r.0)
            == Some(200)
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let normal = tokio::spawn(normal_client(
        api.addr,
        written.meta.zstd_bytes,
        stop.clone(),
        rounds.clone(),
    ));
    // A round first: the memory baseline includes a served client.
    eventually(DEADLINE, "the normal client's first round", || async {
        rounds.load(Ordering::SeqCst) > 0
    })
    .await;
    let before_floods = rounds.load(Ordering::SeqCst);
    let baseline = api.memory_kib("VmRSS");

    let stalled = send(&api, &{
        let mut bytes = h2::start();
        bytes.extend(h2::frame(h2::HEADERS, h2::END_STREAM, 1, &h2::get_health()));
        bytes
    })
    .await;
    // `goaway` returns once the connection is closed (it fails the test after DEADLINE):
    // the stalled block by the first-request deadline or the keep-alive ping, whichever
    // comes first (both at the header timeout; `deadlines.rs` checks the bounds).
    let (reset, continuation, oversized, settings, pings, _stalled) = tokio::join!(
        rapid_reset(&api),
        continuation_flood(&api),
        oversized_headers(&api),
        control_flood(&api, h2::SETTINGS),
        control_flood(&api, h2::PING),
        goaway(stalled),
    );
    assert_eq!(reset, Some(h2::ENHANCE_YOUR_CALM), "rapid reset");
    assert_eq!(
        continuation,
        Some(h2::ENHANCE_YOUR_CALM),
        "CONTINUATION flood"
    );
    assert!(
        oversized.is_some(),
        "an oversized header block ends with a GOAWAY"
    );
    // The control floods stall on the answers nobody reads; the send timeout closes them.
    eventually(
        DEADLINE,
        "the SETTINGS and PING floods to be closed",
        || async { sample(&api.metrics().await, "ofertasws_http_send_timeouts_total") >= 2.0 },
    )
    .await;
    join_all([settings, pings].map(goaway)).await;

    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(DEADLINE, normal)
        .await
        .unwrap()
        .unwrap();
    let rounds = rounds.load(Ordering::SeqCst);
    assert!(
        rounds > before_floods,
        "the normal client was served during the floods"
    );
    assert!(api.alive(), "the server stayed up");
    let peak = api.memory_kib("VmHWM");
    let grown = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "h2 floods: normal client {rounds} rounds of 200 + 304; server resident memory {} MiB before, peak {} MiB (+{grown} MiB)",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        grown < MEMORY_BOUND_MIB,
        "the server's memory grew by {grown} MiB"
    );
    api.stop().await;
}
