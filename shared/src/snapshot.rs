//! The snapshot's metadata and the rules that tie a stored body to it.
//!
//! A snapshot is one serialised offers document, stored compressed twice (gzip and zstd).
//! Its [`SnapshotMeta`] records sizes and BLAKE3 hashes of the document and of both
//! bodies, so a reader can prove a body belongs to the metadata it was paired with.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A stored compression of the snapshot document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// RFC 1952 gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Codec {
    /// Both stored codecs.
    pub const ALL: [Codec; 2] = [Codec::Gzip, Codec::Zstd];

    /// Name used in key names and logs (`gzip`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// Metadata of one snapshot version; the JSON stored at `P:{snapshot}:current`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Unique version id: `SEQ-CONTENTHASH12`.
    pub version: String,
    /// Refresh sequence number; a snapshot only replaces one with a lower number.
    pub seq: u64,
    /// Strong ETag of the identity document (quoted); encodings derive theirs from it.
    pub etag: String,
    /// Number of offers in the document.
    pub count: u64,
    /// When the refresh that built it started (millisecond precision, UTC).
    #[serde(with = "millis")]
    pub generated_at: DateTime<Utc>,
    /// BLAKE3 of the offers' row data in id order: equal hashes mean unchanged offers.
    pub content_hash: String,
    /// Size of the identity JSON document.
    pub json_bytes: u64,
    /// Size of the gzip body.
    pub gzip_bytes: u64,
    /// Size of the zstd body.
    pub zstd_bytes: u64,
    /// BLAKE3 of the identity JSON document.
    pub json_hash: String,
    /// BLAKE3 of the gzip body.
    pub gzip_hash: String,
    /// BLAKE3 of the zstd body.
    pub zstd_hash: String,
}

/// Why a body does not belong to the metadata it was paired with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyMismatch {
    /// The body has another length than recorded.
    #[error("{what} of version {version} is {actual} bytes, metadata says {expected}")]
    Size {
        /// Which body (`gzip`, `zstd`, `json`).
        what: &'static str,
        /// Version checked.
        version: String,
        /// Recorded size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The body has another hash than recorded.
    #[error("{what} of version {version} does not match its recorded hash")]
    Hash {
        /// Which body (`gzip`, `zstd`, `json`).
        what: &'static str,
        /// Version checked.
        version: String,
    },
}

impl SnapshotMeta {
    /// The version id for sequence number `seq` and offers content hash `content_hash`.
    pub fn version_for(seq: u64, content_hash: &str) -> String {
        let short = content_hash.get(..12).unwrap_or(content_hash);
        format!("{seq}-{short}")
    }

    /// The strong ETag of the identity document of `version`.
    pub fn etag_for(version: &str) -> String {
        format!("\"{version}\"")
    }

    /// `generated_at` as written in the document and events (`2026-11-22T15:00:00.123Z`).
    pub fn generated_at_string(&self) -> String {
        format_millis(&self.generated_at)
    }

    /// Recorded size and hash of one codec's body.
    fn recorded(&self, codec: Codec) -> (u64, &str) {
        match codec {
            Codec::Gzip => (self.gzip_bytes, &self.gzip_hash),
            Codec::Zstd => (self.zstd_bytes, &self.zstd_hash),
        }
    }

    /// Checks that `body` is this snapshot's `codec` body.
    ///
    /// # Errors
    /// [`BodyMismatch`] when its size or BLAKE3 hash differs from the recorded one.
    pub fn verify_body(&self, codec: Codec, body: &[u8]) -> Result<(), BodyMismatch> {
        let (expected, hash) = self.recorded(codec);
        self.verify(codec.name(), expected, hash, body)
    }

    /// Checks that `document` is this snapshot's identity JSON.
    ///
    /// # Errors
    /// [`BodyMismatch`] when its size or BLAKE3 hash differs from the recorded one.
    pub fn verify_document(&self, document: &[u8]) -> Result<(), BodyMismatch> {
        self.verify("json", self.json_bytes, &self.json_hash, document)
    }

    fn verify(
        &self,
        what: &'static str,
        expected: u64,
        hash: &str,
        body: &[u8],
    ) -> Result<(), BodyMismatch> {
        let mut check = self.check(what, expected, hash);
        check.update(body);
        check.finish()
    }

