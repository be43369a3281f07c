//! How hyper serves each connection: HTTP/1 and h2c (HTTP/2 with prior knowledge, told
//! apart by hyper-util from the first bytes), with every limit set here explicitly and
//! with its reason, so that one connection can make the server hold only so much, and an
//! abusive one is closed by hyper itself.
//!
//! What hyper does not time (the first request, HTTP/1 heads, idle connections, stalled
//! sends) is done by [`super::GuardedIo`].

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::limits::Limits;

/// Largest HTTP/1 request head (hyper's read buffer; a larger one gets `431`), and the
/// largest HTTP/2 header list: a token is at most 8 KiB, no request here needs more, and
/// hyper's own bounds are 400 KB and 16 MB.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// HTTP/2 flow-control window for request bodies, per stream and per connection: the
/// protocol's initial window (hyper's is 1 MiB). No request here has a larger body, so
/// this bounds what a connection's unread bodies can hold.
const HTTP2_WINDOW: u32 = 65_535;

/// Streams one HTTP/2 connection may have open at once (nginx's default is 128; hyper's
/// 200). Each holds a response task, so this bounds one connection's share of the server.
const HTTP2_MAX_STREAMS: u32 = 128;

/// Streams a client may open and reset before the server has even accepted them: the
/// "rapid reset" attack (CVE-2023-44487). Past it the connection gets `GOAWAY
/// ENHANCE_YOUR_CALM` and is closed (h2's default, stated).
const HTTP2_MAX_PENDING_RESETS: usize = 20;

/// Streams the server may reset because the client broke the protocol on them, before
/// the whole connection is closed with `GOAWAY ENHANCE_YOUR_CALM` (h2's default is 1024):
/// a client that keeps provoking resets costs work on every one.
const HTTP2_MAX_ERROR_RESETS: usize = 128;

/// The builder every accepted connection is served with.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HEAD_BYTES)
        // Heads are timed by `GuardedIo`: hyper's timer would also close idle
        // keep-alive connections (see its module doc).
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(HTTP2_MAX_ERROR_RESETS)
        .initial_connection_window_size(HTTP2_WINDOW)
        .initial_stream_window_size(HTTP2_WINDOW)
        // A PING every half header timeout once nothing has been received, and the
        // connection closed when its answer takes another half. A client cannot answer a
        // PING in the middle of a header block (RFC 9113 §6.10), so a header block that
        // stalls after the first request is closed within the header timeout of its first
        // byte; and a peer that went away is found.
        .keep_alive_interval(half(limits.header))
        .keep_alive_timeout(half(limits.header));
    builder
}

fn half(duration: Duration) -> Duration {
    duration / 2
}
