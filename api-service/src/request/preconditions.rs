//! Conditional requests: whether the client's copy is the current snapshot
//! (`If-None-Match` against every ETag of the snapshot, or else `If-Modified-Since`),
//! parsed with the `headers` crate.

use std::time::SystemTime;

use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch};
use poem::http::{HeaderMap, HeaderValue};

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
}
