//! Content negotiation: which encoding to send (`Accept-Encoding` with q-values) and
//! whether a conditional request matches the snapshot (`If-None-Match`,
//! `If-Modified-Since`, parsed with the `headers` crate).

use std::time::SystemTime;

use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch};
use poem::http::{HeaderMap, HeaderValue};

/// An encoding the API can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Zstandard; preferred.
    Zstd,
    /// gzip.
    Gzip,
    /// Uncompressed.
    Identity,
}

impl Encoding {
    /// Every encoding, most preferred first.
    pub const PREFERENCE: [Encoding; 3] = [Encoding::Zstd, Encoding::Gzip, Encoding::Identity];

    /// Index into per-encoding arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Content-coding token (`identity` for none).
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

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

/// The encoding to send for an `Accept-Encoding` value, or `None` when the request
/// accepts none of ours (it refused identity too).
///
/// Highest q wins; ties go to zstd, then gzip, then identity. `*` stands for every
/// coding not named. Identity is acceptable unless refused by `identity;q=0` or `*;q=0`,
/// but when not named it ranks below any coding the client did name.
/// Malformed entries are ignored. No header means identity.
pub fn negotiate(accept_encoding: Option<&str>) -> Option<Encoding> {
    let Some(header) = accept_encoding else {
        return Some(Encoding::Identity);
    };
    let (mut zstd, mut gzip, mut identity, mut any) = (None, None, None, None);
    for entry in header.split(',') {
        let (coding, params) = entry.split_once(';').unwrap_or((entry, ""));
        let Some(q) = parse_quality(params) else {
            continue;
        };
        let coding = coding.trim();
        let slot = if coding.eq_ignore_ascii_case("zstd") {
            &mut zstd
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
        (Encoding::Zstd, quality(zstd, 0)),
        (Encoding::Gzip, quality(gzip, 0)),
        (Encoding::Identity, quality(identity, 1)),
    ];
    candidates
        .into_iter()
        .filter(|&(_, q)| q > 0)
        .fold(
            None,
            |best: Option<(Encoding, Quality)>, (enc, q)| match best {
                Some((_, best_q)) if best_q >= q => best,
                _ => Some((enc, q)),
            },
        )
        .map(|(enc, _)| enc)
}

/// Outcome of evaluating the request's preconditions against the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Send the representation.
    Send,
    /// The client's copy is current: 304.
    NotModified,
}

/// The entity tags of a snapshot's encodings, which all stand for the same snapshot.
#[derive(Debug)]
pub struct EntityTags {
    /// As sent in `ETag`: nearly every revalidation sends one of them back verbatim.
    sent: Vec<HeaderValue>,
    /// Parsed, for matching any list a client sends.
    parsed: Vec<ETag>,
}

impl EntityTags {
    /// The tags `sent`; `None` when one of them is not a valid entity tag.
    pub fn new(sent: Vec<HeaderValue>) -> Option<Self> {
        let parsed = sent
            .iter()
            .map(|tag| tag.to_str().ok()?.parse().ok())
            .collect::<Option<_>>()?;
        Some(Self { sent, parsed })
    }
}

/// `If-None-Match` (weak comparison against any of the snapshot's `tags`, or `*`);
/// only when it is absent, `If-Modified-Since` against `modified` (whole seconds).
/// Unparseable headers are ignored.
pub fn precondition(headers: &HeaderMap, tags: &EntityTags, modified: SystemTime) -> Precondition {
    let if_none_match = headers.get_all(poem::http::header::IF_NONE_MATCH);
    let mut values = if_none_match.iter();
    if let Some(first) = values.next() {
        // The common case, one of our tags sent back as it was, needs no parsing.
        if values.next().is_none() && tags.sent.contains(first) {
            return Precondition::NotModified;
        }
        if !if_none_match
            .iter()
            .all(|value| no_blank_inside_quotes(value.as_bytes()))
        {
            return Precondition::Send;
        }
        return match headers.typed_try_get::<IfNoneMatch>() {
            Ok(Some(inm)) if tags.parsed.iter().any(|tag| !inm.precondition_passes(tag)) => {
                Precondition::NotModified
            }
            _ => Precondition::Send,
        };
    }
    match headers.typed_try_get::<IfModifiedSince>() {
        Ok(Some(ims)) if !ims.is_modified(modified) => Precondition::NotModified,
        _ => Precondition::Send,
    }
}

/// Whether no space or tab sits inside a quoted entity tag. Such a tag is malformed, and
/// the `headers` crate only expects it away (a debug assertion), so it is refused first.
fn no_blank_inside_quotes(value: &[u8]) -> bool {
    let mut quoted = false;
    value.iter().all(|&byte| {
        if byte == b'"' {
            quoted = !quoted;
        }
        !(quoted && (byte == b' ' || byte == b'\t'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negotiation_table() {
        let cases: &[(Option<&str>, Option<Encoding>)] = &[
            (None, Some(Encoding::Identity)),
            (Some(""), Some(Encoding::Identity)),
            (Some("gzip"), Some(Encoding::Gzip)),
            (Some("gzip, deflate, br, zstd"), Some(Encoding::Zstd)),
            (Some("zstd;q=0, gzip"), Some(Encoding::Gzip)),
            (Some("gzip;q=0"), Some(Encoding::Identity)),
            (Some("gzip;q=0.5, zstd;q=0.4"), Some(Encoding::Gzip)),
            (Some("gzip;q=0.5, identity;q=0.9"), Some(Encoding::Identity)),
            (Some("*"), Some(Encoding::Zstd)),
            (Some("*;q=0.2, identity;q=0.5"), Some(Encoding::Identity)),
            (Some("identity;q=0"), None),
            (Some("*;q=0"), None),
            (Some("*;q=0, gzip"), Some(Encoding::Gzip)),
            (Some("br"), Some(Encoding::Identity)),
            (Some("x-gzip"), Some(Encoding::Gzip)),
            (Some("GZIP;Q=1.000"), Some(Encoding::Gzip)),
            (Some("gzip;q=2, zstd;q=abc"), Some(Encoding::Identity)),
            (Some("gzip;q=0.001"), Some(Encoding::Gzip)),
            (Some("gzip;q=1, identity;q=1"), Some(Encoding::Gzip)),
        ];
        for (header, want) in cases {
            assert_eq!(negotiate(*header), *want, "Accept-Encoding: {header:?}");
        }
    }

    fn tags(tags: &[&'static str]) -> EntityTags {
        EntityTags::new(tags.iter().map(|t| HeaderValue::from_static(t)).collect()).unwrap()
    }

    fn if_none_match(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                poem::http::header::IF_NONE_MATCH,
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn our_tag_sent_back_verbatim_or_in_any_form_is_a_304() {
        let ours = tags(&["\"1-abc-zstd\"", "\"1-abc-gzip\"", "\"1-abc\""]);
        let modified = SystemTime::now();
        for values in [
            &["\"1-abc-gzip\""][..],
            &["\"1-abc\""],
            &["W/\"1-abc-zstd\""],
            &["\"old\", \"1-abc-gzip\""],
            &["\"old\"", "\"1-abc-gzip\""],
            &["*"],
        ] {
            let verdict = precondition(&if_none_match(values), &ours, modified);
            assert_eq!(verdict, Precondition::NotModified, "{values:?}");
        }
        for values in [
            &["\"1-abc-br\""][..],
            &["\"1-ABC-gzip\""],
            &["\"1-abc-gzip\"", "\"bad tag\""],
        ] {
            let verdict = precondition(&if_none_match(values), &ours, modified);
            assert_eq!(verdict, Precondition::Send, "{values:?}");
        }
    }

    #[test]
    fn entity_tags_refuse_a_value_that_is_not_a_tag() {
        assert!(EntityTags::new(vec![HeaderValue::from_static("no-quotes")]).is_none());
    }

    #[test]
    fn a_blank_inside_a_quoted_etag_is_a_malformed_header_not_a_panic() {
        let ours = tags(&["\"1-abc\""]);
        for value in ["\"a b\"", "\"1-abc\", \"x\ty\"", "W/\"a b\""] {
            let mut headers = HeaderMap::new();
            headers.insert(
                poem::http::header::IF_NONE_MATCH,
                HeaderValue::from_str(value).unwrap(),
            );
            let verdict = precondition(&headers, &ours, SystemTime::now());
            assert_eq!(verdict, Precondition::Send, "{value}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            poem::http::header::IF_NONE_MATCH,
            HeaderValue::from_static("\"old\" , \"1-abc\""),
        );
        let verdict = precondition(&headers, &ours, SystemTime::now());
        assert_eq!(
            verdict,
            Precondition::NotModified,
            "blanks between tags are fine"
        );
    }

    fn q(quality: u16) -> String {
        format!("{}.{:03}", quality / 1000, quality % 1000)
    }

    proptest! {
        #[test]
        fn negotiate_never_panics(header in "\\PC{0,200}") {
            let _ = negotiate(Some(&header));
        }

        #[test]
        fn negotiate_picks_an_acceptable_encoding_of_highest_quality(
            zq in 0u16..=1000, gq in 0u16..=1000, iq in 0u16..=1000, order in 0usize..6,
        ) {
            let entries = [format!("zstd;q={}", q(zq)), format!("gzip;q={}", q(gq)), format!("identity;q={}", q(iq))];
            let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][order];
            let header = perm.iter().map(|&i| entries[i].as_str()).collect::<Vec<_>>().join(", ");
            let quality = |e: Encoding| match e { Encoding::Zstd => zq, Encoding::Gzip => gq, Encoding::Identity => iq };
            match negotiate(Some(&header)) {
                None => prop_assert!(zq == 0 && gq == 0 && iq == 0),
                Some(chosen) => {
                    prop_assert!(quality(chosen) > 0);
                    for other in Encoding::PREFERENCE {
                        prop_assert!(quality(other) <= quality(chosen), "{header}: chose {chosen:?}");
                    }
                }
            }
        }
    }
}
