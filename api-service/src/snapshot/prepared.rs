//! A verified snapshot with everything a response needs: each representation's body
//! (zstd, gzip, identity, and a dcz delta per earlier version) and every header of its
//! 200 and 304, built once per version, so serving formats nothing and copies no body.

use std::time::SystemTime;

use bytes::Bytes;
use poem::http::{HeaderMap, HeaderName, HeaderValue, header};

use shared::delta::Delta;
use shared::sha256::Sha256;
use shared::snapshot::etag::{self, DCZ};
use shared::snapshot::{Codec, SnapshotMeta};

use crate::request::preconditions::EntityTags;
use crate::snapshot::body::SnapshotBody;

/// `Cache-Control` of every snapshot response: private, and revalidated before reuse.
/// `max-age=0` with a `stale-while-revalidate` instead of `no-cache`, because a browser
/// keeps a response as a compression dictionary (RFC 9842 §2.2.1) only while it is fresh
/// or may be revalidated in the background; two days cover the retained versions a delta
/// is made from (four, at two refreshes a day).
pub const CACHE_CONTROL: HeaderValue =
    HeaderValue::from_static("private, max-age=0, stale-while-revalidate=172800");
/// `Vary` of every snapshot 200 and 304.
pub const VARY: HeaderValue = HeaderValue::from_static("Accept-Encoding, Available-Dictionary");
/// Offers in the snapshot, on every 200.
pub const X_OFERTAS_COUNT: HeaderName = HeaderName::from_static("x-ofertas-count");
/// RFC 9842: every 200 may serve as the dictionary of the next request to the route.
pub const USE_AS_DICTIONARY: HeaderName = HeaderName::from_static("use-as-dictionary");
const USE_AS_DICTIONARY_VALUE: HeaderValue =
    HeaderValue::from_static("match=\"/api/v4/ofertasws\"");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Where a representation's body is.
pub enum Stored {
    /// Held in memory (a sealed body).
    Held(Bytes),
    /// The identity document of a snapshot too large to hold decompressed: produced from
    /// this zstd body while it is sent.
    FromZstd(Bytes),
}

impl Stored {
    /// The bytes held: the body itself, or the zstd body it is produced from.
    fn bytes(&self) -> &Bytes {
        match self {
            Self::Held(bytes) | Self::FromZstd(bytes) => bytes,
        }
    }
}

/// One representation of the snapshot, ready to send.
pub struct Variant {
    /// The body.
    pub stored: Stored,
    /// Its length.
    pub len: u64,
    /// Every header of a 200 with this body.
    pub ok_headers: HeaderMap,
    /// Every header of a 304 to a request that negotiated this representation.
    pub not_modified_headers: HeaderMap,
}

impl Variant {
    /// The body to send.
    pub fn body(&self) -> SnapshotBody {
        match &self.stored {
            Stored::Held(bytes) => SnapshotBody::full(bytes.clone()),
            Stored::FromZstd(zstd) => SnapshotBody::inflating(zstd.clone(), self.len),
        }
    }
}

/// A dcz delta of the snapshot from an earlier version's document.
pub struct DeltaVariant {
    /// What its version's index says of it.
    pub delta: Delta,
    /// SHA-256 of the earlier document: the `Available-Dictionary` it answers.
    pub dictionary: Sha256,
    /// The response.
    pub variant: Variant,
}

/// A verified snapshot with everything a response needs.
pub struct Snapshot {
    /// Its metadata.
    pub meta: SnapshotMeta,
    /// SHA-256 of its identity document (computed when it was checked).
    pub json_sha256: Sha256,
    /// zstd, gzip, identity — indexed by [`Codec::index`].
    pub variants: [Variant; 3],
    /// The deltas held, by earlier version.
    pub deltas: Vec<DeltaVariant>,
    /// Whether the version's delta index was read (so there is nothing more to wait for).
    pub deltas_listed: bool,
    /// Every representation's ETag, for `If-None-Match`.
    pub tags: EntityTags,
    /// `generated_at` as a `SystemTime`, for `If-Modified-Since`.
    pub modified: SystemTime,
}

/// The metadata cannot be written into headers (never for metadata refresh-service
/// writes: versions are `SEQ-HASH`).
#[derive(Debug, thiserror::Error)]
#[error("snapshot {0} has metadata unusable in headers")]
pub struct UnusableMeta(pub String);

/// The headers every representation of one snapshot shares.
struct Common {
    last_modified: HeaderValue,
    count: HeaderValue,
}

