//! The snapshot store in Redis: writing a version and switching to it atomically,
//! and reading the current one back.
//!
//! A version's bodies are written first under their own keys (with a short expiry, so a
//! writer that dies leaves nothing behind); one Lua script then checks the version is
//! newer than the current one, points `current` at it, makes its keys permanent, gives
//! the previous versions an expiry and trims the retained list. Readers read `current`
//! and then the bodies it names; versioned keys never change, so a reader can never pair
//! one version's metadata with another version's body.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Client, Expiration, KeysInterface, LuaInterface, SortedSetsInterface};
use thiserror::Error;

use crate::events::Event;
use crate::keys::Keys;
use crate::redis::Replication;
use crate::snapshot::{BodyMismatch, Codec, SnapshotMeta};

mod scripts;

use scripts::{NEXT_SEQ_SCRIPT, SWITCH_SCRIPT};

/// How many versions (the current one included) stay listed and readable.
pub const RETAINED_VERSIONS: usize = 5;
/// How long a replaced version stays readable.
pub const PREVIOUS_VERSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a refresh request's outcome stays readable after the refresh.
pub const OUTCOME_TTL: Duration = Duration::from_secs(300);
/// Expiry of bodies written but not (yet) switched to.
pub const PENDING_VERSION_TTL: Duration = Duration::from_secs(3600);
/// Bytes read per `GETRANGE` when a body is copied out of Redis piece by piece.
pub const BODY_CHUNK_BYTES: u64 = 1 << 20;

/// How long a switch waits for a replica to have it before the snapshot is announced
/// anyway (see [`crate::redis::wait_for_replica`]).
pub const REPLICA_WAIT: Duration = Duration::from_secs(1);

/// A failure reading or writing snapshots.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Redis could not be reached or refused a command.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Stored metadata is not valid JSON of the expected shape.
    #[error("snapshot metadata at {key} is unreadable: {source}")]
    BadMeta {
        /// Key read.
        key: String,
        /// Parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The metadata names a version whose bodies are gone.
    #[error("bodies of version {0} are missing")]
    Missing(String),
    /// A body does not match its metadata.
    #[error(transparent)]
    Corrupt(#[from] BodyMismatch),
    /// A body read from Redis could not be written where it was going.
    #[error("cannot keep a snapshot body: {0}")]
    Write(#[source] std::io::Error),
}

impl StoreError {
    /// Whether retrying later may succeed: Redis unreachable, timing out or failing over
    /// ([`crate::redis::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Redis(e) if crate::redis::is_transient(e))
    }
}

/// Result of an attempt to make a version current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// The version is now current; whether a replica had it before this returned.
    Switched(Replication),
    /// A snapshot with this sequence number (newer or equal) is already current.
    Superseded(u64),
}

/// Both compressed bodies of one version, verified against its metadata.
#[derive(Clone, Debug)]
pub struct Bodies {
    /// gzip body.
    pub gzip: Bytes,
    /// zstd body.
    pub zstd: Bytes,
}

/// Reads and writes snapshots under one prefix.
#[derive(Clone)]
pub struct SnapshotStore {
    client: Client,
    keys: Keys,
}

impl SnapshotStore {
    /// A store using `client` (already connected) and the names in `keys`.
    pub fn new(client: Client, keys: Keys) -> Self {
        Self { client, keys }
    }

    /// The key and channel names in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The Redis client in use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Keeps `event`, the outcome of request `request_id`, for [`OUTCOME_TTL`].
    ///
    /// # Errors
    /// [`StoreError::Redis`].
    pub async fn remember_outcome(
        &self,
        request_id: &str,
        event: &Event,
    ) -> Result<(), StoreError> {
        let ttl = Some(Expiration::EX(OUTCOME_TTL.as_secs() as i64));
        let _: () = self
            .client
            .set(
                self.keys.refresh_outcome(request_id),
                event.to_json(),
                ttl,
                None,
                false,
            )
            .await?;
        Ok(())
    }

