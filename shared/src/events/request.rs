//! Refresh requests as published on `P:refresh`: every field optional, plain text or an
//! empty message accepted, anything malformed or oversized rejected with the reason.

use fred::types::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::message::{MessageError, payload};
use super::trigger::Trigger;

/// Largest refresh request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

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
#[derive(Debug, Error)]
pub enum RequestRejected {
    /// The message exceeds [`MAX_REQUEST_BYTES`].
    #[error("refresh request is {0} bytes, over the {MAX_REQUEST_BYTES}-byte limit")]
    TooLarge(usize),
    /// The message starts with `{` but is not a valid request object.
    #[error("refresh request is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The message is not a pub/sub text at all.
    #[error(transparent)]
    NotText(#[from] MessageError),
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
            return serde_json::from_str(text).map_err(RequestRejected::InvalidJson);
        }
        Ok(Self {
            reason: (!text.is_empty()).then(|| text.to_owned()),
            ..Self::default()
        })
    }

    /// The request a message on `P:refresh` carries, as [`Self::parse`] reads it.
    ///
    /// # Errors
    /// [`RequestRejected`].
    pub fn from_message(message: &Message) -> Result<Self, RequestRejected> {
        Self::parse(payload(message)?)
    }

    /// The trigger to record: the request's own, or [`Trigger::Ops`].
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone().unwrap_or(Trigger::Ops)
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
        assert!(matches!(
            RefreshRequest::parse(&big),
            Err(RequestRejected::TooLarge(n)) if n == MAX_REQUEST_BYTES + 1
        ));
        assert!(RefreshRequest::parse(&big[..MAX_REQUEST_BYTES]).is_ok());
    }
}
