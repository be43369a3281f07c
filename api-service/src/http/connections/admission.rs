//! Connections cannot starve the API: at most `API_MAX_CONNECTIONS` are served at once
//! ([`Connections`]; more are reset as soon as accepted), and the soft file-descriptor
//! limit is raised at start ([`raise_fd_limit`]) so that a flood of connections meets the
//! cap, not `EMFILE`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit};
use tokio::net::TcpStream;

use super::counters::ConnectionMetrics;
use super::limits::Limits;

/// File descriptors the process needs besides its connections: Redis connections, the
/// snapshot's memory files, the runtime's own. Only used to warn when the limit on open
/// files would be reached before `API_MAX_CONNECTIONS`.
const OTHER_FDS: u64 = 256;

/// At most one warning per this interval about refused connections: under a flood they
/// happen thousands of times a second; the metrics count them all.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The server's connection limits and the count of open connections.
pub struct Connections {
    limits: Limits,
    open: AtomicUsize,
    metrics: ConnectionMetrics,
    refusals: Throttle,
}

impl Connections {
    /// Connections within `limits`, counted in `metrics`.
    pub fn new(limits: Limits, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            metrics,
            refusals: Throttle::new(WARN_EVERY),
        })
    }

    /// The limits connections are served within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Raises the limit on open files ([`raise_fd_limit`]) so that connections up to the
    /// cap are not refused by the kernel with `EMFILE` first, and warns when even the
    /// hard limit is too low for that.
    pub fn reserve_fds(&self) {
        if let Some(fds) = raise_fd_limit()
            && (self.limits.max_connections as u64).saturating_add(OTHER_FDS) > fds
        {
            tracing::warn!(
                fd.limit = fds,
                connections.limit = self.limits.max_connections,
                "the limit on open files is below API_MAX_CONNECTIONS: accepting fails with EMFILE before the cap is reached"
            );
        }
    }

    /// A place for the accepted `stream`, or `None` when `API_MAX_CONNECTIONS`
    /// connections are open: then the stream is set to be reset when dropped (the client
    /// learns at once, and this side keeps no `TIME_WAIT` state for a connection it
    /// never served).
    pub fn admit(self: &Arc<Self>, stream: &TcpStream) -> Option<Slot> {
        let slot = self.slot();
        if slot.is_none() {
            if let Err(e) = rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO)) {
                tracing::debug!(error = %e, "cannot set SO_LINGER on a refused connection");
            }
            if self.refusals.ready() {
                tracing::warn!(
                    connections.limit = self.limits.max_connections,
                    "API_MAX_CONNECTIONS connections are open: new connections are closed at once"
                );
            }
        }
        slot
    }

    /// A place if one is free, counted either way.
    pub(super) fn slot(self: &Arc<Self>) -> Option<Slot> {
        if self.open.fetch_add(1, Relaxed) >= self.limits.max_connections {
            self.open.fetch_sub(1, Relaxed);
            self.metrics.refused.inc();
            return None;
        }
        self.metrics.open.inc();
        Some(Slot(self.clone()))
    }
}

/// An admitted connection's place among the `API_MAX_CONNECTIONS`; given back on drop.
pub struct Slot(Arc<Connections>);

impl Slot {
    /// The limits the connection is served within.
    pub(super) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Where the connection's closes are counted.
    pub(super) fn counters(&self) -> &ConnectionMetrics {
        &self.0.metrics
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
        self.0.metrics.open.dec();
    }
}

/// Raises the soft limit on open files to the hard limit (the soft one is often 1024,
/// far below `API_MAX_CONNECTIONS`). Returns the soft limit in force, `None` when
/// unlimited.
pub fn raise_fd_limit() -> Option<u64> {
    let Rlimit { current, maximum } = rustix::process::getrlimit(Resource::Nofile);
    match (current, maximum) {
        (Some(soft), Some(hard)) if soft < hard => {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match rustix::process::setrlimit(Resource::Nofile, raised) {
                Ok(()) => Some(hard),
                Err(e) => {
                    tracing::warn!(error = %e, fd.soft_limit = soft, fd.hard_limit = hard, "cannot raise the limit on open files");
                    Some(soft)
                }
            }
        }
        _ => current,
    }
}

/// Lets an event through at most once per interval, from any thread.
pub struct Throttle {
    every: Duration,
    start: Instant,
    /// Milliseconds since `start` before which the next event is held back.
    next: AtomicU64,
}

impl Throttle {
    /// A throttle letting one event through per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            start: Instant::now(),
            next: AtomicU64::new(0),
        }
    }

    /// Whether this event goes through (the first one, then one per interval).
    pub fn ready(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next.load(Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(next, now + self.every.as_millis() as u64, Relaxed, Relaxed)
                .is_ok()
    }
}
