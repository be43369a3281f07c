//! Content negotiation: what to send for a request's `Accept-Encoding` (q-values; `dcz`
//! only when a delta from the dictionary its `Available-Dictionary` names is ready).

use poem::http::{HeaderMap, HeaderName};

use shared::sha256::Sha256;
use shared::snapshot::Codec;
use shared::snapshot::etag::DCZ;

/// Quality in thousandths, as RFC 9110 allows at most three decimals.
type Quality = u16;

fn parse_quality(params: &str) -> Option<Quality> {
    for param in params.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        let (int, frac) = value.split_once('.').unwrap_or((value, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
        return match int {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        };
    }
    Some(1000)
}

/// What to send, as negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The delta from the client's dictionary (`Content-Encoding: dcz`).
    Delta,
    /// The whole document in this coding.
    Whole(Codec),
}

/// What to send for an `Accept-Encoding` value, or `None` when the request accepts none
/// of ours (it refused identity too). `delta_ready` says whether a delta from the
/// client's dictionary is ready; without one, `dcz` is never chosen.
///
/// Highest q wins; ties go to dcz, then zstd, then gzip, then identity. `*` stands for
/// every coding not named. Identity is acceptable unless refused by `identity;q=0` or
/// `*;q=0`, but when not named it ranks below any coding the client did name.
/// Malformed entries are ignored. No header means identity.
pub fn negotiate(accept_encoding: Option<&str>, delta_ready: bool) -> Option<Choice> {
    let Some(header) = accept_encoding else {
        return Some(Choice::Whole(Codec::Identity));
    };
    let (mut dcz, mut zstd, mut gzip, mut identity, mut any) = (None, None, None, None, None);
    for entry in header.split(',') {
        let (coding, params) = entry.split_once(';').unwrap_or((entry, ""));
        let Some(q) = parse_quality(params) else {
            continue;
        };
        let coding = coding.trim();
        let slot = if coding.eq_ignore_ascii_case("zstd") {
            &mut zstd
        } else if coding.eq_ignore_ascii_case(DCZ) {
            &mut dcz
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // When a coding is listed twice, the most generous entry counts.
        *slot = Some(slot.map_or(q, |old: Quality| old.max(q)));
    }
    let quality = |named: Option<Quality>, default: Quality| named.or(any).unwrap_or(default);
    let candidates = [
        (Choice::Delta, if delta_ready { quality(dcz, 0) } else { 0 }),
        (Choice::Whole(Codec::Zstd), quality(zstd, 0)),
        (Choice::Whole(Codec::Gzip), quality(gzip, 0)),
        (Choice::Whole(Codec::Identity), quality(identity, 1)),
    ];
    candidates
        .into_iter()
        .filter(|&(_, q)| q > 0)
        .fold(
            None,
            |best: Option<(Choice, Quality)>, (choice, q)| match best {
                Some((_, best_q)) if best_q >= q => best,
                _ => Some((choice, q)),
            },
        )
        .map(|(choice, _)| choice)
}

/// Longest `Available-Dictionary` value read: `:`, 44 base64 characters and `:` (a
/// SHA-256), with room for blanks around it; anything longer is ignored unread.
const MAX_AVAILABLE_DICTIONARY: usize = 64;

/// The SHA-256 an `Available-Dictionary` header names (RFC 9842 §2.2: one structured
/// field byte sequence, `:base64:`), or `None` when the header is absent, repeated,
/// oversized or malformed — such a request is answered as if it had named none.
pub fn available_dictionary(headers: &HeaderMap) -> Option<Sha256> {
    use base64::Engine as _;
    let mut values = headers.get_all(AVAILABLE_DICTIONARY).iter();
    let value = values.next()?;
    if values.next().is_some() || value.len() > MAX_AVAILABLE_DICTIONARY {
        return None;
    }
    let text = value.to_str().ok()?.trim_matches(' ');
    let encoded = text.strip_prefix(':')?.strip_suffix(':')?;
    let mut sha = [0u8; 32];
    match base64::engine::general_purpose::STANDARD.decode_slice(encoded, &mut sha) {
        Ok(32) => Some(Sha256::from_bytes(sha)),
        _ => None,
    }
}

/// The request header naming the client's dictionary (RFC 9842). A `HeaderName`, not a
/// `&str`: a `&str` is parsed into a name on every lookup (800 instructions per request,
/// measured with callgrind on the 304 path).
pub const AVAILABLE_DICTIONARY: HeaderName = HeaderName::from_static("available-dictionary");
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use Codec::{Gzip, Identity, Zstd};

    fn whole(encoding: Codec) -> Option<Choice> {
        Some(Choice::Whole(encoding))
    }

    #[test]
    fn negotiation_table() {
        let cases: &[(Option<&str>, Option<Codec>)] = &[
            (None, Some(Identity)),
            (Some(""), Some(Identity)),
            (Some("gzip"), Some(Gzip)),
            (Some("gzip, deflate, br, zstd"), Some(Zstd)),
            (Some("zstd;q=0, gzip"), Some(Gzip)),
            (Some("gzip;q=0"), Some(Identity)),
            (Some("gzip;q=0.5, zstd;q=0.4"), Some(Gzip)),
            (Some("gzip;q=0.5, identity;q=0.9"), Some(Identity)),
            (Some("*"), Some(Zstd)),
            (Some("*;q=0.2, identity;q=0.5"), Some(Identity)),
            (Some("identity;q=0"), None),
            (Some("*;q=0"), None),
            (Some("*;q=0, gzip"), Some(Gzip)),
            (Some("br"), Some(Identity)),
            (Some("x-gzip"), Some(Gzip)),
            (Some("GZIP;Q=1.000"), Some(Gzip)),
            (Some("gzip;q=2, zstd;q=abc"), Some(Identity)),
            (Some("gzip;q=0.001"), Some(Gzip)),
            (Some("gzip;q=1, identity;q=1"), Some(Gzip)),
        ];
        for (header, want) in cases {
            let want = want.map(Choice::Whole);
            assert_eq!(
                negotiate(*header, false),
                want,
                "Accept-Encoding: {header:?}"
            );
        }
    }

    #[test]
    fn dcz_is_chosen_only_when_a_delta_is_ready_and_by_q_value() {
        let cases: &[(&str, bool, Option<Choice>)] = &[
            ("dcz, zstd, gzip", true, Some(Choice::Delta)),
            ("dcz, zstd, gzip", false, whole(Zstd)),
            ("gzip, zstd, dcz", true, Some(Choice::Delta)),
            ("dcz;q=0, zstd", true, whole(Zstd)),
            ("dcz;q=0.5, zstd", true, whole(Zstd)),
            ("dcz, zstd;q=0.5", true, Some(Choice::Delta)),
            ("zstd, gzip", true, whole(Zstd)),
            ("*", true, Some(Choice::Delta)),
            ("DCZ;Q=1", true, Some(Choice::Delta)),
            ("dcz;q=0.2, identity;q=0.5", true, whole(Identity)),
            ("dcz;q=0.9, gzip;q=0.9", true, Some(Choice::Delta)),
            ("dcz", false, whole(Identity)),
            ("dcz, identity;q=0", false, None),
            ("gzip;q=0, dcz", true, Some(Choice::Delta)),
        ];
        for (header, ready, want) in cases {
            assert_eq!(
                negotiate(Some(header), *ready),
                *want,
                "{header} (ready: {ready})"
            );
        }
    }

    fn with_dictionary(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AVAILABLE_DICTIONARY, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn available_dictionary_reads_one_sha256_byte_sequence_and_ignores_anything_else() {
        // RFC 9842's test vector: the SHA-256 of "This is a test dictionary.\n".
        let vector = ":U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BY=:";
        let sha = available_dictionary(&with_dictionary(&[vector])).unwrap();
        assert_eq!(sha, Sha256::of(b"This is a test dictionary.\n"));
        assert_eq!(
            available_dictionary(&with_dictionary(&[&format!(" {vector} ")])),
            Some(sha)
        );
        for bad in [
            &[][..],
            &[vector, vector],
            &["U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BY="],
            &[":U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BY:"],
            &[":U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BYAAAA=:"],
            &[":AAAA:"],
            &["::"],
            &[":!!!!:"],
            &[&format!(":{}:", "A".repeat(200))],
            &["\"sf-string\""],
        ] {
            assert_eq!(available_dictionary(&with_dictionary(bad)), None, "{bad:?}");
        }
    }

    fn q(quality: u16) -> String {
        format!("{}.{:03}", quality / 1000, quality % 1000)
    }

    proptest! {
        #[test]
        fn negotiate_never_panics(header in "\\PC{0,200}", ready: bool) {
            let _ = negotiate(Some(&header), ready);
        }

        #[test]
        fn available_dictionary_never_panics_and_reads_only_32_bytes(value in "[ -~]{0,100}") {
            if let Ok(value) = value.parse() {
                let mut headers = HeaderMap::new();
                headers.insert(AVAILABLE_DICTIONARY, value);
                if let Some(sha) = available_dictionary(&headers) {
                    use base64::Engine as _;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(sha.as_bytes());
                    prop_assert_eq!(headers[AVAILABLE_DICTIONARY].to_str().unwrap().trim(), format!(":{encoded}:"));
                }
            }
        }

        #[test]
        fn negotiate_picks_an_acceptable_encoding_of_highest_quality(
            zq in 0u16..=1000, gq in 0u16..=1000, iq in 0u16..=1000, order in 0usize..6,
        ) {
            let entries = [format!("zstd;q={}", q(zq)), format!("gzip;q={}", q(gq)), format!("identity;q={}", q(iq))];
            let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][order];
            let header = perm.iter().map(|&i| entries[i].as_str()).collect::<Vec<_>>().join(", ");
            let quality = |e: Codec| match e { Zstd => zq, Gzip => gq, Identity => iq };
            match negotiate(Some(&header), false) {
                None => prop_assert!(zq == 0 && gq == 0 && iq == 0),
                Some(Choice::Delta) => prop_assert!(false, "dcz without a delta"),
                Some(Choice::Whole(chosen)) => {
                    prop_assert!(quality(chosen) > 0);
                    for other in Codec::PREFERENCE {
                        prop_assert!(quality(other) <= quality(chosen), "{header}: chose {chosen:?}");
                    }
                }
            }
        }
    }
}
