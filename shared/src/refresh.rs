//! The refresh request/outcome protocol, written once for every caller: publish a
//! [`RefreshRequest`] on `P:refresh`, then wait for the `refresh.*` event that answers it,
//! falling back to the outcome the refresher also keeps in Redis
//! ([`SnapshotStore::recall_outcome`]) for an event lost while the event subscription was
//! reconnecting.
//!
//! `POST /api/v4/ofertasws/refresh` and `refresh-service trigger` both go through
//! [`RefreshRequester`]. The waiter reads events from an [`EventStream`]: the API hands it
//! a receiver of the events its one subscriber task parses and broadcasts, `trigger` the
//! messages of a subscriber of its own. Either way the stream is subscribed before the
//! request goes out, so the answer cannot slip past: [`RefreshRequester::request_and_wait`]
//! takes it already subscribed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::Client;
use thiserror::Error;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::events::{Event, RefreshOutcome, RefreshRequest};
use crate::keys::Keys;
use crate::store::SnapshotStore;

/// How often a waiter looks for the kept outcome while it waits for the event.
pub const RECALL_EVERY: Duration = Duration::from_secs(1);

/// What an [`EventStream`] yields next.
#[derive(Debug)]
pub enum Received {
    /// An event from `P:events`.
    Event(Arc<Event>),
    /// Events were dropped because the reader fell behind; the answer may be among them.
    Missed,
    /// The stream ended: no more events will come.
    Closed,
}

/// Where a waiter reads the events of `P:events` from.
pub trait EventStream: Send {
    /// The next event, or why there is none.
    fn next_event(&mut self) -> impl Future<Output = Received> + Send;
}

/// The API's fan-out: events its subscriber task has already parsed.
impl EventStream for broadcast::Receiver<Arc<Event>> {
    async fn next_event(&mut self) -> Received {
        match self.recv().await {
            Ok(event) => Received::Event(event),
            Err(RecvError::Lagged(_)) => Received::Missed,
            Err(RecvError::Closed) => Received::Closed,
        }
    }
}

/// The messages of a subscriber of one's own, subscribed to `P:events`; a message that is
/// not an event is skipped.
impl EventStream for broadcast::Receiver<fred::types::Message> {
    async fn next_event(&mut self) -> Received {
        loop {
            match self.recv().await {
                Ok(message) => {
                    if let Ok(event) = Event::from_message(&message) {
                        return Received::Event(Arc::new(event));
                    }
                }
                Err(RecvError::Lagged(_)) => return Received::Missed,
                Err(RecvError::Closed) => return Received::Closed,
            }
        }
    }
}

/// Why a refresh request has no outcome.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Nothing listens on the refresh channel: no refresh service is running.
    #[error(
        "no refresh-service is subscribed to {channel} (request {request_id} was not delivered)"
    )]
    NoRefresher {
        /// The refresh channel.
        channel: String,
        /// The request nobody received.
        request_id: String,
    },
    /// Redis did not take the request.
    #[error("cannot publish the refresh request: {0}")]
    Redis(#[source] fred::error::Error),
    /// No outcome arrived in time; the refresh may still complete.
    #[error("no outcome for request {request_id} within {}s; it may still complete", .after.as_secs())]
    TimedOut {
        /// The request waited for.
        request_id: String,
        /// How long it was waited for.
        after: Duration,
    },
}

/// Publishes refresh requests and waits for their outcomes.
#[derive(Clone)]
pub struct RefreshRequester {
    store: SnapshotStore,
}

impl RefreshRequester {
    /// A requester publishing through `client` (connected, or connecting) under `keys`.
    pub fn new(client: Client, keys: Keys) -> Self {
        Self {
            store: SnapshotStore::new(client, keys),
        }
    }

    /// Publishes `request`, giving it a fresh request id and the current trace context
    /// when it has none, and returns its request id.
    ///
    /// # Errors
    /// [`RequestError::NoRefresher`] when no refresher received it,
    /// [`RequestError::Redis`] when it could not be published.
    pub async fn request(&self, mut request: RefreshRequest) -> Result<String, RequestError> {
        let request_id = request
            .request_id
            .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        if request.traceparent.is_none() {
            request.traceparent = crate::telemetry::traceparent();
        }
        // Serialising this plain struct cannot fail: every field is a string.
        let payload = serde_json::to_string(&request).unwrap_or_default();
        let channel = self.store.keys().refresh_channel();
        let receivers = crate::redis::publish(self.store.client(), &channel, payload)
            .await
            .map_err(RequestError::Redis)?;
        if receivers == 0 {
            return Err(RequestError::NoRefresher {
                channel,
                request_id,
            });
        }
        let requested_by = request.requested_by.as_deref();
        tracing::info!(%request_id, requested_by, receivers, "refresh requested");
        Ok(request_id)
    }

