//! A verified snapshot with everything a response needs: each encoding's body and every
//! header of its 200 and 304, built once per version, so serving formats nothing and
//! copies no body.

use std::time::SystemTime;

use bytes::Bytes;
use poem::http::{HeaderMap, HeaderName, HeaderValue, header};

use shared::snapshot::SnapshotMeta;

use crate::negotiate::{Encoding, EntityTags};
use crate::snapshot::body::SnapshotBody;

/// `Cache-Control` of every snapshot response: private, and revalidated before reuse.
pub const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");
/// `Vary` of every snapshot 200 and 304.
pub const VARY: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// Offers in the snapshot, on every 200.
pub const X_OFERTAS_COUNT: HeaderName = HeaderName::from_static("x-ofertas-count");

/// Where an encoding's body is.
pub enum Stored {
    /// Held in memory (a sealed body).
    Held(Bytes),
    /// The identity document of a snapshot too large to hold decompressed: produced from
    /// this zstd body while it is sent.
    FromZstd(Bytes),
}

/// One encoding of the snapshot, ready to send.
pub struct Variant {
    /// The body.
    pub stored: Stored,
    /// Its length.
    pub len: u64,
    /// Every header of a 200 with this body.
    pub ok_headers: HeaderMap,
    /// Every header of a 304 to a request that negotiated this encoding.
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

/// The ETag of `version` under `encoding`: `"V"`, `"V-gzip"`, `"V-zstd"`.
pub fn etag_for(version: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Identity => format!("\"{version}\""),
        other => format!("\"{version}-{}\"", other.token()),
    }
}

/// The metadata cannot be written into headers (never for metadata refresh-service
/// writes: versions are `SEQ-HASH`).
#[derive(Debug, thiserror::Error)]
#[error("snapshot {0} has metadata unusable in headers")]
pub struct UnusableMeta(pub String);

impl Snapshot {
    /// The snapshot of `meta` with its verified bodies: `zstd`, `gzip`, and the identity
    /// document (held, or produced from `zstd` when sent).
    ///
    /// # Errors
    /// [`UnusableMeta`] when the version or a date cannot be written into a header.
    pub fn new(
        meta: SnapshotMeta,
        zstd: Bytes,
        gzip: Bytes,
        identity: Option<Bytes>,
    ) -> Result<Self, UnusableMeta> {
        let unusable = || UnusableMeta(meta.version.clone());
        let modified = SystemTime::from(meta.generated_at);
        let last_modified =
            HeaderValue::from_str(&httpdate::fmt_http_date(modified)).map_err(|_| unusable())?;
        let count = HeaderValue::from(meta.count);
        let mut etags = Vec::with_capacity(Encoding::PREFERENCE.len());
        for encoding in Encoding::PREFERENCE {
            let tag = HeaderValue::try_from(etag_for(&meta.version, encoding));
            etags.push(tag.map_err(|_| unusable())?);
        }
        let variant = |encoding: Encoding, stored: Stored, len: u64| {
            let mut not_modified_headers = HeaderMap::with_capacity(4);
            not_modified_headers.insert(header::VARY, VARY);
            not_modified_headers.insert(header::ETAG, etags[encoding.index()].clone());
            not_modified_headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
            not_modified_headers.insert(header::LAST_MODIFIED, last_modified.clone());
            let mut ok_headers = not_modified_headers.clone();
            ok_headers.reserve(4);
            ok_headers.insert(header::CONTENT_TYPE, JSON);
            ok_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            ok_headers.insert(X_OFERTAS_COUNT, count.clone());
            if encoding != Encoding::Identity {
                let token = HeaderValue::from_static(encoding.token());
                ok_headers.insert(header::CONTENT_ENCODING, token);
            }
            Variant {
                stored,
                len,
                ok_headers,
                not_modified_headers,
            }
        };
        let identity = match identity {
            Some(held) => Stored::Held(held),
            None => Stored::FromZstd(zstd.clone()),
        };
        let variants = [
            variant(Encoding::Zstd, Stored::Held(zstd), meta.zstd_bytes),
            variant(Encoding::Gzip, Stored::Held(gzip), meta.gzip_bytes),
            variant(Encoding::Identity, identity, meta.json_bytes),
        ];
        Ok(Self {
            tags: EntityTags::new(etags).ok_or_else(unusable)?,
            variants,
            modified,
            meta,
        })
    }

    /// The variant for `encoding`.
    pub fn variant(&self, encoding: Encoding) -> &Variant {
        &self.variants[encoding.index()]
    }
}
