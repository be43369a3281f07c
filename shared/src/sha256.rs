//! [`Sha256`]: the SHA-256 of a document, the name RFC 9842 clients give a dictionary.
//! It travels as lowercase hex (snapshot metadata, delta indexes, `/meta`) and as raw
//! bytes (a dcz body's header, `Available-Dictionary`); this type is both, parsed and
//! formatted here only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;
use thiserror::Error;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256([u8; 32]);

/// A text that is not 64 hex digits.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a SHA-256 in hex (64 hex digits)")]
pub struct NotSha256;

impl Sha256 {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// The digest a hasher finished with.
    pub fn finish(hasher: sha2::Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// The digest whose bytes are `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = NotSha256;

    /// Reads 64 hex digits (either case).
    fn from_str(hex: &str) -> Result<Self, NotSha256> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| NotSha256)?;
        Ok(Self(bytes))
    }
}

/// Lowercase hex.
impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hex = [0; 64];
        // 32 bytes always fit 64 digits.
        hex::encode_to_slice(self.0, &mut hex).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        hex.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_written_and_read_as_lowercase_hex() {
        // RFC 9842's test vector: the SHA-256 of "This is a test dictionary.\n".
        let hex = "53969bcf5e960e0edbf0a4bdde6b0b3e9381e156de7f5b91ce8391624270f416";
        let sha = Sha256::of(b"This is a test dictionary.\n");
        assert_eq!(sha.to_string(), hex);
        assert_eq!(hex.parse(), Ok(sha));
        assert_eq!(hex.to_uppercase().parse(), Ok(sha));
        assert_eq!((sha.as_bytes()[0], sha.as_bytes()[31]), (0x53, 0x16));
        assert_eq!(serde_json::to_string(&sha).ok(), Some(format!("\"{hex}\"")));
        let back: Result<Sha256, _> = serde_json::from_str(&format!("\"{hex}\""));
        assert_eq!(back.ok(), Some(sha));
        assert_eq!("zz".parse::<Sha256>(), Err(NotSha256));
        assert_eq!(hex[..62].parse::<Sha256>(), Err(NotSha256));
    }
}
