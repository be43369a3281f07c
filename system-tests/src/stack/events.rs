//! A recorder of every event a deployment publishes on `P:events`, from the moment it
//! subscribed, and the refresh outcomes among them by request id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};

use shared::config::RedisSettings;
use shared::events::{Event, RefreshOutcome};
use shared::keys::Keys;

use super::SETUP;
use crate::wait::until;

/// Every event published on `P:events` since it subscribed.
pub struct Events {
    seen: Arc<Mutex<Vec<Event>>>,
    reader: tokio::task::JoinHandle<()>,
    subscriber: fred::clients::SubscriberClient,
}

impl Events {
    /// Subscribes to `P:events` of `prefix` on the Redis at `url`; returns once
    /// subscribed, so nothing published afterwards is missed.
    pub async fn subscribe(url: &str, prefix: &str) -> Self {
        let subscriber = shared::redis::subscriber(
            &RedisSettings::new(url, prefix),
            shared::redis::Start::FailFast,
        )
        .expect("subscriber");
        shared::redis::connect(&subscriber)
            .await
            .expect("subscriber connects");
        let mut rx = subscriber.message_rx();
        subscriber
            .subscribe(Keys::new(prefix).events_channel())
            .await
            .expect("subscribed to events");
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = seen.clone();
        let reader = tokio::spawn(async move {
            while let Ok(message) = rx.recv().await {
                if let Ok(event) =
                    serde_json::from_slice(message.value.as_bytes().unwrap_or_default())
                {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(event);
                }
            }
        });
        Self {
            seen,
            reader,
            subscriber,
        }
    }

    /// Every event recorded so far, in the order they arrived.
    pub fn seen(&self) -> Vec<Event> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The outcomes published so far, by request id.
    pub fn outcomes(&self) -> HashMap<String, RefreshOutcome> {
        self.seen()
            .iter()
            .filter_map(Event::outcome)
            .filter_map(|o| Some((o.request_id.clone()?, o.clone())))
            .collect()
    }

    /// Waits for the outcome of every request in `ids`.
    pub async fn wait_outcomes(&self, ids: &[String]) -> HashMap<String, RefreshOutcome> {
        until(
            SETUP,
            &format!("the outcomes of {} requests", ids.len()),
            || {
                let outcomes = self.outcomes();
                let all = ids.iter().all(|id| outcomes.contains_key(id));
                std::future::ready(all.then_some(outcomes))
            },
        )
        .await
    }

    /// Waits for the outcome of one request.
    pub async fn wait_outcome(&self, id: &str) -> RefreshOutcome {
        self.wait_outcomes(&[id.to_owned()])
            .await
            .remove(id)
            .expect("outcome present")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.reader.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let subscriber = self.subscriber.clone();
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}
