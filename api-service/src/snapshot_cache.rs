//! The current snapshot, held in memory and swapped atomically when a new one appears.
//!
//! Serving reads an `Arc<Snapshot>` (a pointer load); every header value a response
//! needs is prepared once per version, and bodies are `Bytes`, so a response costs
//! reference-count bumps, not copies. [`sync`] keeps it current: it listens on
//! `P:events` (pinging the subscriber as a heartbeat), resynchronises after every
//! reconnect or lagged read, and polls the small `current` key every [`POLL_EVERY`] so a
//! missed event is noticed within seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use memmap2::MmapMut;
use poem::http::{HeaderMap, HeaderName, HeaderValue, header};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use shared::events::Event;
use shared::snapshot::SnapshotMeta;
use shared::store::{SnapshotStore, StoreError};

use crate::metrics::Metrics;
use crate::negotiate::{Encoding, EntityTags};
use crate::zero_copy::{BodyFile, FileRange};

const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");
const VARY: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const X_OFERTAS_COUNT: HeaderName = HeaderName::from_static("x-ofertas-count");

/// How often the current-snapshot key is polled.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// One encoding of the snapshot, ready to send.
pub struct Variant {
    /// Body.
    pub body: Bytes,
    /// The body again in a sealed in-memory file, sent with `sendfile` (none when the
    /// kernel refused the file: the body is then copied to the socket).
    pub file: Option<BodyFile>,
    /// Every header of a 200 with this body.
    pub ok_headers: HeaderMap,
    /// Every header of a 304 to a request that negotiated this encoding.
    pub not_modified_headers: HeaderMap,
}

/// A verified snapshot with everything a response needs.
pub struct Snapshot {
    /// Its metadata.
    pub meta: SnapshotMeta,
    /// zstd, gzip, identity — indexed by [`Encoding::index`].
    pub variants: [Variant; 3],
    /// Every variant's ETag, for `If-None-Match`.
    pub tags: EntityTags,
    /// `generated_at` as a `SystemTime`, for `If-Modified-Since`.
    pub modified: SystemTime,
}

/// Why a stored snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading Redis failed, or a body does not match its metadata.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The zstd body does not decompress.
    #[error("zstd body of version {0} does not decompress: {1}")]
    Decompress(String, std::io::Error),
    /// No memory could be mapped for a body.
    #[error("cannot map memory for snapshot {0}: {1}")]
    Memory(String, std::io::Error),
    /// A header value could not be built (never for metadata we write).
    #[error("snapshot {0} has metadata unusable in headers")]
    Header(String),
}

/// The ETag of `version` under `encoding`: `"V"`, `"V-gzip"`, `"V-zstd"`.
pub fn etag_for(version: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Identity => format!("\"{version}\""),
        other => format!("\"{version}-{}\"", other.token()),
    }
}

