//! Delta downloads (RFC 9842 `dcz`): how a version's deltas are framed, listed and stored.
//!
//! A delta turns an earlier identity document (the client's dictionary) into this
//! version's. Its body is the RFC 9842 §5 header — the 8 bytes `5E 2A 4D 18 20 00 00 00`
//! (a zstd skippable frame carrying 32 bytes) and the SHA-256 of the dictionary —
//! followed by one zstd frame compressed with the dictionary as a raw-content prefix.
//! refresh-service builds them after a version became current and stores them with it
//! (`P` = prefix):
//!
//! | key | kind | holds |
//! |---|---|---|
//! | `P:{snapshot}:v:VERSION:dcz` | hash | earlier version → dcz body |
//! | `P:{snapshot}:v:VERSION:deltas` | string | JSON list of [`Delta`], written with the bodies, last |
//!
//! Both keys live and expire with their version (same TTL, the same trimming). How the
//! frame is made is [`compress`]'s, and whether a delta may be made at all [`allowed`]'s.

use std::io::Write;

use bytes::Bytes;
use fred::prelude::{HashesInterface, KeysInterface, LuaInterface};
use serde::{Deserialize, Serialize};

use crate::sha256::Sha256;
use crate::snapshot::BodyCheck;
use crate::store::{SnapshotStore, StoreError};

mod encode;
mod frame;

pub use encode::{
    DeltaSettings, LARGE_DOCUMENTS, SMALL_DICTIONARY_BYTES, SMALL_DOCUMENTS, WINDOW_LOG, allowed,
    compress, window_log,
};
pub use frame::{DCZ_HEADER_BYTES, DCZ_MAGIC, MAX_DICTIONARY_BYTES, dcz_dictionary, dcz_header};

/// One delta of a version, as its index lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The earlier version whose identity document is the dictionary.
    pub version: String,
    /// SHA-256 of that document (lowercase hex in the index): what
    /// `Available-Dictionary` names.
    pub json_sha256: Sha256,
    /// Size of the dcz body (header included).
    pub dcz_bytes: u64,
    /// BLAKE3 (hex) of the dcz body.
    pub dcz_hash: String,
}

/// Writes the bodies and the index of a version's deltas only while the version is still
/// stored, and gives them its expiry. KEYS: meta, dcz, deltas; ARGV: index, then pairs of
/// earlier version and body.
const PUBLISH_DELTAS: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 1
";

impl SnapshotStore {
    /// The index of `version`'s deltas: `None` until refresh-service wrote it.
    ///
    /// # Errors
    /// [`StoreError::Redis`], or [`StoreError::BadMeta`] for an unreadable index.
    pub async fn deltas(&self, version: &str) -> Result<Option<Vec<Delta>>, StoreError> {
        let key = self.keys().version_deltas(version);
        let raw: Option<Bytes> = self.client().get(&key).await?;
        raw.map(|raw| {
            serde_json::from_slice(&raw).map_err(|source| StoreError::BadMeta { key, source })
        })
        .transpose()
    }

    /// Copies the body of `delta` (a delta of `version`) into `out`, checking its size and
    /// hash.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when it is gone, [`StoreError::Corrupt`] when it does not
    /// match the index, [`StoreError::Redis`], or [`StoreError::Write`].
    pub async fn copy_delta(
        &self,
        version: &str,
        delta: &Delta,
        out: &mut impl Write,
    ) -> Result<(), StoreError> {
        let body: Option<Bytes> = self
            .client()
            .hget(self.keys().version_dcz(version), &delta.version)
            .await?;
        let body = body
            .ok_or_else(|| StoreError::Missing(format!("{version} dcz from {}", delta.version)))?;
        let mut check = BodyCheck::new(version, "dcz", delta.dcz_bytes, &delta.dcz_hash);
        check.update(&body);
        check.finish()?;
        out.write_all(&body).map_err(StoreError::Write)
    }

    /// Stores `version`'s deltas (each with its body) and their index, with the version's
    /// expiry. Returns `false`, writing nothing, when the version is no longer stored.
    ///
    /// # Errors
    /// [`StoreError::Redis`].
    pub async fn publish_deltas(
        &self,
        version: &str,
        deltas: &[(Delta, Bytes)],
    ) -> Result<bool, StoreError> {
        let keys = vec![
            self.keys().version_meta(version),
            self.keys().version_dcz(version),
            self.keys().version_deltas(version),
        ];
        let index: Vec<&Delta> = deltas.iter().map(|(delta, _)| delta).collect();
        let index = serde_json::to_vec(&index).map_err(|source| StoreError::BadMeta {
            key: self.keys().version_deltas(version),
            source,
        })?;
        let mut args = vec![Bytes::from(index)];
        for (delta, body) in deltas {
            args.push(Bytes::from(delta.version.clone()));
            args.push(body.clone());
        }
        let written: i64 = self.client().eval(PUBLISH_DELTAS, keys, args).await?;
        Ok(written == 1)
    }
}
