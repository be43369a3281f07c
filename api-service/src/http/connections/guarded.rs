//! The connection's IO, with the deadlines hyper does not keep: [`GuardedIo`] ends a
//! connection whose first request head does not arrive within `API_HEADER_TIMEOUT_SECS`
//! of its accept, whose HTTP/1 head does not arrive whole within that time of its first
//! byte, that stays idle for `API_IDLE_TIMEOUT_SECS`, or that accepts no byte of a
//! response for `API_SEND_TIMEOUT_SECS`.
//!
//! Why here and not in hyper: hyper's `header_read_timeout` starts whenever hyper waits
//! for a head, so on a keep-alive connection it also measures idle time (at 10 s it would
//! close what the contract keeps for 620 s); hyper-util's protocol detection, before
//! either protocol runs, has no deadline at all; and hyper has neither an idle timeout nor
//! a send timeout. The deadlines are polled where hyper already waits — a read that is
//! pending, a write that is pending — so they cost nothing while bytes flow, and a
//! connection holds at most two timers, made the first time one is needed.
//!
//! A `408` is written only on a connection where nothing has been written yet (its first
//! request): there it cannot land inside a response hyper has not flushed. Otherwise the
//! connection is simply closed. HTTP/2 header blocks that stall after the first request
//! are closed by hyper's keep-alive ping instead (see [`super::protocol`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::admission::Slot;
use super::phase::{Phase, Waiting};
use super::service::Watch;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a timed-out HTTP/1 client is told before the connection closes.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
    content-type: application/json\r\ncontent-length: 79\r\nconnection: close\r\n\r\n\
    {\"error\":\"request_timeout\",\"message\":\"the request head did not arrive in time\"}";

/// The protocol the connection speaks, as hyper-util's detection decides it: HTTP/2 when
/// the first 24 bytes are its preface, else HTTP/1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// The bytes so far (this many) are a prefix of the HTTP/2 preface.
    Unknown(usize),
    Http1,
    Http2,
}

/// The read side's timer and the instant it is set to. It only has to wake the
/// connection no later than the deadline of the state it is in: woken, the connection
/// looks at its state again. So a timer that is due later than a new deadline is moved,
/// and one due earlier is left alone, which keeps timer-wheel work off the hot path.
struct Timer {
    sleep: Pin<Box<Sleep>>,
    due: Instant,
}

/// An accepted connection's IO that ends it when a deadline passes (see the module doc).
pub struct GuardedIo<S> {
    io: S,
    slot: Slot,
    phase: Arc<Phase>,
    protocol: Protocol,
    accepted: Instant,
    /// Wakes the read side for the deadline of the first request, a head or idleness.
    reading: Option<Timer>,
    /// The HTTP/1 head being timed and its deadline.
    timed_head: Option<(u32, Instant)>,
    /// The send deadline, while a write is pending.
    sending: Option<Pin<Box<Sleep>>>,
    send_stalled: bool,
    written: bool,
}

impl<S> GuardedIo<S> {
    /// `io`, accepted now into `slot`, and the [`Watch`] its service reports to.
    pub fn new(io: S, slot: Slot) -> (Self, Watch) {
        let accepted = Instant::now();
        let phase = Arc::new(Phase::new(accepted));
        let guarded = Self {
            io,
            slot,
            phase: phase.clone(),
            protocol: Protocol::Unknown(0),
            accepted,
            reading: None,
            timed_head: None,
            sending: None,
            send_stalled: false,
            written: false,
        };
        (guarded, Watch::new(phase))
    }

    /// Follows the protocol over bytes just read, and tells the phase of HTTP/1 bytes.
    fn saw(&mut self, bytes: &[u8]) {
        if let Protocol::Unknown(matched) = self.protocol {
            let n = bytes.len().min(HTTP2_PREFACE.len() - matched);
            self.protocol = if bytes[..n] != HTTP2_PREFACE[matched..matched + n] {
                Protocol::Http1
            } else if matched + n < HTTP2_PREFACE.len() {
                Protocol::Unknown(matched + n)
            } else {
                Protocol::Http2
            };
        }
        if self.protocol == Protocol::Http1 {
            self.phase.http1_bytes_read();
        }
    }

