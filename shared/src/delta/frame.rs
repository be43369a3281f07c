//! How a dcz body is framed (RFC 9842 §5): the header that names the dictionary, and the
//! size limit on documents a delta is made from or to.

use crate::sha256::Sha256;

/// First bytes of every dcz body: a zstd skippable frame (magic `0x184D2A5E`) of 32 bytes.
pub const DCZ_MAGIC: [u8; 8] = [0x5E, 0x2A, 0x4D, 0x18, 0x20, 0x00, 0x00, 0x00];
/// Length of the dcz header: the magic and the dictionary's SHA-256.
pub const DCZ_HEADER_BYTES: usize = 40;
/// Largest document a delta is made from or to (Chromium's dictionary limit, RFC 9842).
pub const MAX_DICTIONARY_BYTES: u64 = 100 * 1024 * 1024;

/// The dcz header for a dictionary whose SHA-256 is `dictionary`.
pub fn dcz_header(dictionary: &Sha256) -> [u8; DCZ_HEADER_BYTES] {
    let mut header = [0; DCZ_HEADER_BYTES];
    header[..8].copy_from_slice(&DCZ_MAGIC);
    header[8..].copy_from_slice(dictionary.as_bytes());
    header
}

/// The dictionary SHA-256 a dcz body names, when it starts with a valid header.
pub fn dcz_dictionary(body: &[u8]) -> Option<Sha256> {
    let header = body.get(..DCZ_HEADER_BYTES)?;
    if header[..8] != DCZ_MAGIC {
        return None;
    }
    header[8..].try_into().ok().map(Sha256::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dcz_header_names_its_dictionary() {
        let sha = Sha256::from_bytes([7u8; 32]);
        let mut body = dcz_header(&sha).to_vec();
        assert_eq!(body[..8], [0x5E, 0x2A, 0x4D, 0x18, 0x20, 0, 0, 0]);
        body.extend_from_slice(b"frame");
        assert_eq!(dcz_dictionary(&body), Some(sha));
        body[0] = 0x5F;
        assert_eq!(dcz_dictionary(&body), None);
        assert_eq!(dcz_dictionary(&body[..20]), None);
    }
}