    /// A check of this snapshot's `codec` body that reads it piece by piece.
    pub fn check_body(&self, codec: Codec) -> BodyCheck<'_> {
        let (expected, hash) = self.recorded(codec);
        self.check(codec.name(), expected, hash)
    }

    /// A check of this snapshot's identity document that reads it piece by piece.
    pub fn check_document(&self) -> BodyCheck<'_> {
        self.check("json", self.json_bytes, &self.json_hash)
    }

    fn check<'m>(&'m self, what: &'static str, expected: u64, hash: &'m str) -> BodyCheck<'m> {
        BodyCheck::new(&self.version, what, expected, hash)
    }
}

/// Checks a body against its recorded size and hash while it is read, so a reader never
/// needs it whole in memory.
pub struct BodyCheck<'m> {
    version: &'m str,
    what: &'static str,
    expected: u64,
    hash: &'m str,
    hasher: blake3::Hasher,
    len: u64,
}

impl<'m> BodyCheck<'m> {
    /// A check of the body `what` of `version`, recorded as `expected` bytes whose BLAKE3
    /// is `hash` (hex).
    pub fn new(version: &'m str, what: &'static str, expected: u64, hash: &'m str) -> Self {
        Self {
            version,
            what,
            expected,
            hash,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    /// Takes the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        self.hasher.update(piece);
        self.len += piece.len() as u64;
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The recorded size of the whole body.
    pub fn expected_len(&self) -> u64 {
        self.expected
    }

    /// Whether everything taken is the recorded body.
    ///
    /// # Errors
    /// [`BodyMismatch`] when the size or the BLAKE3 hash differs from the recorded one.
    pub fn finish(self) -> Result<(), BodyMismatch> {
        if self.len != self.expected {
            return Err(BodyMismatch::Size {
                what: self.what,
                version: self.version.to_owned(),
                expected: self.expected,
                actual: self.len,
            });
        }
        if self.hasher.finalize().to_hex().as_str() != self.hash {
            return Err(BodyMismatch::Hash {
                what: self.what,
                version: self.version.to_owned(),
            });
        }
        Ok(())
    }
}

/// Lower-case hex BLAKE3 of `bytes`, the hash format used throughout the metadata.
pub fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds (`…T15:00:00.123Z`).
pub fn format_millis(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde for timestamps written with millisecond precision.
pub mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `2026-11-22T15:00:00.123Z`.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_millis(at))
    }

    /// Accepts any RFC 3339 timestamp.
    ///
    /// # Errors
    /// When the text is not an RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(document: &[u8], gzip: &[u8], zstd: &[u8]) -> SnapshotMeta {
        let content_hash = hash_hex(b"rows");
        let version = SnapshotMeta::version_for(3, &content_hash);
        SnapshotMeta {
            etag: SnapshotMeta::etag_for(&version),
            version,
            seq: 3,
            count: 1,
            generated_at: DateTime::parse_from_rfc3339("2026-11-22T15:00:00.123Z")
                .map(|at| at.with_timezone(&Utc))
                .unwrap_or_default(),
            content_hash,
            json_bytes: document.len() as u64,
            gzip_bytes: gzip.len() as u64,
            zstd_bytes: zstd.len() as u64,
            json_hash: hash_hex(document),
            gzip_hash: hash_hex(gzip),
            zstd_hash: hash_hex(zstd),
        }
    }

    #[test]
    fn meta_round_trips_through_json_with_millisecond_timestamps() {
        let meta = sample(b"{}", b"gz", b"zs");
        let json = serde_json::to_string(&meta).unwrap_or_default();
        assert!(
            json.contains(r#""generated_at":"2026-11-22T15:00:00.123Z""#),
            "{json}"
        );
        let back: SnapshotMeta = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, meta);
    }

    #[test]
    fn verify_accepts_the_recorded_bodies_and_refuses_others() {
        let meta = sample(b"{}", b"gz", b"zs");
        assert_eq!(meta.verify_body(Codec::Gzip, b"gz"), Ok(()));
        assert_eq!(meta.verify_body(Codec::Zstd, b"zs"), Ok(()));
        assert_eq!(meta.verify_document(b"{}"), Ok(()));
        assert!(matches!(
            meta.verify_body(Codec::Gzip, b"gzz"),
            Err(BodyMismatch::Size { .. })
        ));
        assert!(matches!(
            meta.verify_body(Codec::Zstd, b"zz"),
            Err(BodyMismatch::Hash { .. })
        ));
    }

    #[test]
    fn version_and_etag_are_derived_from_sequence_and_content() {
        let version = SnapshotMeta::version_for(42, "0123456789abcdef");
        assert_eq!(version, "42-0123456789ab");
        assert_eq!(SnapshotMeta::etag_for(&version), "\"42-0123456789ab\"");
    }
}