    /// The outcome event of request `request_id`, once the refresher recorded it.
    ///
    /// # Errors
    /// [`StoreError::Redis`]; an unreadable value counts as not there yet.
    pub async fn recall_outcome(&self, request_id: &str) -> Result<Option<Event>, StoreError> {
        let value: Option<String> = self
            .client
            .get(self.keys.refresh_outcome(request_id))
            .await?;
        Ok(value.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Metadata of the current snapshot, if there is one.
    ///
    /// # Errors
    /// [`StoreError::Redis`] or [`StoreError::BadMeta`].
    pub async fn current_meta(&self) -> Result<Option<SnapshotMeta>, StoreError> {
        self.read_meta(self.keys.current()).await
    }

    /// Metadata of a retained version, if it is still stored.
    ///
    /// # Errors
    /// [`StoreError::Redis`] or [`StoreError::BadMeta`].
    pub async fn version_meta(&self, version: &str) -> Result<Option<SnapshotMeta>, StoreError> {
        self.read_meta(self.keys.version_meta(version)).await
    }

    async fn read_meta(&self, key: String) -> Result<Option<SnapshotMeta>, StoreError> {
        let raw: Option<Bytes> = self.client.get(&key).await?;
        raw.map(|raw| {
            serde_json::from_slice(&raw).map_err(|source| StoreError::BadMeta { key, source })
        })
        .transpose()
    }

    /// Both bodies of the version `meta` describes, each checked against it.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when a body is gone, [`StoreError::Corrupt`] when one does
    /// not match, [`StoreError::Redis`] when Redis fails.
    pub async fn bodies(&self, meta: &SnapshotMeta) -> Result<Bodies, StoreError> {
        let (gzip, zstd): (Option<Bytes>, Option<Bytes>) = tokio::try_join!(
            self.client
                .get(self.keys.version_body(&meta.version, Codec::Gzip)),
            self.client
                .get(self.keys.version_body(&meta.version, Codec::Zstd)),
        )?;
        let (Some(gzip), Some(zstd)) = (gzip, zstd) else {
            return Err(StoreError::Missing(meta.version.clone()));
        };
        meta.verify_body(Codec::Gzip, &gzip)?;
        meta.verify_body(Codec::Zstd, &zstd)?;
        Ok(Bodies { gzip, zstd })
    }

    /// Copies the `codec` body of the version `meta` describes into `out`,
    /// [`BODY_CHUNK_BYTES`] at a time, checking its size and hash as it goes: the reader
    /// holds one chunk, never a second copy of the body. Versioned keys never change, so
    /// the chunks are of one body; one that expires midway fails the size check.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when the body is gone, [`StoreError::Corrupt`] when it does
    /// not match, [`StoreError::Redis`] when Redis fails, [`StoreError::Write`] when
    /// `out` refuses a chunk.
    pub async fn copy_body(
        &self,
        meta: &SnapshotMeta,
        codec: Codec,
        out: &mut impl Write,
    ) -> Result<(), StoreError> {
        let key = self.keys.version_body(&meta.version, codec);
        let mut check = meta.check_body(codec);
        while check.len() < check.expected_len() {
            let start = check.len();
            let end = (start + BODY_CHUNK_BYTES).min(check.expected_len()) - 1;
            let chunk: Bytes = self
                .client
                .getrange(&key, start as usize, end as usize)
                .await?;
            if chunk.is_empty() {
                if start == 0 {
                    return Err(StoreError::Missing(meta.version.clone()));
                }
                break;
            }
            out.write_all(&chunk).map_err(StoreError::Write)?;
            check.update(&chunk);
        }
        check.finish()?;
        Ok(())
    }

    /// The current snapshot's metadata and verified bodies, if there is one.
    ///
    /// # Errors
    /// As [`Self::current_meta`] and [`Self::bodies`].
    pub async fn load_current(&self) -> Result<Option<(SnapshotMeta, Bodies)>, StoreError> {
        let Some(meta) = self.current_meta().await? else {
            return Ok(None);
        };
        let bodies = self.bodies(&meta).await?;
        Ok(Some((meta, bodies)))
    }

    /// Takes the next refresh sequence number: one past the counter, and never below the
    /// current Unix time in milliseconds. A counter that went back (a failover lost its
    /// last increments, or Redis lost its data) therefore never hands a number out twice,
    /// and a version id is never reused for a different document, as long as the
    /// refreshers' clocks do not lag the last lost number.
    ///
    /// # Errors
    /// [`StoreError::Redis`].
    pub async fn next_seq(&self) -> Result<u64, StoreError> {
        let start = chrono::Utc::now().timestamp_millis().max(0);
        Ok(self
            .client
            .eval(NEXT_SEQ_SCRIPT, vec![self.keys.seq()], vec![start])
            .await?)
    }

    /// Writes a new version and makes it current unless a newer one already is.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when a write or the switch fails; the current snapshot is
    /// then untouched.
    pub async fn publish(
        &self,
        meta: &SnapshotMeta,
        bodies: &Bodies,
    ) -> Result<Switch, StoreError> {
        let pending = Some(Expiration::EX(PENDING_VERSION_TTL.as_secs() as i64));
        let meta_json = serde_json::to_string(meta).map_err(|source| StoreError::BadMeta {
            key: self.keys.version_meta(&meta.version),
            source,
        })?;
        let version = &meta.version;
        let ((), (), ()) = tokio::try_join!(
            self.client.set(
                self.keys.version_meta(version),
                meta_json.as_str(),
                pending.clone(),
                None,
                false
            ),
            self.client.set(
                self.keys.version_body(version, Codec::Gzip),
                bodies.gzip.clone(),
                pending.clone(),
                None,
                false
            ),
            self.client.set(
                self.keys.version_body(version, Codec::Zstd),
                bodies.zstd.clone(),
                pending,
                None,
                false
            ),
        )?;
        self.switch(meta, &meta_json, false).await
    }

    /// Makes an already stored version current again, whatever its sequence number.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when the version is no longer stored.
    pub async fn restore(&self, meta: &SnapshotMeta) -> Result<(), StoreError> {
        self.bodies(meta).await?;
        let meta_json = serde_json::to_string(meta).map_err(|source| StoreError::BadMeta {
            key: self.keys.current(),
            source,
        })?;
        self.switch(meta, &meta_json, true).await.map(drop)
    }

    async fn switch(
        &self,
        meta: &SnapshotMeta,
        meta_json: &str,
        force: bool,
    ) -> Result<Switch, StoreError> {
        let version = &meta.version;
        let mut keys = vec![self.keys.current(), self.keys.versions()];
        keys.extend(self.keys.version_required_keys(version));
        let mut args = vec![
            meta_json.to_owned(),
            meta.seq.to_string(),
            version.clone(),
            self.keys.version_prefix(),
            RETAINED_VERSIONS.to_string(),
            PREVIOUS_VERSION_TTL.as_secs().to_string(),
            if force { "1" } else { "0" }.to_owned(),
        ];
        args.extend(Keys::version_suffixes());
        let current_seq: u64 = self.client.eval(SWITCH_SCRIPT, keys, args).await?;
        if current_seq != 0 {
            return Ok(Switch::Superseded(current_seq));
        }
        // Before anyone is told: a failover right after a switch no replica has would
        // take the snapshot back (README, "Failover").
        let replication =
            crate::redis::wait_for_replica(&self.client, &self.keys.current(), REPLICA_WAIT).await;
        if replication == Replication::Unconfirmed {
            tracing::warn!(snapshot.version = %version, "no replica confirmed the switch; a failover now could take it back");
        }
        Ok(Switch::Switched(replication))
    }

    /// Retained versions, newest first, with their metadata when still stored.
    ///
    /// # Errors
    /// [`StoreError::Redis`] or [`StoreError::BadMeta`].
    pub async fn versions(&self) -> Result<Vec<SnapshotMeta>, StoreError> {
        let names: Vec<String> = self
            .client
            .zrange(self.keys.versions(), 0, -1, None, true, None, false)
            .await?;
        let mut metas = Vec::with_capacity(names.len());
        for name in names {
            if let Some(meta) = self.version_meta(&name).await? {
                metas.push(meta);
            }
        }
        Ok(metas)
    }
}