impl Common {
    fn variant(
        &self,
        etag: HeaderValue,
        coding: Option<&'static str>,
        stored: Stored,
        len: u64,
    ) -> Variant {
        let mut not_modified_headers = HeaderMap::with_capacity(4);
        not_modified_headers.insert(header::VARY, VARY);
        not_modified_headers.insert(header::ETAG, etag);
        not_modified_headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
        not_modified_headers.insert(header::LAST_MODIFIED, self.last_modified.clone());
        let mut ok_headers = not_modified_headers.clone();
        ok_headers.reserve(5);
        ok_headers.insert(header::CONTENT_TYPE, JSON);
        ok_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        ok_headers.insert(X_OFERTAS_COUNT, self.count.clone());
        ok_headers.insert(USE_AS_DICTIONARY, USE_AS_DICTIONARY_VALUE);
        if let Some(coding) = coding {
            ok_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        Variant {
            stored,
            len,
            ok_headers,
            not_modified_headers,
        }
    }
}

impl Snapshot {
    /// The snapshot of `meta` (its document's SHA-256 is `json_sha256`) with its verified
    /// bodies: `zstd`, `gzip`, the identity
    /// document (held, or produced from `zstd` when sent), and the deltas of its index
    /// when that was read (`None`: not written yet).
    ///
    /// # Errors
    /// [`UnusableMeta`] when the version or a date cannot be written into a header.
    pub fn new(
        meta: SnapshotMeta,
        json_sha256: Sha256,
        zstd: Bytes,
        gzip: Bytes,
        identity: Option<Bytes>,
        deltas: Option<Vec<(Delta, Sha256, Bytes)>>,
    ) -> Result<Self, UnusableMeta> {
        let unusable = || UnusableMeta(meta.version.clone());
        let modified = SystemTime::from(meta.generated_at);
        let common = Common {
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .map_err(|_| unusable())?,
            count: HeaderValue::from(meta.count),
        };
        let header_value = |tag: String| HeaderValue::try_from(tag).map_err(|_| unusable());
        let whole = |encoding: Codec, stored: Stored, len: u64| {
            let coding = (encoding != Codec::Identity).then(|| encoding.name());
            let tag = header_value(etag::whole(&meta.version, encoding))?;
            Ok::<_, UnusableMeta>(common.variant(tag, coding, stored, len))
        };
        let identity = match identity {
            Some(held) => Stored::Held(held),
            None => Stored::FromZstd(zstd.clone()),
        };
        let variants = [
            whole(Codec::Zstd, Stored::Held(zstd), meta.zstd_bytes)?,
            whole(Codec::Gzip, Stored::Held(gzip), meta.gzip_bytes)?,
            whole(Codec::Identity, identity, meta.json_bytes)?,
        ];
        let deltas_listed = deltas.is_some();
        let deltas = deltas
            .unwrap_or_default()
            .into_iter()
            .map(|(delta, dictionary, body)| {
                let tag = header_value(etag::delta(&meta.version, &delta.version))?;
                let variant = common.variant(tag, Some(DCZ), Stored::Held(body), delta.dcz_bytes);
                Ok(DeltaVariant {
                    delta,
                    dictionary,
                    variant,
                })
            })
            .collect::<Result<Vec<_>, UnusableMeta>>()?;
        let tags = variants
            .iter()
            .chain(deltas.iter().map(|d| &d.variant))
            .filter_map(|v| v.ok_headers.get(header::ETAG).cloned())
            .collect();
        Ok(Self {
            tags: EntityTags::new(tags).ok_or_else(unusable)?,
            variants,
            deltas,
            deltas_listed,
            modified,
            meta,
            json_sha256,
        })
    }

    /// This snapshot again, with the deltas of its index (`deltas`).
    ///
    /// # Errors
    /// [`UnusableMeta`], as [`Self::new`].
    pub fn with_deltas(&self, deltas: Vec<(Delta, Sha256, Bytes)>) -> Result<Self, UnusableMeta> {
        let identity = match &self.variant(Codec::Identity).stored {
            Stored::Held(bytes) => Some(bytes.clone()),
            Stored::FromZstd(_) => None,
        };
        let body = |codec| self.variant(codec).stored.bytes().clone();
        Self::new(
            self.meta.clone(),
            self.json_sha256,
            body(Codec::Zstd),
            body(Codec::Gzip),
            identity,
            Some(deltas),
        )
    }

    /// The whole document in `encoding`.
    pub fn variant(&self, encoding: Codec) -> &Variant {
        &self.variants[encoding.index()]
    }

    /// The delta whose dictionary has SHA-256 `dictionary`, when one is held.
    pub fn delta_from(&self, dictionary: &Sha256) -> Option<&Variant> {
        self.deltas
            .iter()
            .find(|d| &d.dictionary == dictionary)
            .map(|d| &d.variant)
    }

    /// Whether `dictionary` names this snapshot's own document: its client is up to date
    /// (and normally revalidates to a 304), so no delta is missing for it.
    pub fn is_own_document(&self, dictionary: &Sha256) -> bool {
        self.json_sha256 == *dictionary
    }
}
