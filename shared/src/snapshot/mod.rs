//! The snapshot's metadata and the rules that tie a stored body to it.
//!
//! A snapshot is one serialised offers document, stored compressed twice (gzip and zstd).
//! Its [`SnapshotMeta`] records sizes and BLAKE3 hashes of the document and of both
//! bodies, so a reader can prove a body belongs to the metadata it was paired with, plus
//! the SHA-256 of the document, the name RFC 9842 clients give it as a dictionary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sha256::Sha256;

mod codec;
pub mod etag;
mod integrity;

pub use codec::Codec;
pub use integrity::{BodyCheck, BodyMismatch, DocumentDigest, DocumentHashes, hash_hex};
pub use millis::format_millis;

/// Metadata of one snapshot version; the JSON stored at `P:{snapshot}:current`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Unique version id: `SEQ-CONTENTHASH12`.
    pub version: String,
    /// Refresh sequence number; a snapshot only replaces one with a lower number.
    pub seq: u64,
    /// Strong ETag of the identity document (quoted); encodings derive theirs from the
    /// version the same way ([`etag`]).
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
    /// SHA-256 of the identity JSON document (lowercase hex in the JSON); absent in
    /// metadata written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_sha256: Option<Sha256>,
    /// BLAKE3 of the gzip body.
    pub gzip_hash: String,
    /// BLAKE3 of the zstd body.
    pub zstd_hash: String,
}

impl SnapshotMeta {
    /// The metadata of snapshot number `seq`, of `count` offers, whose identity document
    /// has the hashes `document` and whose stored bodies are `gzip` and `zstd`: version and
    /// ETag derived from `seq` and `content_hash`, every size and hash recorded.
    pub fn describing(
        seq: u64,
        count: u64,
        generated_at: DateTime<Utc>,
        content_hash: String,
        document: DocumentHashes,
        gzip: &[u8],
        zstd: &[u8],
    ) -> Self {
        let version = Self::version_for(seq, &content_hash);
        Self {
            etag: Self::etag_for(&version),
            version,
            seq,
            count,
            generated_at,
            content_hash,
            json_bytes: document.bytes,
            gzip_bytes: gzip.len() as u64,
            zstd_bytes: zstd.len() as u64,
            json_hash: document.blake3,
            json_sha256: Some(document.sha256),
            gzip_hash: hash_hex(gzip),
            zstd_hash: hash_hex(zstd),
        }
    }

    /// The version id for sequence number `seq` and offers content hash `content_hash`.
    pub fn version_for(seq: u64, content_hash: &str) -> String {
        let short = content_hash.get(..12).unwrap_or(content_hash);
        format!("{seq}-{short}")
    }

    /// The strong ETag of the identity document of `version` ([`etag::whole`]).
    pub fn etag_for(version: &str) -> String {
        etag::whole(version, Codec::Identity)
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
            Codec::Identity => (self.json_bytes, &self.json_hash),
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
    /// [`BodyMismatch`] when its size, BLAKE3 hash or (when recorded) SHA-256 differs from
    /// the recorded one.
    pub fn verify_document(&self, document: &[u8]) -> Result<(), BodyMismatch> {
        self.verify_document_hashes(&DocumentHashes::of(document))
    }

    /// Checks that a document whose hashes are `hashes` is this snapshot's identity JSON.
    ///
    /// # Errors
    /// [`BodyMismatch`] when its size, BLAKE3 or (when recorded) SHA-256 differs.
    pub fn verify_document_hashes(&self, hashes: &DocumentHashes) -> Result<(), BodyMismatch> {
        let mismatch = |what| BodyMismatch::Hash {
            what,
            version: self.version.clone(),
        };
        if hashes.bytes != self.json_bytes {
            return Err(BodyMismatch::Size {
                what: "json",
                version: self.version.clone(),
                expected: self.json_bytes,
                actual: hashes.bytes,
            });
        }
        if hashes.blake3 != self.json_hash {
            return Err(mismatch("json"));
        }
        match &self.json_sha256 {
            Some(recorded) if *recorded != hashes.sha256 => Err(mismatch("json (SHA-256)")),
            _ => Ok(()),
        }
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

    fn check<'m>(&'m self, what: &'static str, expected: u64, hash: &'m str) -> BodyCheck<'m> {
        BodyCheck::new(&self.version, what, expected, hash)
    }
}

/// Timestamps written with millisecond precision, and their serde.
pub mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Formats a timestamp as RFC 3339 UTC with milliseconds (`…T15:00:00.123Z`).
    pub fn format_millis(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serialises as `2026-11-22T15:00:00.123Z`.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_millis(at))
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

    /// A one-offer snapshot whose document is `{}` and whose bodies are `gz` and `zs`,
    /// generated at a time with milliseconds, as refreshes write them.
    fn sample_meta() -> SnapshotMeta {
        let generated_at = DateTime::from_timestamp_millis(1_795_359_600_123).unwrap_or_default();
        let (document, content_hash) = (DocumentHashes::of(b"{}"), hash_hex(b"{}"));
        SnapshotMeta::describing(1, 1, generated_at, content_hash, document, b"gz", b"zs")
    }

    #[test]
    fn meta_round_trips_through_json_with_millisecond_timestamps() {
        let meta = sample_meta();
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
        let meta = sample_meta();
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
    fn the_document_sha256_is_checked_when_recorded_and_old_metadata_still_parses() {
        // Known answer: SHA-256 of the empty string and of "abc".
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Sha256::of(b"").to_string(), empty);
        let mut digest = DocumentDigest::default();
        digest.update(b"a");
        digest.update(b"bc");
        let hashes = digest.finish();
        assert_eq!(
            hashes.sha256.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!((hashes.bytes, hashes.blake3), (3, hash_hex(b"abc")));

        let mut meta = sample_meta();
        meta.json_sha256 = Some(Sha256::of(b""));
        assert_eq!(
            meta.verify_document(b"{}"),
            Err(BodyMismatch::Hash {
                what: "json (SHA-256)",
                version: meta.version.clone()
            })
        );
        meta.json_sha256 = None;
        assert_eq!(meta.verify_document(b"{}"), Ok(()));
        let mut old = serde_json::to_value(&meta).unwrap_or_default();
        assert!(old.get("json_sha256").is_none(), "{old}");
        old["json_hash"] = serde_json::Value::from(hash_hex(b"{}"));
        let parsed: SnapshotMeta = serde_json::from_value(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.json_sha256, None);
    }

    #[test]
    fn version_and_etag_are_derived_from_sequence_and_content() {
        let version = SnapshotMeta::version_for(42, "0123456789abcdef");
        assert_eq!(version, "42-0123456789ab");
        assert_eq!(SnapshotMeta::etag_for(&version), "\"42-0123456789ab\"");
    }
}
