//! The `Available-Dictionary` parser
//! (`api_service::request::negotiate::available_dictionary`), fed any bytes a client
//! could send as one or two header values: it never panics, and it accepts a value only
//! when that value is exactly one RFC 8941 byte sequence (`:`, padded standard base64 of
//! 32 bytes, `:`, blanks around it allowed) and the header is not repeated — checked
//! against an encoding of what it returned.
#![no_main]

use api_service::request::negotiate::{AVAILABLE_DICTIONARY, available_dictionary};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use poem::http::{HeaderMap, HeaderValue};

fuzz_target!(|input: (&[u8], Option<&[u8]>)| {
    let (first, second) = input;
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_bytes(first) else {
        return;
    };
    headers.append(AVAILABLE_DICTIONARY, value);
    if let Some(second) = second {
        let Ok(value) = HeaderValue::from_bytes(second) else {
            return;
        };
        headers.append(AVAILABLE_DICTIONARY, value);
    }
    if let Some(sha) = available_dictionary(&headers) {
        assert!(second.is_none(), "a repeated header was read");
        let encoded = base64::engine::general_purpose::STANDARD.encode(sha.as_bytes());
        let text = std::str::from_utf8(first).unwrap_or_default();
        assert_eq!(text.trim_matches(' '), format!(":{encoded}:"), "{first:?}");
    }
});
