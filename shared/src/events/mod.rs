//! Messages on the two channels: refresh requests (`P:refresh`, [`RefreshRequest`]) and
//! events (`P:events`, [`Event`]), the names they share ([`Trigger`], [`RefreshStatus`]),
//! and how a Redis message becomes one of them ([`Event::from_message`],
//! [`RefreshRequest::from_message`]): each channel's messages are parsed here, once, for
//! every reader.

mod message;
mod request;
mod trigger;

use fred::types::Message;
use serde::{Deserialize, Serialize};

use crate::snapshot::SnapshotMeta;

pub use message::MessageError;
pub use request::{MAX_REQUEST_BYTES, RefreshRequest, RequestRejected};
pub use trigger::Trigger;

/// Outcome status of a refresh attempt, as logged and published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Enum),
    oai(rename_all = "lowercase")
)]
pub enum RefreshStatus {
    /// A new snapshot was published.
    Success,
    /// The offers were unchanged; the current snapshot stays.
    Unchanged,
    /// Another refresh held the lock, or a newer snapshot was already current.
    Skipped,
    /// The refresh failed; the current snapshot stays.
    Failed,
    /// The request itself was malformed and never ran.
    Rejected,
}

impl RefreshStatus {
    /// The lower-case name stored in the refresh log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Unchanged => "unchanged",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }
}

/// Body of `snapshot.updated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUpdated {
    /// New current version.
    pub version: String,
    /// Its ETag.
    pub etag: String,
    /// Number of offers.
    pub count: u64,
    /// When it was generated (`…T15:00:00.123Z`).
    pub generated_at: String,
    /// W3C trace context of the span that sent this, so the trace continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl SnapshotUpdated {
    /// Announces `meta` as current, continuing the current span's trace.
    pub fn announcing(meta: &SnapshotMeta) -> Self {
        Self {
            version: meta.version.clone(),
            etag: meta.etag.clone(),
            count: meta.count,
            generated_at: meta.generated_at_string(),
            traceparent: crate::telemetry::traceparent(),
        }
    }
}

/// Body of the `refresh.*` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshOutcome {
    /// The request this answers, when there was one.
    pub request_id: Option<String>,
    /// Trigger of the refresh.
    pub trigger: Trigger,
    /// What happened.
    pub status: RefreshStatus,
    /// Offers in the current snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Current version after the refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Current ETag after the refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Wall time of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_ms: Option<u64>,
    /// Why it failed, was skipped or was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// W3C trace context of the span that sent this, so the trace continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl RefreshOutcome {
    /// An outcome of `trigger` with `status` and nothing else known yet.
    pub fn new(trigger: Trigger, status: RefreshStatus) -> Self {
        Self {
            request_id: None,
            trigger,
            status,
            count: None,
            version: None,
            etag: None,
            execution_time_ms: None,
            error: None,
            traceparent: None,
        }
    }
}

/// An event on `P:events`, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A new snapshot is fully written and current.
    #[serde(rename = "snapshot.updated")]
    SnapshotUpdated(SnapshotUpdated),
    /// A refresh finished with `success` or `unchanged`.
    #[serde(rename = "refresh.completed")]
    RefreshCompleted(RefreshOutcome),
    /// A refresh failed.
    #[serde(rename = "refresh.failed")]
    RefreshFailed(RefreshOutcome),
    /// A refresh was skipped.
    #[serde(rename = "refresh.skipped")]
    RefreshSkipped(RefreshOutcome),
    /// A request was malformed.
    #[serde(rename = "refresh.rejected")]
    RefreshRejected(RefreshOutcome),
}

impl Event {
    /// The `refresh.*` event that reports `outcome`, chosen by its status.
    pub fn for_outcome(outcome: RefreshOutcome) -> Self {
        match outcome.status {
            RefreshStatus::Success | RefreshStatus::Unchanged => Self::RefreshCompleted(outcome),
            RefreshStatus::Failed => Self::RefreshFailed(outcome),
            RefreshStatus::Skipped => Self::RefreshSkipped(outcome),
            RefreshStatus::Rejected => Self::RefreshRejected(outcome),
        }
    }

    /// The refresh outcome this event carries, if it is a `refresh.*` event.
    pub fn outcome(&self) -> Option<&RefreshOutcome> {
        match self {
            Self::SnapshotUpdated(_) => None,
            Self::RefreshCompleted(o)
            | Self::RefreshFailed(o)
            | Self::RefreshSkipped(o)
            | Self::RefreshRejected(o) => Some(o),
        }
    }

    /// The event a message on `P:events` carries.
    ///
    /// # Errors
    /// [`MessageError`] when it is not an event (not text, or not an event's JSON).
    pub fn from_message(message: &Message) -> Result<Self, MessageError> {
        let payload = message::payload(message)?;
        serde_json::from_slice(payload).map_err(MessageError::Json)
    }

    /// Serialises the event as published.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: every field is a string or number.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_their_type_tag() {
        let updated = Event::SnapshotUpdated(SnapshotUpdated {
            version: "3-abc".into(),
            etag: "\"3-abc\"".into(),
            count: 7,
            generated_at: "2026-11-22T15:00:00.123Z".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        });
        let json = updated.to_json();
        assert!(json.starts_with(r#"{"type":"snapshot.updated""#), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), updated);

        for (status, tag) in [
            (RefreshStatus::Success, "refresh.completed"),
            (RefreshStatus::Unchanged, "refresh.completed"),
            (RefreshStatus::Failed, "refresh.failed"),
            (RefreshStatus::Skipped, "refresh.skipped"),
            (RefreshStatus::Rejected, "refresh.rejected"),
        ] {
            let outcome = RefreshOutcome {
                request_id: Some("r".into()),
                count: Some(1),
                ..RefreshOutcome::new(Trigger::Ops, status)
            };
            let json = Event::for_outcome(outcome.clone()).to_json();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["type"], tag);
            assert_eq!(value["status"], status.as_str());
            assert_eq!(value["trigger"], "ops");
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back.outcome(), Some(&outcome));
        }
    }
}
