//! Where one connection is between its requests, as its IO ([`super::GuardedIo`]) and
//! its service ([`super::Watched`]) see it together: the IO sees bytes arrive, only the
//! service sees a head complete (it is called with the request) and a response end
//! (hyper drops the response body). From both the IO decides which deadline runs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// What a connection is waiting for, and so which deadline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waiting {
    /// No request has reached the service yet: the first head must arrive whole within
    /// the header timeout of the connection being accepted.
    FirstRequest,
    /// An HTTP/1 head has begun (the number tells heads apart): it must arrive whole
    /// within the header timeout of its first byte.
    Head(u32),
    /// A response is on its way: nothing is read-timed.
    Response,
    /// Nothing is pending since the request numbered here ended: the connection is closed
    /// after the idle timeout.
    Idle(u32),
}

/// The connection's state, shared by its IO and its service. HTTP/2 finishes responses
/// on other tasks, so the counts are atomic. `http1` is read and written by one task at a
/// time: on an HTTP/1 connection everything runs on the connection's task, and on an
/// HTTP/2 connection no bytes are ever reported to it, so its head flag never rises.
#[derive(Debug)]
pub(super) struct Phase {
    /// When the connection was accepted: the instant idle times count from.
    accepted: Instant,
    /// When the last response ended, in nanoseconds after `accepted`.
    idle_since: AtomicU64,
    /// Requests the service has been called with.
    served: AtomicU32,
    /// Requests whose responses hyper has not finished with.
    in_flight: AtomicU32,
    /// HTTP/1 only: bits 0–2 are [`HEAD`], [`WITH_BODY`] and [`READ_AHEAD`], the rest
    /// counts heads begun (so a head begun after the deadline was set gets its own).
    http1: AtomicU32,
}

/// An HTTP/1 head has begun and the service has not been called with it yet.
const HEAD: u32 = 0b001;
/// The request in progress has a body, so bytes read during it may be body bytes.
const WITH_BODY: u32 = 0b010;
/// Bytes were read while a request was in progress.
const READ_AHEAD: u32 = 0b100;
const FLAGS: u32 = 0b111;
/// One head begun, in the count above the flags.
const NEXT_HEAD: u32 = 0b1000;

impl Phase {
    /// The state of a connection accepted at `accepted`.
    pub(super) fn new(accepted: Instant) -> Self {
        Self {
            accepted,
            idle_since: AtomicU64::new(0),
            served: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            http1: AtomicU32::new(0),
        }
    }

    /// HTTP/1 bytes arrived: with no request in progress a head has begun; during one
    /// they may be the next (pipelined) head.
    pub(super) fn http1_bytes_read(&self) {
        let state = self.http1.load(Relaxed);
        if self.in_flight.load(Relaxed) > 0 {
            self.http1.store(state | READ_AHEAD, Relaxed);
        } else if state & HEAD == 0 {
            self.http1.store(begin_head(state), Relaxed);
        }
    }

    /// The service was called: a head is complete and its response is on its way.
    pub(super) fn request(&self, with_body: bool) {
        self.served.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
        let state = self.http1.load(Relaxed);
        let body = if with_body { WITH_BODY } else { 0 };
        self.http1.store((state & !FLAGS) | body, Relaxed);
    }

    /// hyper is done with a response. Bytes read during an HTTP/1 request without a body
    /// can only be the next head, which has then begun; after a request with a body they
    /// may have been the body, and the next head is timed from its next byte.
    pub(super) fn responded(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            let since = u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.idle_since.store(since, Relaxed);
        }
        let state = self.http1.load(Relaxed);
        let next = if state & (READ_AHEAD | WITH_BODY) == READ_AHEAD {
            begin_head(state)
        } else {
            state & !FLAGS
        };
        self.http1.store(next, Relaxed);
    }

    /// When the last response ended (meaningful while [`Waiting::Idle`]).
    pub(super) fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.idle_since.load(Relaxed))
    }

    /// What the connection waits for now.
    pub(super) fn waiting(&self) -> Waiting {
        let served = self.served.load(Relaxed);
        let state = self.http1.load(Relaxed);
        if served == 0 {
            Waiting::FirstRequest
        } else if state & HEAD != 0 {
            Waiting::Head(state / NEXT_HEAD)
        } else if self.in_flight.load(Relaxed) > 0 {
            Waiting::Response
        } else {
            Waiting::Idle(served)
        }
    }
}

fn begin_head(state: u32) -> u32 {
    (state & !FLAGS).wrapping_add(NEXT_HEAD) | HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase() -> Phase {
        Phase::new(Instant::now())
    }

    #[test]
    fn a_head_is_pending_from_its_first_byte_to_its_request() {
        let phase = phase();
        assert_eq!(phase.waiting(), Waiting::FirstRequest);
        phase.http1_bytes_read();
        assert_eq!(phase.waiting(), Waiting::FirstRequest, "still the first");
        phase.request(true);
        assert_eq!(phase.waiting(), Waiting::Response);
        phase.http1_bytes_read();
        assert_eq!(phase.waiting(), Waiting::Response, "body bytes are no head");
        phase.responded();
        let Waiting::Idle(first) = phase.waiting() else {
            panic!("idle after a request with a body: {:?}", phase.waiting());
        };
        phase.http1_bytes_read();
        let Waiting::Head(head) = phase.waiting() else {
            panic!("a head began: {:?}", phase.waiting());
        };
        phase.http1_bytes_read();
        assert_eq!(phase.waiting(), Waiting::Head(head), "the same head");
        phase.request(false);
        phase.responded();
        assert_ne!(phase.waiting(), Waiting::Idle(first), "a new idle period");
    }

    #[test]
    fn bytes_read_during_a_request_without_body_begin_the_next_head() {
        let phase = phase();
        phase.request(false);
        phase.responded();
        assert!(
            matches!(phase.waiting(), Waiting::Idle(_)),
            "nothing read ahead"
        );
        phase.http1_bytes_read();
        phase.request(false);
        phase.http1_bytes_read();
        phase.responded();
        assert!(
            matches!(phase.waiting(), Waiting::Head(_)),
            "a pipelined head"
        );
    }

    #[test]
    fn concurrent_requests_keep_the_connection_busy_until_the_last_ends() {
        let phase = phase();
        phase.request(false);
        phase.request(false);
        phase.responded();
        assert_eq!(phase.waiting(), Waiting::Response);
        phase.responded();
        assert_eq!(phase.waiting(), Waiting::Idle(2));
    }
}
