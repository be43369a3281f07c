//! The ops message parser (`shared::events::RefreshRequest::parse`), fed whatever may be
//! published on `P:refresh`.
//!
//! Properties: nothing over `MAX_REQUEST_BYTES` is ever accepted (the input is also tried
//! padded past the limit); a message is refused only when oversize or when it starts
//! with `{`; plain text is a request whose reason is the trimmed text; an accepted JSON
//! request survives a serialise/parse round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::events::{MAX_REQUEST_BYTES, RefreshRequest, RequestRejected, Trigger};

fuzz_target!(|data: &[u8]| {
    let parsed = RefreshRequest::parse(data);
    let text = String::from_utf8_lossy(data);
    let text = text.trim();
    match &parsed {
        Err(RequestRejected::TooLarge(n)) => {
            assert_eq!(*n, data.len());
            assert!(data.len() > MAX_REQUEST_BYTES);
        }
        Err(RequestRejected::InvalidJson(_)) => {
            assert!(text.starts_with('{'), "plain text {text:?} refused as JSON");
        }
        Err(RequestRejected::NotText(e)) => panic!("bytes are always text here: {e}"),
        Ok(request) if text.starts_with('{') => {
            assert!(data.len() <= MAX_REQUEST_BYTES);
            let again = serde_json::to_vec(request).expect("a request serialises");
            let reparsed = RefreshRequest::parse(&again).expect("a serialised request parses");
            assert_eq!(&reparsed, request);
        }
        Ok(request) => {
            assert!(data.len() <= MAX_REQUEST_BYTES);
            let want = RefreshRequest {
                reason: (!text.is_empty()).then(|| text.to_owned()),
                ..RefreshRequest::default()
            };
            assert_eq!(request, &want);
            assert_eq!(request.trigger(), Trigger::Ops);
        }
    }

    // The same message padded past the limit (leading spaces keep its meaning) is refused
    // by size, never parsed.
    let mut padded = vec![b' '; MAX_REQUEST_BYTES + 1 - data.len().min(MAX_REQUEST_BYTES)];
    padded.extend_from_slice(data);
    assert!(matches!(
        RefreshRequest::parse(&padded),
        Err(RequestRejected::TooLarge(n)) if n == padded.len()
    ));
});
