//! The request-head timer: a connection that has begun a request head and not sent all
//! of it within `API_HEADER_TIMEOUT_SECS` is closed (HTTP/1 gets a `408` first).
//!
//! hyper's own `header_read_timeout` cannot be used: it starts whenever hyper waits for
//! a head, so it also closes idle keep-alive connections. The timer here starts with the
//! first byte of a head, which only the connection's IO sees ([`HeadTimed`]), and stops
//! when the head is complete, which for HTTP/1 only the service sees
//! ([`super::Watched`]): it is called with the parsed request. The request body read
//! after that is never timed. HTTP/2 heads are header blocks in frames, which
//! [`super::http2`] finds in the bytes.
//!
//! Per request this costs a few relaxed atomic operations and no allocation; the timer
//! itself is made once per connection, and only reset when a head is still incomplete
//! after a read.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::Slot;
use super::http2::{Frames, PREFACE};
use super::watch::Watch;

/// What a timed-out HTTP/1 client is told before the connection closes.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
    content-type: application/json\r\ncontent-length: 79\r\nconnection: close\r\n\r\n\
    {\"error\":\"request_timeout\",\"message\":\"the request head did not arrive in time\"}";

/// Where one HTTP/1 connection is between requests, shared by its IO and its service.
/// Bits 0–1 are the phase, then two flags, then a count of heads begun: the timer
/// compares counts, so a head that began after the timer was set gets a fresh deadline.
#[derive(Default)]
pub(super) struct Phase(AtomicU32);

/// No request pending: nothing is timed.
const IDLE: u32 = 0;
/// A head has begun and the service has not yet been called for it.
const HEAD: u32 = 1;
/// The service has the request; the response has not been written yet.
const BUSY: u32 = 2;
const PHASE: u32 = 0b11;
/// The request in progress has a body (bytes read while busy may be body bytes).
const WITH_BODY: u32 = 0b100;
/// Bytes were read while busy.
const READ_AHEAD: u32 = 0b1000;
/// One head begun, in the count above the flags.
const NEXT_HEAD: u32 = 0b1_0000;

impl Phase {
    /// Bytes arrived: when idle, a head has begun.
    fn bytes_read(&self) {
        let state = self.0.load(Relaxed);
        match state & PHASE {
            IDLE => self.0.store(begin_head(state), Relaxed),
            BUSY => self.0.store(state | READ_AHEAD, Relaxed),
            _ => {}
        }
    }

    /// The service was called: the head is complete.
    pub(super) fn request(&self, with_body: bool) {
        let state = self.0.load(Relaxed);
        let body = if with_body { WITH_BODY } else { 0 };
        self.0.store(
            (state & !(PHASE | WITH_BODY | READ_AHEAD)) | BUSY | body,
            Relaxed,
        );
    }

    /// The response has been handed to hyper whole. Bytes read during a request without
    /// a body can only be the next request (pipelined), so its head has begun; after a
    /// request with a body they may have been the body, and the next head is timed from
    /// its next byte.
    pub(super) fn responded(&self) {
        let state = self.0.load(Relaxed);
        if state & PHASE != BUSY {
            return;
        }
        let next = if state & (READ_AHEAD | WITH_BODY) == READ_AHEAD {
            begin_head(state)
        } else {
            (state & !(PHASE | WITH_BODY | READ_AHEAD)) | IDLE
        };
        self.0.store(next, Relaxed);
    }

    /// The count of the head in progress, if one is.
    fn head(&self) -> Option<u32> {
        let state = self.0.load(Relaxed);
        (state & PHASE == HEAD).then_some(state / NEXT_HEAD)
    }
}

fn begin_head(state: u32) -> u32 {
    (state & !(PHASE | WITH_BODY | READ_AHEAD)).wrapping_add(NEXT_HEAD) | HEAD
}

/// The protocol the connection speaks, as hyper-util's detection decides it: HTTP/2
/// when the first 24 bytes are its preface, else HTTP/1.
enum Protocol {
    /// Bytes matched so far are a prefix of the HTTP/2 preface.
    Unknown {
        matched: usize,
    },
    Http1,
    Http2(Frames),
}

/// A connection's IO that ends it, with an error from a read, once a request head has
/// been pending longer than the timeout.
pub struct HeadTimed<S> {
    io: S,
    phase: Arc<Phase>,
    protocol: Protocol,
    /// Made when a head is first still incomplete after a read, then reused.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The head whose deadline `sleep` holds.
    timed_head: Option<u32>,
    slot: Slot,
}

impl<S> HeadTimed<S> {
    pub(super) fn new(io: S, slot: Slot) -> (Self, Watch) {
        let phase = Arc::new(Phase::default());
        let timed = Self {
            io,
            phase: phase.clone(),
            protocol: Protocol::Unknown { matched: 0 },
            sleep: None,
            timed_head: None,
            slot,
        };
        (timed, Watch(phase))
    }

    /// Follows the protocol over bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if let Protocol::Unknown { matched } = &mut self.protocol {
            let n = bytes.len().min(PREFACE.len() - *matched);
            if bytes[..n] != PREFACE[*matched..*matched + n] {
                self.protocol = Protocol::Http1;
            } else if *matched + n < PREFACE.len() {
                *matched += n;
            } else {
                let mut frames = Frames::default();
                frames.read(&bytes[n..]);
                self.protocol = Protocol::Http2(frames);
                self.timed_head = None;
                return;
            }
        }
        match &mut self.protocol {
            Protocol::Http2(frames) => frames.read(bytes),
            _ => self.phase.bytes_read(),
        }
    }

    /// The head in progress, if any: before the protocol is known, the bytes seen so far
    /// are one.
    fn head(&self) -> Option<u32> {
        match &self.protocol {
            Protocol::Http2(frames) => frames.head(),
            _ => self.phase.head(),
        }
    }

    /// Whether the head in progress has been pending longer than the timeout; when it
    /// has not, the task is woken when it will have. The deadline counts from the first
    /// read that left the head incomplete, microseconds after its first byte.
    fn expired(&mut self, head: u32, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.slot.header_timeout();
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if self.timed_head != Some(head) {
            sleep.as_mut().reset(deadline);
            self.timed_head = Some(head);
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// Ends the connection: tells an HTTP/1 client why (best effort: the connection
    /// closes whether or not that fits in the socket buffer) and counts it.
    fn time_out(&mut self, cx: &mut Context<'_>) -> io::Error
    where
        S: AsyncWrite + Unpin,
    {
        if matches!(self.protocol, Protocol::Http1) {
            let _ = Pin::new(&mut self.io).poll_write(cx, REQUEST_TIMEOUT);
        }
        self.slot.timed_out();
        io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received within API_HEADER_TIMEOUT_SECS",
        )
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadTimed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.saw(read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.head() {
                Some(head) if this.expired(head, cx) => Poll::Ready(Err(this.time_out(cx))),
                _ => Poll::Pending,
            },
            failed => failed,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadTimed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_body_has_the_length_it_announces() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "request_timeout");
    }

    #[test]
    fn a_head_is_pending_from_its_first_byte_to_its_request() {
        let phase = Phase::default();
        assert_eq!(phase.head(), None, "a new connection is idle");
        phase.bytes_read();
        let first = phase.head().unwrap();
        phase.bytes_read();
        assert_eq!(phase.head(), Some(first), "more bytes of the same head");
        phase.request(true);
        phase.bytes_read();
        assert_eq!(phase.head(), None, "body bytes are not a head");
        phase.responded();
        assert_eq!(phase.head(), None, "idle after a request with a body");
        phase.bytes_read();
        assert_ne!(
            phase.head().unwrap(),
            first,
            "the next head gets its own deadline"
        );
    }

    #[test]
    fn bytes_read_during_a_request_without_body_begin_the_next_head() {
        let phase = Phase::default();
        phase.bytes_read();
        phase.request(false);
        assert_eq!(phase.head(), None);
        phase.responded();
        assert_eq!(phase.head(), None, "nothing read ahead: idle");
        phase.bytes_read();
        phase.request(false);
        phase.bytes_read();
        phase.responded();
        assert!(phase.head().is_some(), "a pipelined head is timed");
    }
}