impl Snapshot {
    /// Prepares a snapshot from verified bodies; the identity body is decompressed from
    /// zstd here, once, and checked against the recorded document hash. Every response
    /// header is built here too, so serving formats nothing.
    ///
    /// # Errors
    /// [`LoadError`] when the document does not decompress or match, or when no memory
    /// can be mapped for a body.
    pub fn prepare(meta: SnapshotMeta, gzip: Bytes, zstd: Bytes) -> Result<Self, LoadError> {
        let memory_error = |e| LoadError::Memory(meta.version.clone(), e);
        let mut buffer = mapping(meta.json_bytes as usize + 1).map_err(memory_error)?;
        let len = zstd::bulk::decompress_to_buffer(&zstd, &mut buffer[..])
            .map_err(|e| LoadError::Decompress(meta.version.clone(), e))?;
        let identity = frozen(buffer, len).map_err(memory_error)?;
        meta.verify_document(&identity).map_err(StoreError::from)?;
        let header_error = || LoadError::Header(meta.version.clone());
        let modified = SystemTime::from(meta.generated_at);
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
            .map_err(|_| header_error())?;
        let count = HeaderValue::from(meta.count);
        let mut etags = Vec::with_capacity(Encoding::PREFERENCE.len());
        for encoding in Encoding::PREFERENCE {
            let tag = HeaderValue::try_from(etag_for(&meta.version, encoding));
            etags.push(tag.map_err(|_| header_error())?);
        }
        let variant = |encoding: Encoding, body: Bytes| -> Result<Variant, LoadError> {
            let etag = etags[encoding.index()].clone();
            let mut not_modified_headers = HeaderMap::with_capacity(4);
            not_modified_headers.insert(header::VARY, VARY);
            not_modified_headers.insert(header::ETAG, etag);
            not_modified_headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
            not_modified_headers.insert(header::LAST_MODIFIED, last_modified.clone());
            let mut ok_headers = not_modified_headers.clone();
            ok_headers.reserve(4);
            ok_headers.insert(header::CONTENT_TYPE, JSON);
            ok_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            ok_headers.insert(X_OFERTAS_COUNT, count.clone());
            if encoding != Encoding::Identity {
                ok_headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(encoding.token()),
                );
            }
            let file = BodyFile::new(&body)
                .inspect_err(|e| tracing::warn!(error = %e, encoding = encoding.token(), "cannot keep the body in a memfd; it will be copied to sockets"))
                .ok();
            Ok(Variant {
                file,
                ok_headers,
                not_modified_headers,
                body,
            })
        };
        let variants = [
            variant(Encoding::Zstd, mapped_copy(&zstd).map_err(memory_error)?)?,
            variant(Encoding::Gzip, mapped_copy(&gzip).map_err(memory_error)?)?,
            variant(Encoding::Identity, identity)?,
        ];
        Ok(Self {
            tags: EntityTags::new(etags).ok_or_else(header_error)?,
            variants,
            modified,
            meta,
        })
    }

    /// The variant for `encoding`.
    pub fn variant(&self, encoding: Encoding) -> &Variant {
        &self.variants[encoding.index()]
    }

    /// The file of the body `bytes` lie in, and their offset there, when `bytes` are
    /// part of one of this snapshot's bodies (told by address: a body's memory is its
    /// own while the snapshot lives) and that body has a file.
    pub fn body_file(&self, bytes: &[u8]) -> Option<FileRange<'_>> {
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        self.variants.iter().find_map(|variant| {
            let file = variant.file.as_ref()?;
            let body = variant.body.as_ptr_range();
            let (body_start, body_end) = (body.start as usize, body.end as usize);
            (!bytes.is_empty() && body_start <= start && end <= body_end).then(|| FileRange {
                file,
                offset: (start - body_start) as u64,
            })
        })
    }
}

/// A snapshot's bodies live in anonymous memory mappings of their own. They are hundreds
/// of kilobytes to megabytes: once such heap buffers were freed, glibc raised its mmap
/// threshold and kept every later snapshot's bodies in its arenas (RSS grew by a fifth
/// over the first refreshes of a soak); a mapping goes back to the kernel as soon as the
/// snapshot holding it is dropped. This makes one for `capacity` bytes.
fn mapping(capacity: usize) -> std::io::Result<MmapMut> {
    MmapMut::map_anon(capacity.max(1))
}

/// The first `len` bytes of `buffer`, made read-only.
fn frozen(buffer: MmapMut, len: usize) -> std::io::Result<Bytes> {
    Ok(Bytes::from_owner(buffer.make_read_only()?).slice(..len))
}

/// `body` copied into a mapping of its own (see [`mapping`]).
fn mapped_copy(body: &[u8]) -> std::io::Result<Bytes> {
    let mut buffer = mapping(body.len())?;
    buffer[..body.len()].copy_from_slice(body);
    frozen(buffer, body.len())
}