    /// Publishes `request` as [`Self::request`] does and waits up to `timeout` for its
    /// outcome: the event on `events` (subscribed by the caller before this call), or the
    /// kept outcome, looked for every [`RECALL_EVERY`] and at once when events were missed.
    ///
    /// # Errors
    /// As [`Self::request`], and [`RequestError::TimedOut`] when no outcome came in time.
    pub async fn request_and_wait(
        &self,
        request: RefreshRequest,
        events: impl EventStream,
        timeout: Duration,
    ) -> Result<RefreshOutcome, RequestError> {
        let request_id = self.request(request).await?;
        let recall = || async {
            match self.store.recall_outcome(&request_id).await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::debug!(error = %e, %request_id, "cannot look for the kept outcome");
                    None
                }
            }
        };
        match wait_for(&request_id, events, timeout, recall).await {
            Some(outcome) => Ok(outcome),
            None => Err(RequestError::TimedOut {
                request_id,
                after: timeout,
            }),
        }
    }
}

/// The outcome `event` reports for `request_id`, if it answers that request.
fn answer(event: &Event, request_id: &str) -> Option<RefreshOutcome> {
    event
        .outcome()
        .filter(|o| o.request_id.as_deref() == Some(request_id))
        .cloned()
}

/// Waits until `timeout` for the outcome of `request_id` on `events`, calling `recall`
/// every [`RECALL_EVERY`] (the only source left once the stream has closed) and at once
/// when events were missed.
async fn wait_for<F>(
    request_id: &str,
    mut events: impl EventStream,
    timeout: Duration,
    mut recall: impl FnMut() -> F,
) -> Option<RefreshOutcome>
where
    F: Future<Output = Option<Event>>,
{
    let deadline = Instant::now() + timeout;
    let mut every = tokio::time::interval_at(Instant::now() + RECALL_EVERY, RECALL_EVERY);
    let mut listening = true;
    loop {
        let look = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return None,
            received = events.next_event(), if listening => match received {
                Received::Event(event) => match answer(&event, request_id) {
                    Some(outcome) => return Some(outcome),
                    None => false,
                },
                Received::Missed => true,
                Received::Closed => {
                    listening = false;
                    false
                }
            },
            _ = every.tick() => true,
        };
        // Past the deadline the lookup is abandoned, and the next turn returns.
        if look
            && let Ok(Some(kept)) = tokio::time::timeout_at(deadline, recall()).await
            && let Some(outcome) = answer(&kept, request_id)
        {
            return Some(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{RefreshStatus, Trigger};

    fn outcome_of(request_id: &str) -> Arc<Event> {
        Arc::new(Event::for_outcome(RefreshOutcome {
            request_id: Some(request_id.to_owned()),
            ..RefreshOutcome::new(Trigger::Ops, RefreshStatus::Success)
        }))
    }

    /// A recall that finds nothing `misses` times, then the outcome of `request_id`.
    fn kept_after(
        misses: usize,
        request_id: &str,
    ) -> impl FnMut() -> std::future::Ready<Option<Event>> {
        let (mut calls, kept) = (0, outcome_of(request_id));
        move || {
            calls += 1;
            std::future::ready((calls > misses).then(|| (*kept).clone()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_event_answering_the_request_ends_the_wait() {
        let (tx, rx) = broadcast::channel(8);
        for other in ["someone-else", "r1"] {
            tx.send(outcome_of(other)).unwrap();
        }
        let started = Instant::now();
        let outcome = wait_for(
            "r1",
            rx,
            Duration::from_secs(30),
            kept_after(usize::MAX, "r1"),
        )
        .await;
        assert_eq!(outcome.unwrap().request_id.as_deref(), Some("r1"));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_event_is_found_in_the_kept_outcome_within_a_second_of_it_being_kept() {
        let (_tx, rx) = broadcast::channel::<Arc<Event>>(8);
        let started = Instant::now();
        let outcome = wait_for("r1", rx, Duration::from_secs(30), kept_after(2, "r1")).await;
        assert_eq!(outcome.unwrap().request_id.as_deref(), Some("r1"));
        assert_eq!(started.elapsed(), 3 * RECALL_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn missed_events_are_looked_for_at_once_and_a_closed_stream_still_recalls() {
        let (tx, rx) = broadcast::channel(1);
        for other in ["a", "b", "c"] {
            tx.send(outcome_of(other)).unwrap();
        }
        let started = Instant::now();
        let outcome = wait_for("r1", rx, Duration::from_secs(30), kept_after(0, "r1")).await;
        assert!(outcome.is_some());
        assert_eq!(started.elapsed(), Duration::ZERO, "lag: recalled at once");

        let (tx, rx) = broadcast::channel::<Arc<Event>>(1);
        drop(tx);
        let outcome = wait_for("r1", rx, Duration::from_secs(30), kept_after(1, "r1")).await;
        assert!(outcome.is_some());
        assert_eq!(started.elapsed(), 2 * RECALL_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_is_a_timeout_at_the_deadline() {
        let (tx, rx) = broadcast::channel(8);
        tx.send(outcome_of("someone-else")).unwrap();
        let started = Instant::now();
        let timeout = Duration::from_millis(2_500);
        assert_eq!(
            wait_for("r1", rx, timeout, kept_after(usize::MAX, "r1")).await,
            None
        );
        assert_eq!(started.elapsed(), timeout);
    }
}
