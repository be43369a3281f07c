//! What a Redis pub/sub message holds: its payload, read the same way for both channels.

use fred::types::Message;
use thiserror::Error;

/// Why a pub/sub message is not one of ours.
#[derive(Debug, Error)]
pub enum MessageError {
    /// The message is not text (`PUBLISH` always sends a bulk string, so only a client
    /// other than Redis's own could deliver this).
    #[error("the message is not a bulk string")]
    NotText,
    /// The text is not the JSON expected.
    #[error("the message is not a valid event: {0}")]
    Json(#[source] serde_json::Error),
}

/// The bytes `message` carries.
///
/// # Errors
/// [`MessageError::NotText`] when its value is not a (bulk) string.
pub fn payload(message: &Message) -> Result<&[u8], MessageError> {
    message.value.as_bytes().ok_or(MessageError::NotText)
}