/// The snapshot being served plus what `/health` and `/metrics` report about it.
pub struct SnapshotCache {
    current: ArcSwapOption<Snapshot>,
    store: SnapshotStore,
    redis_up: AtomicBool,
    events: broadcast::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
    rejected: std::sync::Mutex<Option<String>>,
    fetch_jitter: Duration,
    /// A new version seen but not fetched yet, and when it may be (`API_FETCH_JITTER_MS`).
    deferred: std::sync::Mutex<Option<(String, tokio::time::Instant)>>,
}

impl SnapshotCache {
    /// An empty cache over `store`.
    pub fn new(store: SnapshotStore, metrics: Arc<Metrics>) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            store,
            redis_up: AtomicBool::new(false),
            events: broadcast::channel(1024).0,
            metrics,
            rejected: std::sync::Mutex::new(None),
            fetch_jitter: Duration::ZERO,
            deferred: std::sync::Mutex::new(None),
        }
    }

    /// Waits a random time within `jitter` before fetching each new snapshot.
    pub fn with_fetch_jitter(self, jitter: Duration) -> Self {
        Self {
            fetch_jitter: jitter,
            ..self
        }
    }

    /// Whether fetching `version` must still wait for its jittered turn, drawn when the
    /// version is first seen (by an event or a poll alike). A replica holding nothing yet
    /// does not wait: readiness comes first.
    fn must_wait(&self, version: &str) -> bool {
        if self.fetch_jitter.is_zero() || self.current().is_none() {
            return false;
        }
        let Ok(mut deferred) = self.deferred.lock() else {
            return false;
        };
        let now = tokio::time::Instant::now();
        match deferred.as_ref() {
            Some((seen, due)) if seen == version => *due > now,
            _ => {
                let due = now + shared::config::fetch_delay(self.fetch_jitter);
                *deferred = Some((version.to_owned(), due));
                true
            }
        }
    }

    /// Resolves when a deferred fetch becomes due (never when none waits).
    async fn deferred_fetch_due(&self) {
        let now = tokio::time::Instant::now();
        let due = self
            .deferred
            .lock()
            .ok()
            .and_then(|d| d.as_ref().map(|(_, due)| *due));
        match due {
            Some(due) if due > now => tokio::time::sleep_until(due).await,
            _ => std::future::pending().await,
        }
    }

    /// The snapshot being served, if any.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The snapshot being served, borrowed for the moment: unlike [`Self::current`] it
    /// touches no reference count that every request thread shares, so the hot path
    /// uses it. Keep it briefly (a thread has few fast guards).
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// The store (for publishing refresh requests).
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// Whether the last Redis read succeeded.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Every event from `P:events` from now on (refresh waiters use it).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Loads the current snapshot from Redis if its version differs from the one held.
    /// Returns whether a new snapshot is now served.
    ///
    /// # Errors
    /// [`LoadError`]; the snapshot held keeps being served.
    pub async fn resync(&self) -> Result<bool, LoadError> {
        let meta = self.store.current_meta().await;
        self.redis_up.store(
            !matches!(meta, Err(StoreError::Redis(_))),
            Ordering::Relaxed,
        );
        let Some(meta) = meta? else { return Ok(false) };
        if self
            .current()
            .is_some_and(|held| held.meta.version == meta.version)
        {
            return Ok(false);
        }
        if self
            .rejected
            .lock()
            .is_ok_and(|r| r.as_deref() == Some(meta.version.as_str()))
            || self.must_wait(&meta.version)
        {
            return Ok(false);
        }
        let prepared = match self.store.bodies(&meta).await {
            Ok(bodies) => {
                let version = meta.version.clone();
                tokio::task::spawn_blocking(move || {
                    Snapshot::prepare(meta, bodies.gzip, bodies.zstd)
                })
                .await
                .map_err(|e| LoadError::Header(format!("{version} ({e})")))?
            }
            Err(e) => Err(e.into()),
        };
        match prepared {
            Ok(snapshot) => {
                tracing::info!(snapshot.version = %snapshot.meta.version, snapshot.count = snapshot.meta.count, "serving new snapshot");
                self.metrics.snapshot_loaded(&snapshot.meta);
                self.current.store(Some(Arc::new(snapshot)));
                Ok(true)
            }
            Err(e) => {
                if matches!(
                    e,
                    LoadError::Store(StoreError::Corrupt(_)) | LoadError::Decompress(..)
                ) {
                    tracing::error!(error = %e, "refusing corrupt snapshot; still serving the previous one");
                    self.metrics.snapshot_rejected();
                    if let Ok(mut rejected) = self.rejected.lock() {
                        *rejected = Some(version_of(&e));
                    }
                }
                Err(e)
            }
        }
    }
}

