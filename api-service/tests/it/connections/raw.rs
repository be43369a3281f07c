//! Raw clients for the connection tests: plain TCP connections that speak just enough
//! HTTP/1 or HTTP/2 (frames written by hand) to behave as a careless or hostile client
//! would, which no client library does.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Connections opened at once. The listen backlog holds 128 connections not yet
/// accepted; past it the kernel drops a SYN, and the client sends it again only a second
/// later (tests still pass, in many more seconds).
const BATCH: usize = 50;

/// Opens `count` connections to `addr`.
pub async fn open(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let batch = (count - streams.len()).min(BATCH);
        let connected = join_all((0..batch).map(|_| TcpStream::connect(addr))).await;
        streams.extend(connected.into_iter().map(|c| c.expect("connect")));
    }
    streams
}

/// An HTTP/1.1 GET of `path` with `headers` (`name: value` lines).
pub fn get(path: &str, headers: &[&str]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// Sends `request` and reads the whole response: its status and body, or `None` when the
/// connection was closed or reset instead.
pub async fn exchange(stream: &mut TcpStream, request: &str) -> Option<(u16, String)> {
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

/// The status of a GET of `path` on `stream`, `None` when it was closed instead.
pub async fn status(stream: &mut TcpStream, path: &str) -> Option<u16> {
    exchange(stream, &get(path, &[]))
        .await
        .map(|(status, _)| status)
}

/// Reads until the server closes the connection (failing the test after `within`);
/// returns what it sent before and when it closed.
pub async fn closed(mut stream: TcpStream, within: Duration) -> (Vec<u8>, Instant) {
    let read = async {
        let mut received = Vec::new();
        let mut chunk = [0; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return (received, Instant::now()),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the server to close the connection")
}

/// A sample's value in the Prometheus text `exposition`.
pub fn sample(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

/// HTTP/2 frames as a client writes them (RFC 9113 §4.1, §6).
pub mod h2 {
    /// The client connection preface.
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const ACK: u8 = 0x1;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    /// `ENHANCE_YOUR_CALM`, the error code of a GOAWAY for abuse.
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    /// One frame.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len().to_be_bytes();
        let mut frame = length[length.len() - 3..].to_vec();
        frame.extend([kind, flags]);
        frame.extend(stream.to_be_bytes());
        frame.extend(payload);
        frame
    }

    /// The preface and an empty SETTINGS frame: what every client sends first.
    pub fn start() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[]));
        bytes
    }

    /// An HPACK header field `name: aaa…` (`value_len` bytes), literal without indexing
    /// (RFC 7541 §6.2.2), so it can be repeated without encoder state.
    pub fn literal(name: &str, value_len: usize) -> Vec<u8> {
        let mut field = vec![0x00];
        field.extend(length(name.len()));
        field.extend(name.as_bytes());
        field.extend(length(value_len));
        field.extend(std::iter::repeat_n(b'a', value_len));
        field
    }

    /// An HPACK string length: an integer with a 7-bit prefix (RFC 7541 §5.1), no Huffman.
    fn length(mut n: usize) -> Vec<u8> {
        if n < 127 {
            return vec![n as u8];
        }
        let mut bytes = vec![0x7f];
        n -= 127;
        while n >= 128 {
            bytes.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        bytes.push(n as u8);
        bytes
    }

    /// An HPACK header block for `GET /health` (static-table entries and one literal, so
    /// no encoder state is needed; RFC 7541 Appendix A).
    pub fn get_health() -> Vec<u8> {
        let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
        block.extend([0x04, 7]); // :path, literal without indexing
        block.extend(b"/health");
        block.extend([0x01, 1, b't']); // :authority t
        block
    }
}
