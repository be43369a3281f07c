//! The `Authorization` header as the API reads it: the `headers` crate's
//! `Authorization<Bearer>`, through poem-openapi's `Bearer` extractor (the `BearerAuth`
//! security scheme of the poem endpoints, `api_service::request::bearer`;
//! `api_service::endpoints::snapshot_route` reads the same typed header), and
//! `api_service::request::auth::Authenticator::verify` with its cache of verified tokens
//! (a token verified twice below is a cache hit the second time when it passed).
//!
//! The input's first byte picks the mode, so seed files stay readable text:
//! - `0` + bytes: a raw `Authorization` header value. Whatever it is, the extracted token
//!   is the value after `Bearer ` and verification never succeeds (nobody can forge an
//!   HS256 signature by chance).
//! - `1` + JOSE header JSON + `\n` + claims JSON: a token signed with the API's key. If it
//!   verifies, the header says HS256, `exp` is a number not in the past and `nbf`, when
//!   given, not in the future (30 s leeway).
//! - `2` + the same: signed with another key; never verifies.
#![no_main]

use std::sync::LazyLock;

use api_service::request::auth::Authenticator;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use poem::Request;
use poem::http::HeaderValue;
use poem::http::header::AUTHORIZATION;
use poem_openapi::auth::{Bearer, BearerAuthorization};
use serde::Deserialize;
use serde_json::Value;
use api_service::settings::ApiSettings;
use shared::config::RedisSettings;

const SECRET: &str = "fuzz-secret";
const LEEWAY_SECS: f64 = 30.0;

static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    let settings = ApiSettings::for_secret(RedisSettings::new("redis://unused", "fuzz"), SECRET);
    Authenticator::from_settings(&settings).expect("an HS256 key")
});

/// What the API would extract from the header: `None` when the request is refused before
/// verification (no or malformed `Authorization: Bearer`).
fn extract(value: &HeaderValue) -> Option<String> {
    let request = Request::builder()
        .header(AUTHORIZATION, value.clone())
        .finish();
    let token = <Bearer as BearerAuthorization>::from_request(&request)
        .ok()?
        .token;
    let text = value
        .to_str()
        .expect("an extracted token comes from a visible-ASCII header");
    assert!(
        text.len() >= 7 && text[..7].eq_ignore_ascii_case("bearer "),
        "token extracted from {text:?}"
    );
    assert_eq!(
        token,
        text[7..].trim_start(),
        "token extracted from {text:?}"
    );
    Some(token)
}

fn sign(header: &[u8], claims: &[u8], secret: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HS256 signing");
    format!("{message}.{signature}")
}

/// The header member the verdict depends on.
#[derive(Deserialize)]
struct AlgOnly {
    alg: String,
}

/// The time claims the verdict depends on.
#[derive(Deserialize)]
struct Times {
    exp: Option<Value>,
    nbf: Option<Value>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(value) = HeaderValue::from_bytes(rest)
                && let Some(token) = extract(&value)
            {
                assert!(
                    AUTH.verify(&token).is_err(),
                    "forged token accepted: {token:?}"
                );
            }
            if let Ok(text) = std::str::from_utf8(rest) {
                assert!(
                    AUTH.verify(text).is_err(),
                    "forged token accepted: {text:?}"
                );
            }
        }
        signed => {
            let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            let ours = signed == 1;
            let token = sign(header, claims, if ours { SECRET } else { "another-secret" });
            let verdict = AUTH.verify(&token);
            // The same token through the header gives the same verdict.
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII token");
            let extracted = extract(&value).expect("a well-formed bearer header");
            assert_eq!(extracted, token);
            assert_eq!(AUTH.verify(&extracted).is_ok(), verdict.is_ok());
            let Ok(_) = verdict else { return };
            assert!(ours, "token signed with another key accepted: {token}");
            // Read as jsonwebtoken reads them: members it does not know are skipped
            // unchecked (invalid UTF-8, numbers out of range), so only these must parse.
            let header: AlgOnly = serde_json::from_slice(header).expect("accepted header parses");
            assert_eq!(header.alg, "HS256", "accepted algorithm");
            let claims: Times = serde_json::from_slice(claims).expect("accepted claims parse");
            let now = chrono::Utc::now().timestamp() as f64;
            let exp = claims.exp.as_ref().and_then(Value::as_f64);
            let exp = exp.expect("accepted claims have a numeric exp");
            assert!(
                exp + LEEWAY_SECS + 1.0 >= now,
                "expired token accepted: exp {exp}"
            );
            if let Some(nbf) = claims.nbf {
                let nbf = nbf.as_f64().expect("accepted claims have a numeric nbf");
                assert!(
                    nbf - LEEWAY_SECS - 1.0 <= now,
                    "premature token accepted: nbf {nbf}"
                );
            }
        }
    }
});
