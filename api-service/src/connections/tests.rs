//! The head timer on real hyper connections over in-memory pipes, with tokio's clock
//! paused: time passes only while every task waits, so each case is exact and takes no
//! real time. (`tests/it/connections.rs` checks the same on real sockets.)

use std::convert::Infallible;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::Instant;

use shared::config::RedisSettings;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

fn connections(max: usize) -> Arc<Connections> {
    let mut settings = ApiSettings::for_secret(RedisSettings::new("redis://x", "p"), "s");
    settings.header_timeout_secs = TIMEOUT.as_secs();
    settings.max_connections = max;
    Connections::new(&settings, ConnectionMetrics::default())
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// Serves one connection as `server.rs` does, with a service that reads the whole request
/// body and answers with its length (`/slow` after a second); returns the client's end.
fn serve() -> DuplexStream {
    let (client, server) = duplex(64 * 1024);
    let slot = connections(1).slot().unwrap();
    let (io, watch) = slot.watch(server);
    let service = service_fn(|request: Request<Incoming>| -> Answer {
        Box::pin(async move {
            if request.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let length = match request.into_body().collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => usize::MAX,
            };
            Ok(Response::new(Full::new(Bytes::from(length.to_string()))))
        })
    });
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        let _ = builder
            .serve_connection(TokioIo::new(io), watch.service(service))
            .await;
    });
    client
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
/// within far more than the timeout.
async fn next(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    tokio::time::timeout(TIMEOUT * 20, response(stream))
        .await
        .expect("neither a response nor a close")
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn a_body_sent_slowly_after_its_head_is_read_whole_and_idle_is_never_timed() {
    let mut client = serve();
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
        .await
        .unwrap();
    for byte in [b"a", b"b", b"c"] {
        tokio::time::sleep(TIMEOUT * 2).await;
        client.write_all(byte).await.unwrap();
    }
    assert_eq!(next(&mut client).await, Some((200, "3".into())));
    tokio::time::sleep(TIMEOUT * 100).await;
    client.write_all(GET).await.unwrap();
    assert_eq!(next(&mut client).await, Some((200, "0".into())));
}

#[tokio::test(start_paused = true)]
async fn a_head_is_timed_from_its_first_byte_not_from_when_the_connection_went_idle() {
    let mut client = serve();
    tokio::time::sleep(TIMEOUT * 3).await;
    for piece in GET.chunks(10) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(TIMEOUT / 4).await;
    }
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(200));
    tokio::time::sleep(TIMEOUT * 3).await;
    client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let began = Instant::now();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(408));
    assert_eq!(next(&mut client).await, None, "closed after the 408");
    let waited = began.elapsed();
    assert!(
        waited >= TIMEOUT && waited < TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partial_head_sent_while_a_request_is_served_is_timed() {
    let mut client = serve();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"GET / HT").await.unwrap();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(200));
    let answered = Instant::now();
    assert_eq!(next(&mut client).await.map(|r| r.0), Some(408));
    let waited = answered.elapsed();
    assert!(waited < TIMEOUT + Duration::from_secs(1), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn an_http2_preface_that_stalls_is_closed_and_an_idle_one_is_not() {
    let mut stalled = serve();
    stalled.write_all(&http2::PREFACE[..10]).await.unwrap();
    let began = Instant::now();
    assert_eq!(next(&mut stalled).await, None);
    assert!(began.elapsed() >= TIMEOUT);

    let mut idle = serve();
    idle.write_all(http2::PREFACE).await.unwrap();
    idle.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut settings = [0; 9];
    idle.read_exact(&mut settings).await.unwrap();
    assert_eq!(settings[3], 4, "the server's SETTINGS");
    let read = tokio::time::timeout(TIMEOUT * 100, async {
        let mut rest = [0; 256];
        loop {
            if let Ok(0) | Err(_) = idle.read(&mut rest).await {
                return;
            }
        }
    })
    .await;
    assert!(read.is_err(), "an idle HTTP/2 connection was closed");
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
