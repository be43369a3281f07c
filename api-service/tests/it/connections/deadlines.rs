//! The three deadlines at values other than their defaults, each with its lower bound
//! (nothing closes early) and its upper bound (nothing is held longer), for HTTP/1 and
//! h2c. Lower bounds count from an instant the server cannot have seen yet, so they hold
//! however slow the machine; upper bounds allow `SLACK` for a loaded one.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::raw::{closed, exchange, get, h2, open, sample};
use crate::helpers::*;

const HEADER: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(4);
const SEND: Duration = Duration::from_secs(2);
/// The h2c case's: its connections must answer the server's pings within half of it, and
/// this test's client runs beside other tests on a loaded machine.
const H2_HEADER: Duration = Duration::from_secs(4);
const H2_IDLE: Duration = Duration::from_secs(10);
/// How late a close may come on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);
/// Far more than any deadline: a close that has not come by then never will.
const NEVER: Duration = Duration::from_secs(30);

async fn api(header: Duration, idle: Duration) -> (TestPrefix, Writer, Written, TestApi) {
    ready_api_with(2_000, |settings| {
        settings.header_timeout_secs = header.as_secs();
        settings.idle_timeout_secs = idle.as_secs();
        settings.send_timeout_secs = SEND.as_secs();
    })
    .await
}

/// Asserts that `closed_at` is at least `deadline` after `from` and at most `deadline +
/// SLACK` after `upper_from`.
fn within(what: &str, from: Instant, upper_from: Instant, deadline: Duration, closed_at: Instant) {
    let (early, late) = (closed_at - from, closed_at - upper_from);
    assert!(
        early >= deadline && late <= deadline + SLACK,
        "{what}: closed {early:?} after it began ({late:?} after the upper bound's start), deadline {deadline:?}"
    );
}

