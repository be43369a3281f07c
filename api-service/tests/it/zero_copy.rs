//! Bodies sent with `sendfile` from the snapshot's sealed files: whole to a slow reader,
//! and whole, still from its file, when the snapshot changes while one is on its way.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::*;

/// Offers in the snapshots below: an identity body of about 10 MB, more than the kernel
/// buffers for one socket (`net.ipv4.tcp_wmem` allows 4 MB here), so the API's
/// `sendfile` calls each send part of it.
const LARGE: u64 = 30_000;

/// A connection with a small receive buffer that has sent a GET of the identity document.
async fn slow_connection(api: &TestApi) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(api.addr).await.unwrap();
    let request = format!(
        "GET /api/v4/ofertasws HTTP/1.1\r\nHost: test\r\nAuthorization: {}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        bearer(&user_token())
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads at least `at_least` more bytes into `received`, 4 KiB at a time.
async fn read_slowly(stream: &mut TcpStream, received: &mut Vec<u8>, at_least: usize) {
    let goal = received.len() + at_least;
    let mut chunk = [0; 4096];
    while received.len() < goal {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed after {} bytes", received.len());
        received.extend_from_slice(&chunk[..n]);
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Splits a whole HTTP/1.1 response into its head and body, checking `Content-Length`.
fn body_of(response: &[u8]) -> &[u8] {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = std::str::from_utf8(&response[..end])
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let body = &response[end + 4..];
    assert_eq!(body.len(), length, "body length against Content-Length");
    body
}

async fn sendfile_bytes(api: &TestApi) -> u64 {
    get_text(api, "/metrics")
        .await
        .lines()
        .find_map(|line| line.strip_prefix("ofertasws_http_sendfile_bytes_total "))
        .expect("the sendfile counter")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_slow_reader_gets_the_whole_body_sent_from_the_snapshot_file() {
    let (_prefix, _writer, written, api) = ready_api(LARGE).await;
    let mut stream = slow_connection(&api).await;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    assert!(
        body_of(&response) == written.document,
        "the body differs from the document"
    );
    assert_eq!(sendfile_bytes(&api).await, written.meta.json_bytes);
}

#[tokio::test]
async fn a_body_on_its_way_when_the_snapshot_changes_is_finished_unchanged() {
    let (_prefix, writer, first, api) = ready_api(LARGE).await;
    let mut stream = slow_connection(&api).await;
    let mut response = Vec::new();
    read_slowly(&mut stream, &mut response, 256 * 1024).await;

    let second = writer.publish(LARGE + 1, true).await;
    wait_for_version(&api, &second.meta.version, Duration::from_secs(5)).await;
    stream.read_to_end(&mut response).await.unwrap();

    assert!(
        body_of(&response) == first.document,
        "the body differs from the document it started as"
    );
    // The first snapshot's file lives as long as a response sends from it.
    assert_eq!(sendfile_bytes(&api).await, first.meta.json_bytes);
}