fn version_of(error: &LoadError) -> String {
    match error {
        LoadError::Store(StoreError::Corrupt(shared::snapshot::BodyMismatch::Size {
            version,
            ..
        }))
        | LoadError::Store(StoreError::Corrupt(shared::snapshot::BodyMismatch::Hash {
            version,
            ..
        }))
        | LoadError::Decompress(version, _) => version.clone(),
        _ => String::new(),
    }
}

async fn resync_logged(cache: &SnapshotCache, why: &str) {
    match cache.resync().await {
        Ok(_) => {}
        Err(LoadError::Store(StoreError::Redis(e))) => {
            tracing::warn!(error = %e, why, "cannot reach Redis; serving the snapshot held")
        }
        Err(e) => tracing::warn!(error = %e, why, "snapshot not loaded"),
    }
}

/// Connects to Redis (its clients retry until it answers), then keeps `cache` current until
/// `shutdown`: events, reconnects and polling.
pub async fn sync(
    cache: Arc<SnapshotCache>,
    subscriber: fred::clients::SubscriberClient,
    shutdown: CancellationToken,
) {
    let channel = cache.store.keys().events_channel();
    let connected = async {
        shared::redis::connect(cache.store.client()).await?;
        shared::redis::connect(&subscriber).await?;
        let _resubscribe = subscriber.manage_subscriptions();
        subscriber.subscribe(channel.as_str()).await
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        result = connected => if let Err(e) = result {
            tracing::error!(error = %e, "cannot subscribe to snapshot events; relying on polling");
        },
    }
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            () = cache.deferred_fetch_due() => resync_logged(&cache, "jitter").await,
            _ = poll.tick() => {
                // Heartbeat: a subscriber connection that stopped answering is replaced.
                let (heartbeat, ()) = tokio::join!(subscriber.ping::<fred::types::Value>(None), resync_logged(&cache, "poll"));
                if let Err(e) = heartbeat {
                    tracing::debug!(error = %e, "event subscriber heartbeat failed");
                }
            }
            reconnect = reconnects.recv() => {
                if reconnect.is_ok() {
                    cache.metrics.redis_reconnected();
                    tracing::info!("reconnected to Redis; resynchronising");
                    resync_logged(&cache, "reconnect").await;
                }
            }
            message = messages.recv() => match message {
                Ok(message) => {
                    let Ok(event) = serde_json::from_slice::<Event>(message.value.as_bytes().unwrap_or_default()) else {
                        tracing::debug!("ignoring an unknown event");
                        continue;
                    };
                    if let Event::SnapshotUpdated(updated) = &event {
                        tracing::debug!(version = %updated.version, "snapshot.updated received");
                        let span = tracing::info_span!("snapshot.reload", snapshot.version = %updated.version);
                        shared::telemetry::continue_trace(&span, updated.traceparent.as_deref());
                        resync_logged(&cache, "event").instrument(span).await;
                    }
                    let _ = cache.events.send(Arc::new(event));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event stream lagged; resynchronising");
                    resync_logged(&cache, "lagged").await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = subscriber.quit().await;
}