#[tokio::test]
async fn http1_connections_close_at_their_deadlines_and_not_before() {
    let (_prefix, _writer, _written, api) = api(HEADER, IDLE).await;

    // Accepted, never a byte: closed at the header timeout, told nothing.
    let before = Instant::now();
    let silent = open(api.addr, 1).await.remove(0);
    let connected = Instant::now();
    let (said, at) = closed(silent, NEVER).await;
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));
    within("a silent connection", before, connected, HEADER, at);

    // A first head that stalls: a 408 (nothing else was written), then closed.
    let before = Instant::now();
    let mut partial = open(api.addr, 1).await.remove(0);
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let sent = Instant::now();
    let (said, at) = closed(partial, NEVER).await;
    assert!(
        said.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&said)
    );
    within("a stalled first head", before, sent, HEADER, at);

    // Keep-alive: still served after more than the header timeout of idleness, closed at
    // the idle timeout after its last response.
    let mut kept = open(api.addr, 1).await.remove(0);
    assert_eq!(
        exchange(&mut kept, &get("/health", &[])).await.map(|r| r.0),
        Some(200)
    );
    tokio::time::sleep(HEADER + Duration::from_millis(500)).await;
    let asked = Instant::now();
    assert_eq!(
        exchange(&mut kept, &get("/health", &[])).await.map(|r| r.0),
        Some(200),
        "an idle connection was closed before the idle timeout"
    );
    let answered = Instant::now();
    let (_, at) = closed(kept, NEVER).await;
    within("an idle keep-alive connection", asked, answered, IDLE, at);

    // A later head that stalls: closed at the header timeout from its first byte, with
    // no 408 (it could land inside a response hyper has not flushed).
    let mut later = open(api.addr, 1).await.remove(0);
    assert_eq!(
        exchange(&mut later, &get("/health", &[]))
            .await
            .map(|r| r.0),
        Some(200)
    );
    let before = Instant::now();
    later
        .write_all(b"GET /health HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let sent = Instant::now();
    let (said, at) = closed(later, NEVER).await;
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));
    within("a stalled later head", before, sent, HEADER, at);

    let metrics = get_text(&api, "/metrics").await;
    assert_eq!(
        sample(&metrics, "ofertasws_http_header_timeouts_total"),
        3.0
    );
    assert_eq!(sample(&metrics, "ofertasws_http_idle_closes_total"), 1.0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_at_the_send_timeout() {
    let (_prefix, _writer, written, api) = api(HEADER, IDLE).await;
    let mut stream = open(api.addr, 1).await.remove(0);
    // Identity documents, pipelined: far more than the socket buffers hold (on loopback
    // the send buffer alone grows to ~4 MiB), and never read.
    let authorization = format!("authorization: Bearer {}", user_token());
    let request = get(
        "/api/v4/ofertasws",
        &[&authorization, "accept-encoding: identity"],
    );
    let copies = (16 << 20) / written.meta.json_bytes as usize + 1;
    let before = Instant::now();
    stream
        .write_all(request.repeat(copies).as_bytes())
        .await
        .unwrap();
    let sent = Instant::now();
    // Wait for the close without reading what was sent: a read would let it go on.
    let closed_at = tokio::time::timeout(NEVER, async {
        loop {
            let metrics = get_text(&api, "/metrics").await;
            if sample(&metrics, "ofertasws_http_send_timeouts_total") >= 1.0 {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stalled connection to be closed");
    within(
        "a client that stopped reading",
        before,
        sent,
        SEND,
        closed_at,
    );
    // What it was sent before the close is still readable, then the connection ends
    // short of the responses asked for.
    let (received, _) = closed(stream, NEVER).await;
    assert!(
        received.len() < copies * written.meta.json_bytes as usize,
        "every response was sent: {} bytes",
        received.len()
    );
}

/// Reads frames for `duration`, acknowledging the server's SETTINGS and PINGs as a live
/// client does; returns the frames' types and whether the connection is still open.
async fn h2_answer_for(stream: &mut TcpStream, duration: Duration) -> (Vec<u8>, bool) {
    let mut kinds = Vec::new();
    let deadline = Instant::now() + duration;
    loop {
        let mut header = [0; 9];
        match tokio::time::timeout_at(deadline, stream.read_exact(&mut header)).await {
            Err(_) => return (kinds, true),
            Ok(Err(_)) => return (kinds, false),
            Ok(Ok(_)) => {}
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0; length];
        if stream.read_exact(&mut payload).await.is_err() {
            return (kinds, false);
        }
        let (kind, flags) = (header[3], header[4]);
        kinds.push(kind);
        let answer = match kind {
            h2::SETTINGS if flags & h2::ACK == 0 => h2::frame(h2::SETTINGS, h2::ACK, 0, &[]),
            h2::PING if flags & h2::ACK == 0 => h2::frame(h2::PING, h2::ACK, 0, &payload),
            _ => continue,
        };
        if stream.write_all(&answer).await.is_err() {
            return (kinds, false);
        }
    }
}

#[tokio::test]
async fn h2c_connections_close_at_their_deadlines_and_not_before() {
    let (_prefix, _writer, _written, api) = api(H2_HEADER, H2_IDLE).await;

    // The preface, and no request: closed at the header timeout from the accept.
    let before = Instant::now();
    let mut no_request = TcpStream::connect(api.addr).await.unwrap();
    no_request.write_all(&h2::start()).await.unwrap();
    let sent = Instant::now();
    let (_, at) = closed(no_request, NEVER).await;
    within(
        "an h2c connection with no request",
        before,
        sent,
        H2_HEADER,
        at,
    );

    // A request, then idle while answering pings: open past the header timeout, closed
    // at the idle timeout.
    let mut idle = TcpStream::connect(api.addr).await.unwrap();
    let mut request = h2::start();
    request.extend(h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        &h2::get_health(),
    ));
    let asked = Instant::now();
    idle.write_all(&request).await.unwrap();
    let (kinds, open) = h2_answer_for(&mut idle, H2_HEADER * 2).await;
    assert!(
        open,
        "an idle h2c connection answering pings was closed early: {kinds:?}"
    );
    assert!(
        kinds.contains(&h2::HEADERS),
        "the request was answered: {kinds:?}"
    );
    assert!(
        kinds.contains(&h2::PING),
        "the server pings an idle connection: {kinds:?}"
    );
    let (_, open) = h2_answer_for(&mut idle, NEVER).await;
    assert!(!open);
    // Its response left the server within milliseconds of `asked`.
    within(
        "an idle h2c connection",
        asked,
        asked,
        H2_IDLE,
        Instant::now(),
    );

    // A header block that stalls after a request: it cannot answer the server's PING, so
    // it is closed within the header timeout of its first byte, and not before half of it.
    let mut stalled = TcpStream::connect(api.addr).await.unwrap();
    stalled.write_all(&request).await.unwrap();
    let (_, open) = h2_answer_for(&mut stalled, H2_HEADER).await;
    assert!(open);
    let block = h2::frame(h2::HEADERS, h2::END_STREAM, 3, &h2::get_health());
    let before = Instant::now();
    stalled.write_all(&block).await.unwrap();
    let sent = Instant::now();
    let (_, at) = closed(stalled, NEVER).await;
    let (early, late) = (at - before, at - sent);
    assert!(
        early >= H2_HEADER / 2 && late <= H2_HEADER + SLACK,
        "a stalled h2c header block closed {early:?} after its first byte"
    );
}