    /// The deadline of the state the connection is in; `None` while a response is on its
    /// way. A head's counts from the first read that left it incomplete, microseconds
    /// after its first byte (a head that arrives whole is never timed); an idle period's
    /// from the end of the last response.
    fn read_deadline(&mut self, waiting: Waiting) -> Option<Instant> {
        let limits = self.slot.limits();
        match waiting {
            Waiting::FirstRequest => Some(self.accepted + limits.header),
            Waiting::Head(head) => match self.timed_head {
                Some((timed, deadline)) if timed == head => Some(deadline),
                _ => {
                    let deadline = Instant::now() + limits.header;
                    self.timed_head = Some((head, deadline));
                    Some(deadline)
                }
            },
            Waiting::Idle(_) => Some(self.phase.idle_since() + limits.idle),
            Waiting::Response => None,
        }
    }

    /// Whether the deadline of the state the connection is in has passed. When it has
    /// not, the timer is made to wake the task by then; while a response is on its way
    /// it only has to wake it some time (to look again once the response is over).
    fn read_expired(&mut self, cx: &mut Context<'_>) -> Option<Waiting> {
        let waiting = self.phase.waiting();
        let pending = |timer: &Timer| !timer.sleep.is_elapsed();
        let deadline = match self.read_deadline(waiting) {
            Some(deadline) => deadline,
            None if self.reading.as_ref().is_some_and(pending) => return None,
            None => Instant::now() + self.slot.limits().idle,
        };
        if let Some(timer) = &self.reading
            && pending(timer)
            && timer.due <= deadline
        {
            return None;
        }
        if waiting != Waiting::Response && Instant::now() >= deadline {
            return Some(waiting);
        }
        let timer = match &mut self.reading {
            Some(timer) => {
                timer.sleep.as_mut().reset(deadline);
                timer.due = deadline;
                timer
            }
            None => self.reading.insert(Timer {
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
                due: deadline,
            }),
        };
        if timer.sleep.as_mut().poll(cx).is_ready() {
            // Due in the instant since it was checked: look again.
            cx.waker().wake_by_ref();
        }
        None
    }

    /// Ends a connection whose head did not arrive in time: an HTTP/1 client that has
    /// begun its first request and been sent nothing yet is told why first (best effort).
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> io::Error
    where
        S: AsyncWrite + Unpin,
    {
        if self.protocol == Protocol::Http1 && !self.written {
            let _ = Pin::new(&mut self.io).poll_write(cx, REQUEST_TIMEOUT);
        }
        self.slot.counters().header_timeouts.inc();
        io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received within API_HEADER_TIMEOUT_SECS",
        )
    }

    /// The outcome of a write: progress turns the send deadline off until the next
    /// stall; a pending write is failed once the deadline has passed.
    fn timed_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let Poll::Ready(result) = written else {
            return self.stalled(cx).map(Err);
        };
        self.send_stalled = false;
        if matches!(result, Ok(n) if n > 0) {
            self.written = true;
        }
        Poll::Ready(result)
    }

    /// A write is pending: the send deadline starts (once per stall); once it has passed
    /// the write fails, and hyper ends the connection.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = Instant::now() + self.slot.limits().send;
        let sleep = self
            .sending
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.send_stalled {
            sleep.as_mut().reset(deadline);
            self.send_stalled = true;
        }
        ready!(sleep.as_mut().poll(cx));
        self.slot.counters().send_timeouts.inc();
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client accepted no byte within API_SEND_TIMEOUT_SECS",
        ))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<S> {
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
            Poll::Pending => match this.read_expired(cx) {
                None => Poll::Pending,
                Some(Waiting::Idle(_)) => {
                    // An end of stream: hyper closes an idle connection gracefully.
                    this.slot.counters().idle_closes.inc();
                    Poll::Ready(Ok(()))
                }
                Some(_) => Poll::Ready(Err(this.head_timed_out(cx))),
            },
            failed => failed,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.timed_write(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.timed_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            Poll::Ready(result) => {
                self.send_stalled = false;
                Poll::Ready(result)
            }
        }
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
        let json: serde_json::Value = serde_json::from_slice(body.as_bytes()).unwrap();
        assert_eq!(json["error"], "request_timeout");
    }
}
