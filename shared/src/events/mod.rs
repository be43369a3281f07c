//! Messages on the two channels: refresh requests (`P:refresh`) and events (`P:events`),
//! and the names they share ([`Trigger`], [`RefreshStatus`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::snapshot::SnapshotMeta;

/// Largest refresh request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What asked for a refresh, as recorded in the refresh log and carried by its events.
///
/// Serialised as its name (`schedule`, `ops`, …); any other name (`--trigger NAME`, or a
/// request's own `trigger` field) is kept as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum Trigger {
    /// The daemon's in-process schedule.
    Schedule,
    /// The daemon's catch-up refresh at start.
    Startup,
    /// A request on `P:refresh` that names no trigger (operators, `refresh-service trigger`).
    Ops,
    /// `POST /api/v4/ofertasws/refresh`.
    Api,
    /// `refresh-service once` without `--trigger` (what a Kubernetes CronJob runs).
    Cronjob,
    /// `refresh-service rollback`.
    Rollback,
    /// Any other name, given by an operator.
    Named(String),
}

impl Trigger {
    /// Every trigger with a name of its own.
    const KNOWN: [Self; 6] = [
        Self::Schedule,
        Self::Startup,
        Self::Ops,
        Self::Api,
        Self::Cronjob,
        Self::Rollback,
    ];

    /// The name recorded and published.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Schedule => "schedule",
            Self::Startup => "startup",
            Self::Ops => "ops",
            Self::Api => "api",
            Self::Cronjob => "cronjob",
            Self::Rollback => "rollback",
            Self::Named(name) => name,
        }
    }
}

impl From<&str> for Trigger {
    fn from(name: &str) -> Self {
        let known = Self::KNOWN.into_iter().find(|known| known.as_str() == name);
        known.unwrap_or_else(|| Self::Named(name.to_owned()))
    }
}

impl From<String> for Trigger {
    fn from(name: String) -> Self {
        Self::from(name.as_str())
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Trigger {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// A refresh request as published on `P:refresh`. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// Correlates the request with its outcome event; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Free text saying why (logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked (logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Trigger recorded in the refresh log; `ops` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// W3C trace context of the span that sent this, so the trace continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Why a message on `P:refresh` was not accepted as a request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestRejected {
    /// The message exceeds [`MAX_REQUEST_BYTES`].
    #[error("refresh request is {0} bytes, over the {MAX_REQUEST_BYTES}-byte limit")]
    TooLarge(usize),
    /// The message starts with `{` but is not a valid request object.
    #[error("refresh request is not valid JSON: {0}")]
    InvalidJson(String),
}

impl RefreshRequest {
    /// Parses an ops message: empty or plain text is a request (the text is its reason);
    /// a message starting with `{` must be a JSON request object.
    ///
    /// # Errors
    /// [`RequestRejected`] for an oversize message or malformed JSON.
    pub fn parse(payload: &[u8]) -> Result<Self, RequestRejected> {
        if payload.len() > MAX_REQUEST_BYTES {
            return Err(RequestRejected::TooLarge(payload.len()));
        }
        let text = String::from_utf8_lossy(payload);
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text)
                .map_err(|e| RequestRejected::InvalidJson(e.to_string()));
        }
        Ok(Self {
            reason: (!text.is_empty()).then(|| text.to_owned()),
            ..Self::default()
        })
    }

    /// The trigger to record: the request's own, or [`Trigger::Ops`].
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone().unwrap_or(Trigger::Ops)
    }
}

/// Outcome status of a refresh attempt, as logged and published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    fn plain_text_empty_and_json_messages_are_requests() {
        let empty = RefreshRequest::parse(b"").unwrap();
        assert_eq!(empty, RefreshRequest::default());
        assert_eq!(RefreshRequest::parse(b"{}").unwrap(), empty);
        assert_eq!(empty.trigger(), Trigger::Ops);
        let plain = RefreshRequest::parse(b"  promo de navidad \n").unwrap();
        assert_eq!(plain.reason.as_deref(), Some("promo de navidad"));
        assert_eq!(plain.trigger(), "ops");
        // JSON requests keep their fields, ignore unknown ones and round-trip.
        let json = br#"{"request_id":"abc","reason":"promo","requested_by":"ops","trigger":"nightly","extra":1}"#;
        let req = RefreshRequest::parse(json).unwrap();
        assert_eq!(req.request_id.as_deref(), Some("abc"));
        assert_eq!(req.reason.as_deref(), Some("promo"));
        assert_eq!(req.requested_by.as_deref(), Some("ops"));
        assert_eq!(req.trigger(), Trigger::Named("nightly".into()));
        let back = serde_json::to_string(&req).unwrap();
        assert_eq!(RefreshRequest::parse(back.as_bytes()).unwrap(), req);
    }

    #[test]
    fn malformed_json_and_oversize_messages_are_rejected() {
        for bad in [&b"{not json"[..], br#"{"request_id": 5}"#] {
            let parsed = RefreshRequest::parse(bad);
            assert!(
                matches!(parsed, Err(RequestRejected::InvalidJson(_))),
                "{parsed:?}"
            );
        }
        let big = vec![b'a'; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            RefreshRequest::parse(&big),
            Err(RequestRejected::TooLarge(MAX_REQUEST_BYTES + 1))
        );
        assert!(RefreshRequest::parse(&big[..MAX_REQUEST_BYTES]).is_ok());
    }

    #[test]
    fn triggers_are_written_as_their_names_and_any_name_is_kept() {
        for (trigger, name) in [
            (Trigger::Schedule, "schedule"),
            (Trigger::Startup, "startup"),
            (Trigger::Ops, "ops"),
            (Trigger::Api, "api"),
            (Trigger::Cronjob, "cronjob"),
            (Trigger::Rollback, "rollback"),
            (Trigger::Named("cronjob-b".into()), "cronjob-b"),
        ] {
            assert_eq!(trigger.as_str(), name);
            assert_eq!(trigger.to_string(), name);
            let json = serde_json::Value::from(name);
            assert_eq!(serde_json::to_value(&trigger).unwrap(), json);
            assert_eq!(serde_json::from_value::<Trigger>(json).unwrap(), trigger);
        }
    }

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
