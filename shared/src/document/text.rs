//! [`Text`]: a string of the document, borrowed from where it was read or owned.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A string of the document: borrowed from the row it was read from (refresh-service
/// serialises offers straight from Postgres rows) or owned (parsed back). Serialised as
/// the plain string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'d>(#[serde(borrow)] pub Cow<'d, str>);

impl Text<'_> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'d> From<&'d str> for Text<'d> {
    fn from(text: &'d str) -> Self {
        Self(Cow::Borrowed(text))
    }
}

impl From<String> for Text<'_> {
    fn from(text: String) -> Self {
        Self(Cow::Owned(text))
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
