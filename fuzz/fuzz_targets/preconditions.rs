//! Conditional requests (`api_service::request::preconditions::precondition`):
//! `If-None-Match` and `If-Modified-Since` as a client may send them, against a
//! snapshot's three ETags.
//!
//! Properties: `If-Modified-Since` is ignored whenever `If-None-Match` is present; a 304
//! from `If-None-Match` needs `*` or one of our tags in the header; one of our tags added
//! to any valid list gives 304; without `If-None-Match`, 304 exactly when
//! `If-Modified-Since` is an HTTP date at or after the snapshot's time (whole seconds).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use api_service::request::preconditions::{EntityTags, Precondition, precondition};
use libfuzzer_sys::fuzz_target;
use poem::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use poem::http::{HeaderMap, HeaderValue};

/// The snapshot's tags, as `snapshot_cache` builds them (identity, gzip, zstd).
const TAGS: [&str; 3] = [
    "\"7-3fa2b1c49d0e\"",
    "\"7-3fa2b1c49d0e-gzip\"",
    "\"7-3fa2b1c49d0e-zstd\"",
];

static ETAGS: LazyLock<EntityTags> = LazyLock::new(|| {
    EntityTags::new(TAGS.iter().map(|t| HeaderValue::from_static(t)).collect()).expect("valid tags")
});

/// The input, decoded from bytes laid out so seed files are easy to write:
/// `[flags][modified: u32 big-endian][If-None-Match]\n[If-Modified-Since]`. Flag bit 0:
/// send `If-None-Match`; bit 1: send `If-Modified-Since`; bit 2: append our tag weak;
/// bits 3-4: which of our tags to append to a valid list.
#[derive(Debug)]
struct Input<'a> {
    if_none_match: Option<&'a [u8]>,
    if_modified_since: Option<&'a [u8]>,
    ours: usize,
    weak: bool,
    modified_secs: u32,
}

impl<'a> Input<'a> {
    fn decode(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (secs, rest) = rest.split_first_chunk::<4>()?;
        let (inm, ims) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        Some(Self {
            if_none_match: (flags & 1 != 0).then_some(inm),
            if_modified_since: (flags & 2 != 0).then_some(ims),
            weak: flags & 4 != 0,
            ours: usize::from(flags >> 3 & 3),
            modified_secs: u32::from_be_bytes(*secs),
        })
    }
}

/// Whether `value` is a list of well-formed entity-tags (RFC 9110 §8.8.3), empty
/// members allowed, in visible ASCII. Only such lists promise a 304 for our tag: a
/// malformed member (an unbalanced quote) can swallow the rest of the list, and the
/// `headers` crate refuses a whole value with obs-text (bytes ≥ 0x80) in it. Both only
/// ever cost a client a 200 it could have avoided, never a wrong 304.
fn well_formed_list(value: &[u8]) -> bool {
    let etagc = |b: &u8| *b == 0x21 || (0x23..=0x7e).contains(b);
    value.split(|&b| b == b',').all(|member| {
        let member = member.trim_ascii();
        let opaque = member.strip_prefix(b"W/").unwrap_or(member);
        member.is_empty()
            || (opaque.len() >= 2
                && opaque[0] == b'"'
                && opaque[opaque.len() - 1] == b'"'
                && opaque[1..opaque.len() - 1].iter().all(etagc))
    })
}

fn headers(inm: Option<&HeaderValue>, ims: Option<&HeaderValue>) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Some(value) = inm {
        map.insert(IF_NONE_MATCH, value.clone());
    }
    if let Some(value) = ims {
        map.insert(IF_MODIFIED_SINCE, value.clone());
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let etags = &*ETAGS;
    // Snapshots carry milliseconds; the comparison must use whole seconds.
    let modified = UNIX_EPOCH + Duration::new(u64::from(input.modified_secs), 123_000_000);
    let inm = input
        .if_none_match
        .and_then(|b| HeaderValue::from_bytes(b).ok());
    let ims = input
        .if_modified_since
        .and_then(|b| HeaderValue::from_bytes(b).ok());
    let got = precondition(&headers(inm.as_ref(), ims.as_ref()), etags, modified);

    match &inm {
        Some(value) => {
            assert_eq!(
                got,
                precondition(&headers(Some(value), None), etags, modified),
                "If-Modified-Since {ims:?} changed the outcome of If-None-Match {value:?}"
            );
            let text = String::from_utf8_lossy(value.as_bytes());
            if got == Precondition::NotModified {
                assert!(
                    text.trim() == "*" || TAGS.iter().any(|t| text.contains(t)),
                    "304 for If-None-Match {text:?}, which names none of {TAGS:?}"
                );
            }
            if well_formed_list(value.as_bytes()) {
                let tag = TAGS[input.ours % TAGS.len()];
                let prefix = if input.weak { "W/" } else { "" };
                let extended =
                    [value.as_bytes(), b", ", prefix.as_bytes(), tag.as_bytes()].concat();
                let extended = HeaderValue::from_bytes(&extended).expect("a valid header value");
                assert_eq!(
                    precondition(&headers(Some(&extended), None), etags, modified),
                    Precondition::NotModified,
                    "If-None-Match {extended:?} names our tag {tag} but got 200"
                );
            }
        }
        None => {
            let since = ims
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok());
            let modified_secs = UNIX_EPOCH + Duration::from_secs(u64::from(input.modified_secs));
            let want = match since {
                Some(since) if since >= modified_secs => Precondition::NotModified,
                _ => Precondition::Send,
            };
            assert_eq!(
                got, want,
                "If-Modified-Since {ims:?} against {modified:?}: got {got:?}"
            );
        }
    }
    // A request with neither header is always sent in full.
    assert_eq!(
        precondition(&HeaderMap::new(), etags, modified),
        Precondition::Send
    );
});
