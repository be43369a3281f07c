//! The connection deadlines on real hyper connections over in-memory pipes, with tokio's
//! clock paused: time passes only while every task waits, so each bound is checked
//! exactly and takes no real time. (`tests/it/connections.rs` checks the same on real
//! sockets, with a real HTTP/2 client and the floods.)

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::Instant;

use super::*;

const HEADER: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(100);
const SEND: Duration = Duration::from_secs(30);
/// How far past a deadline the close may come (the timer wheel's granularity and the
/// scheduling of the tasks involved).
const SLACK: Duration = Duration::from_millis(50);
/// The body of `/big`: more than the pipe holds, so its sending stalls when unread.
const BIG: usize = 1 << 20;

fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        header: HEADER,
        idle: IDLE,
        send: SEND,
    }
}

fn connections(max: usize) -> Arc<Connections> {
    Connections::new(limits(max), ConnectionMetrics::default())
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// Serves one connection as `http/server.rs` does, with a service that reads the whole
/// request body and answers with its length (`/slow` after a second, `/big` with `BIG`
/// bytes); returns the client's end and the connection's metrics.
fn serve() -> (DuplexStream, ConnectionMetrics) {
    let (client, server) = duplex(64 * 1024);
    let connections = connections(1);
    let slot = connections.slot().unwrap();
    let counters = slot.counters().clone();
    let (io, watch) = GuardedIo::new(server, slot);
    let service = service_fn(|request: Request<Incoming>| -> Answer {
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            if path == "/slow" {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let length = match request.into_body().collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => usize::MAX,
            };
            let body = if path == "/big" {
                Bytes::from(vec![b'x'; BIG])
            } else {
                Bytes::from(length.to_string())
            };
            Ok(Response::new(Full::new(body)))
        })
    });
    tokio::spawn(async move {
        let builder = builder(connections.limits());
        let _ = builder
            .serve_connection(TokioIo::new(io), watch.service(service))
            .await;
    });
    (client, counters)
}

/// Reads one response: its status and body, or `None` when the connection closed.
async fn response(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    let mut received = Vec::new();
    let mut chunk = [0; 1024];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|line| line.strip_prefix("content-length: ")?.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some((head[9..12].parse().ok()?, body[..length].to_owned()));
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The next response, failing the test (instead of waiting forever) when none comes
/// within far more than any deadline.
async fn next(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    tokio::time::timeout(IDLE * 20, response(stream))
        .await
        .expect("neither a response nor a close")
}

/// Asserts that `from + after` ≤ now ≤ `from + after + SLACK`.
fn closed_after(from: Instant, after: Duration) {
    let waited = from.elapsed();
    assert!(
        waited >= after && waited <= after + SLACK,
        "closed after {waited:?}, expected {after:?}"
    );
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout() {
    let accepted = Instant::now();
    let (mut silent, counters) = serve();
    assert_eq!(next(&mut silent).await, None, "closed, and told nothing");
    closed_after(accepted, HEADER);
    assert_eq!(counters.header_timeouts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_first_head_counts_from_the_accept_and_gets_a_408() {
    let accepted = Instant::now();
    let (mut client, _) = serve();
    tokio::time::sleep(HEADER / 2).await;
    client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(408));
    closed_after(accepted, HEADER);
    assert_eq!(next(&mut client).await, None, "closed after the 408");
}

#[tokio::test(start_paused = true)]
async fn a_body_sent_slowly_after_its_head_is_read_whole() {
    let (mut client, _) = serve();
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
        .await
        .unwrap();
    for byte in [b"a", b"b", b"c"] {
        tokio::time::sleep(HEADER * 2).await;
        client.write_all(byte).await.unwrap();
    }
    assert_eq!(next(&mut client).await, Some((200, "3".into())));
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_outlives_the_header_timeout_and_closes_after_the_idle_one() {
    let (mut client, counters) = serve();
    client.write_all(GET).await.unwrap();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(200));
    tokio::time::sleep(IDLE - HEADER).await;
    client.write_all(GET).await.unwrap();
    assert_eq!(
        next(&mut client).await.map(|r| r.0),
        Some(200),
        "still open"
    );
    let answered = Instant::now();
    assert_eq!(next(&mut client).await, None);
    closed_after(answered, IDLE);
    assert_eq!(counters.idle_closes.get(), 1);
    assert_eq!(counters.header_timeouts.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_later_head_is_timed_from_its_first_byte_and_closed_without_a_408() {
    let (mut client, counters) = serve();
    client.write_all(GET).await.unwrap();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(200));
    tokio::time::sleep(HEADER * 3).await;
    for piece in GET.chunks(10) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(HEADER / 4).await;
    }
    assert_eq!(
        next(&mut client).await.map(|r| r.0),
        Some(200),
        "within time"
    );
    tokio::time::sleep(HEADER * 3).await;
    client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let began = Instant::now();
    assert_eq!(
        next(&mut client).await,
        None,
        "a 408 could follow an unflushed response: none is sent"
    );
    closed_after(began, HEADER);
    assert_eq!(counters.header_timeouts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_partial_head_sent_while_a_request_is_served_is_timed() {
    let (mut client, _) = serve();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"GET / HT").await.unwrap();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(200));
    let answered = Instant::now();
    assert_eq!(next(&mut client).await, None);
    closed_after(answered, HEADER);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let (mut client, counters) = serve();
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Let the server fill the pipe, then read nothing until past the timeout.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let stalled = Instant::now();
    tokio::time::sleep(SEND - Duration::from_secs(1)).await;
    assert_eq!(counters.send_timeouts.get(), 0, "not before the timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counters.send_timeouts.get(), 1, "at the timeout");
    let mut received = 0;
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < BIG, "the connection closed mid-body");
    assert!(stalled.elapsed() >= SEND, "{:?}", stalled.elapsed());
}

#[tokio::test(start_paused = true)]
async fn an_http2_preface_that_stalls_is_closed_after_the_header_timeout() {
    let accepted = Instant::now();
    let (mut stalled, _) = serve();
    stalled.write_all(&HTTP2_PREFACE[..10]).await.unwrap();
    assert_eq!(next(&mut stalled).await, None);
    closed_after(accepted, HEADER);
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_is_served_then_closed_after_the_idle_timeout() {
    let (client, counters) = serve();
    let (mut sender, connection) = h2::client::handshake(client).await.unwrap();
    let driving = tokio::spawn(connection);
    for _ in 0..2 {
        let request = Request::get("http://t/").body(()).unwrap();
        let (response, _) = sender.send_request(request, true).unwrap();
        assert_eq!(response.await.unwrap().status(), 200);
        // Idle longer than the header timeout: the client answers the server's pings.
        tokio::time::sleep(HEADER * 3).await;
    }
    let idle_from = Instant::now() - HEADER * 3;
    tokio::time::timeout(IDLE * 2, driving)
        .await
        .expect("the idle connection closed")
        .unwrap()
        .ok();
    closed_after(idle_from, IDLE);
    assert_eq!(counters.idle_closes.get(), 1);
}

#[test]
fn past_the_limit_no_slot_is_given_until_one_is_released() {
    let connections = connections(2);
    let first = connections.slot();
    let second = connections.slot();
    assert!(first.is_some() && second.is_some());
    assert!(connections.slot().is_none());
    drop(first);
    assert!(connections.slot().is_some());
}

#[test]
fn a_throttle_lets_one_event_through_per_interval() {
    let throttle = Throttle::new(Duration::from_secs(3600));
    assert!(throttle.ready());
    assert!(!throttle.ready());
}
