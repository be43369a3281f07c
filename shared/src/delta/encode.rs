//! How a delta is made: the one definition refresh-service builds deltas with and every
//! test decodes, so what a test proves holds for what production serves.
//!
//! A delta is one single-segment zstd frame whose window is the new document's size
//! ([`window_log`]), made with the earlier document as a raw-content prefix at the
//! setting measured best for the dictionary's size ([`DeltaSettings::for_dictionary`]),
//! and only when RFC 9842 lets every client take it ([`allowed`]).

use std::io::{self, Write};
use std::ops::RangeInclusive;

use zstd::stream::raw::CParameter;

use super::frame::{MAX_DICTIONARY_BYTES, dcz_header};
use crate::sha256::Sha256;

/// How a delta is compressed, chosen by measurement (`docs/delta-findings.md`; the table
/// is in the README, "Delta downloads for app clients").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaSettings {
    /// zstd level.
    pub level: i32,
    /// Long-distance matching.
    pub long_distance: bool,
}

/// Largest dictionary compressed with [`SMALL_DOCUMENTS`]: the 7,000-offer documents
/// (2.6 MB) measured, with room to grow; past it the larger setting was measured.
pub const SMALL_DICTIONARY_BYTES: u64 = 8 << 20;
/// Level 19 with long-distance matching on a 2.6 MB pair: the `zstd --patch-from
/// --ultra -22` limit to within 0.5 % (12,805 against 12,863 bytes), 0.65 s of CPU.
pub const SMALL_DOCUMENTS: DeltaSettings = DeltaSettings {
    level: 19,
    long_distance: true,
};
/// Level 12 without long-distance matching on a 37 MB pair (100,000 offers): the smallest
/// and fastest measured there (0.27 s; level 19 took 20–33 s per delta).
pub const LARGE_DOCUMENTS: DeltaSettings = DeltaSettings {
    level: 12,
    long_distance: false,
};

impl DeltaSettings {
    /// The setting for a delta against a dictionary of `dictionary_len` bytes.
    pub fn for_dictionary(dictionary_len: u64) -> Self {
        if dictionary_len <= SMALL_DICTIONARY_BYTES {
            SMALL_DOCUMENTS
        } else {
            LARGE_DOCUMENTS
        }
    }
}

/// Smallest and largest window logs of a delta: every client accepts 23 (RFC 9842 §5: at
/// least 8 MiB), none need accept more than 27 (128 MiB); Chromium clamps its limit,
/// `ceil(log2(1.25 × dictionary))`, to this range.
pub const WINDOW_LOG: RangeInclusive<u32> = 23..=27;

/// Whether a delta of a `document_len`-byte document against a `dictionary_len`-byte
/// dictionary fits RFC 9842: the frame is a single segment, whose window is the
/// document's size, and a client may refuse a window over 8 MiB or 1.25 × the
/// dictionary (at most 128 MiB); neither may exceed 100 MiB.
pub fn allowed(dictionary_len: u64, document_len: u64) -> bool {
    let window = (dictionary_len + dictionary_len / 4).clamp(1 << 23, 1 << 27);
    dictionary_len <= MAX_DICTIONARY_BYTES
        && document_len <= MAX_DICTIONARY_BYTES
        && document_len <= window
}

/// The window log the compressor works in for a `document_len`-byte document: the
/// smallest power of two that holds the whole document (within [`WINDOW_LOG`]), so the
/// frame is a single segment and every byte of the dictionary stays reachable.
pub fn window_log(document_len: u64) -> u32 {
    let log = 64 - document_len.saturating_sub(1).leading_zeros();
    log.clamp(*WINDOW_LOG.start(), *WINDOW_LOG.end())
}

/// The dcz body that turns `dictionary` into `document`, at the setting for the
/// dictionary's size: the RFC 9842 header naming the dictionary's SHA-256, then one
/// single-segment zstd frame (its window is the document's size: the size is pledged and
/// fits [`window_log`]) made with the dictionary as a raw-content prefix. Whether a
/// client may take it is [`allowed`]'s question, asked before.
///
/// # Errors
/// When zstd refuses a parameter or runs out of memory.
pub fn compress(dictionary: &[u8], document: &[u8]) -> io::Result<Vec<u8>> {
    compress_with(
        dictionary,
        document,
        DeltaSettings::for_dictionary(dictionary.len() as u64),
    )
}

/// [`compress`] at `settings`.
fn compress_with(
    dictionary: &[u8],
    document: &[u8],
    settings: DeltaSettings,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(document.len() / 16 + 64);
    body.extend_from_slice(&dcz_header(&Sha256::of(dictionary)));
    let mut encoder =
        zstd::stream::write::Encoder::with_ref_prefix(&mut body, settings.level, dictionary)?;
    encoder.set_parameter(CParameter::WindowLog(window_log(document.len() as u64)))?;
    encoder.set_parameter(CParameter::EnableLongDistanceMatching(
        settings.long_distance,
    ))?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(document.len() as u64))?;
    encoder.write_all(document)?;
    encoder.finish()?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::dcz_dictionary;

    #[test]
    fn the_window_holds_the_document_within_what_rfc_9842_and_chromium_allow() {
        assert_eq!(window_log(0), 23);
        assert_eq!(window_log(2_600_000), 23);
        assert_eq!(window_log(8 << 20), 23);
        assert_eq!(window_log((8 << 20) + 1), 24);
        assert_eq!(window_log(37_000_000), 26);
        assert_eq!(window_log(100 << 20), 27);
        assert!(allowed(2_600_000, 2_700_000));
        assert!(allowed(1_000, 8 << 20), "8 MiB is always allowed");
        assert!(!allowed(1_000, (8 << 20) + 1));
        assert!(allowed(40 << 20, 50 << 20));
        assert!(!allowed(40 << 20, 51 << 20), "over 1.25 × the dictionary");
        assert!(!allowed(101 << 20, 101 << 20), "over 100 MiB");
        assert_eq!(DeltaSettings::for_dictionary(2_600_000), SMALL_DOCUMENTS);
        assert_eq!(DeltaSettings::for_dictionary(37_000_000), LARGE_DOCUMENTS);
    }

    #[test]
    fn a_delta_frame_is_one_segment_whose_window_is_the_document() {
        let dictionary: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i / 3).to_le_bytes())
            .collect();
        let body = compress(&dictionary, &dictionary[..1_000_000]).unwrap();
        // Frame header descriptor: bit 5 is Single_Segment_flag; then the content size.
        let frame = &body[40..];
        assert_eq!(frame[..4], [0x28, 0xB5, 0x2F, 0xFD]);
        assert_ne!(frame[4] & 0x20, 0, "single segment");
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(frame).ok(),
            Some(Some(1_000_000))
        );
    }

    #[test]
    fn a_delta_decodes_to_the_document_with_its_dictionary() {
        let dictionary: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut document = dictionary.clone();
        document[1000..1010].copy_from_slice(b"0123456789");
        let body = compress_with(&dictionary, &document, LARGE_DOCUMENTS).unwrap();
        assert!(body.len() < 2_000, "{} bytes", body.len());
        assert_eq!(dcz_dictionary(&body), Some(Sha256::of(&dictionary)));
        let mut decoder =
            zstd::stream::read::Decoder::with_ref_prefix(&body[40..], &dictionary[..]).unwrap();
        let mut decoded = Vec::new();
        io::Read::read_to_end(&mut decoder, &mut decoded).unwrap();
        assert_eq!(decoded, document);
    }
}
