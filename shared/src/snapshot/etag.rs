//! Every ETag of a snapshot, formatted here and nowhere else: one strong tag per
//! representation, all derived from the version, so different encodings never share a
//! tag and any of them names the same snapshot.

use super::codec::Codec;

/// The content-coding token of a dcz delta (RFC 9842).
pub const DCZ: &str = "dcz";

/// The ETag of `version`'s whole document in `codec`: `"V"` for identity, `"V-gzip"`,
/// `"V-zstd"`.
pub fn whole(version: &str, codec: Codec) -> String {
    match codec {
        Codec::Identity => format!("\"{version}\""),
        other => format!("\"{version}-{}\"", other.name()),
    }
}

/// The ETag of `version`'s dcz delta from the earlier version `base`: `"V-dcz-BASE"`,
/// strong and its own.
pub fn delta(version: &str, base: &str) -> String {
    format!("\"{version}-{DCZ}-{base}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_representation_has_a_tag_of_its_own() {
        assert_eq!(whole("7-ab", Codec::Identity), "\"7-ab\"");
        assert_eq!(whole("7-ab", Codec::Gzip), "\"7-ab-gzip\"");
        assert_eq!(whole("7-ab", Codec::Zstd), "\"7-ab-zstd\"");
        assert_eq!(delta("7-ab", "6-cd"), "\"7-ab-dcz-6-cd\"");
    }
}
