//! How a body is proven to be the one its metadata records: sizes, BLAKE3 and SHA-256
//! checked as the bytes go by, so no reader needs a body whole in memory to trust it.

use sha2::Digest;
use thiserror::Error;

use crate::sha256::Sha256;

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

/// Both hashes the metadata records of the identity document, computed in one pass over
/// it as it is written (the document itself is never held whole).
#[derive(Default)]
pub struct DocumentDigest {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    bytes: u64,
}

/// What [`DocumentDigest`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentHashes {
    /// Document size.
    pub bytes: u64,
    /// Lower-case hex BLAKE3 ([`SnapshotMeta::json_hash`](super::SnapshotMeta::json_hash)).
    pub blake3: String,
    /// SHA-256 ([`SnapshotMeta::json_sha256`](super::SnapshotMeta::json_sha256)).
    pub sha256: Sha256,
}

impl DocumentHashes {
    /// The hashes of a whole `document` held in memory.
    pub fn of(document: &[u8]) -> Self {
        let mut digest = DocumentDigest::default();
        digest.update(document);
        digest.finish()
    }
}

impl DocumentDigest {
    /// Adds the next bytes of the document.
    pub fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        self.sha256.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// The hashes of everything added.
    pub fn finish(self) -> DocumentHashes {
        DocumentHashes {
            bytes: self.bytes,
            blake3: self.blake3.finalize().to_hex().to_string(),
            sha256: Sha256::finish(self.sha256),
        }
    }
}
