//! The content codings of the snapshot document.

/// A content coding of the whole snapshot document: zstd and gzip (stored in Redis, each
/// with its recorded size and hash) or identity (the document itself, recorded as
/// `json_*`). The one enum for storage, negotiation, `Content-Encoding` and ETags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Zstandard.
    Zstd,
    /// RFC 1952 gzip.
    Gzip,
    /// The document uncompressed.
    Identity,
}

impl Codec {
    /// The codings stored as bodies of their own.
    pub const STORED: [Codec; 2] = [Codec::Gzip, Codec::Zstd];

    /// Every coding, most preferred first.
    pub const PREFERENCE: [Codec; 3] = [Codec::Zstd, Codec::Gzip, Codec::Identity];

    /// Content-coding token (`zstd`, `gzip`, `identity`), as used in key names,
    /// `Content-Encoding`, ETags and logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Gzip => "gzip",
            Codec::Identity => "identity",
        }
    }

    /// Position in [`Self::PREFERENCE`], for per-coding arrays.
    pub fn index(self) -> usize {
        match self {
            Codec::Zstd => 0,
            Codec::Gzip => 1,
            Codec::Identity => 2,
        }
    }
}
