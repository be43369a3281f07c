//! JWT verification with keys and validation rules built once at start.
//!
//! HS256 tokens are checked against `JWT_SECRET`; RS256 or ES256 tokens against the PEM
//! in `JWT_PUBLIC_KEY_FILE`. The algorithm is pinned to the key type: a token naming any
//! other algorithm (including `none`, or HS256 when only a public key is configured) is
//! refused before its signature is looked at.
//!
//! A client repeats its token on every request until it expires, so tokens that verified
//! are remembered with their claims (keyed by the whole token, bounded by the memory they
//! take): a repeated token costs a hash lookup and an expiry check instead of parsing and
//! a signature check (HS256 a few microseconds, RS256 about 0.3 ms).

use std::collections::HashSet;
use std::sync::Arc;

use headers::authorization::Bearer;
use headers::{Authorization, HeaderMapExt};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use poem::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Serialize;
use thiserror::Error;

use shared::config::ConfigError;

use crate::settings::ApiSettings;

use crate::request::claims::Claims;

/// Longest token accepted; anything longer is refused without parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many verified tokens the cache's table is sized for.
const VERIFIED_ESTIMATE: usize = 10_000;

/// Memory the remembered tokens may take, as [`TokenWeight`] estimates it. A typical
/// app token (a few hundred bytes) weighs under 800 bytes, so [`VERIFIED_ESTIMATE`] of
/// them fit; tokens of [`MAX_TOKEN_BYTES`] are a thousand at most, where a bound by count
/// alone would have let 10,000 of them take 80 MB.
const VERIFIED_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes an entry takes besides its token's and its claims' heap memory: the key and
/// value themselves, the claims and their `Arc` counts, the cache's slot and allocator
/// rounding (about 64 bytes).
const ENTRY_OVERHEAD: usize =
    size_of::<String>() + size_of::<Verified>() + 2 * size_of::<usize>() + size_of::<Claims>() + 64;

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// Why a token was refused. The message is safe to return to the client.
#[derive(Debug, Error)]
pub enum AuthError {
    /// No bearer token was sent, or the `Authorization` header is not `Bearer <token>`.
    #[error("missing or malformed bearer token")]
    Missing,
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("token too long")]
    TooLong,
    /// The token names an algorithm no configured key accepts.
    #[error("token algorithm not accepted")]
    Algorithm,
    /// Signature, format or claims are invalid.
    #[error("invalid token: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// Verifies bearer tokens; built once from the settings.
pub struct Authenticator {
    hmac: Option<Verifier>,
    public: Option<Verifier>,
    verified: quick_cache::sync::Cache<String, Verified, TokenWeight>,
}

/// A remembered token's claims and the bytes its entry takes, computed once: the cache
/// weighs an entry whenever it looks for one to evict.
#[derive(Clone)]
struct Verified {
    claims: Arc<Claims>,
    bytes: u64,
}

/// Weighs remembered tokens by the memory they take, for [`VERIFIED_BYTES`].
#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<String, Verified> for TokenWeight {
    fn weight(&self, _token: &String, verified: &Verified) -> u64 {
        verified.bytes
    }
}

impl Authenticator {
    /// Builds the keys and validation rules from `JWT_*` settings.
    ///
    /// # Errors
    /// [`ConfigError`] when no key is configured or the public key file is unusable.
    pub fn from_settings(settings: &ApiSettings) -> Result<Self, ConfigError> {
        let rules = |alg| {
            let mut validation = Validation::new(alg);
            validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.leeway = LEEWAY_SECS;
            if let Some(iss) = &settings.jwt_issuer {
                validation.set_issuer(&[iss]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            match &settings.jwt_audience {
                Some(aud) => {
                    validation.set_audience(&[aud]);
                    validation.required_spec_claims.insert("aud".to_owned());
                }
                None => validation.validate_aud = false,
            }
            validation
        };
        let hmac = settings
            .jwt_secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty())
            .map(|secret| Verifier {
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                validation: rules(Algorithm::HS256),
            });
        let public = match &settings.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::new("JWT_PUBLIC_KEY_FILE", path.display().to_string(), e)
                })?;
                let (key, alg) = DecodingKey::from_rsa_pem(&pem)
                    .map(|k| (k, Algorithm::RS256))
                    .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| (k, Algorithm::ES256)))
                    .map_err(|_| {
                        ConfigError::new(
                            "JWT_PUBLIC_KEY_FILE",
                            path.display().to_string(),
                            "not an RSA or EC public key in PEM format",
                        )
                    })?;
                Some(Verifier {
                    key,
                    validation: rules(alg),
                })
            }
            None => None,
        };
        if hmac.is_none() && public.is_none() {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "",
                "is not set: the API needs JWT_SECRET or JWT_PUBLIC_KEY_FILE to verify tokens",
            ));
        }
        Ok(Self {
            hmac,
            public,
            verified: quick_cache::sync::Cache::with_weighter(
                VERIFIED_ESTIMATE,
                VERIFIED_BYTES,
                TokenWeight,
            ),
        })
    }

    /// The claims of the request's bearer token (`Authorization: Bearer <token>`): how
    /// every authenticated route, the snapshot route and the poem endpoints alike, reads
    /// and checks it.
    ///
    /// # Errors
    /// [`AuthError`] saying why the request is refused.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<Arc<Claims>, AuthError> {
        let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() else {
            return Err(AuthError::Missing);
        };
        self.verify(bearer.token())
    }

    /// Verifies `token` and returns its claims. A token that verified before is only
    /// checked for expiry again.
    ///
    /// # Errors
    /// [`AuthError`] saying why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        if let Some(verified) = self.verified.get(token) {
            if unexpired(&verified.claims) {
                return Ok(verified.claims);
            }
            self.verified.remove(token);
        }
        let claims = Arc::new(self.decode(token)?);
        let bytes = (ENTRY_OVERHEAD + token.len() + claims.heap_bytes()) as u64;
        let verified = Verified {
            claims: claims.clone(),
            bytes,
        };
        self.verified.insert(token.to_owned(), verified);
        Ok(claims)
    }

    /// Full verification: algorithm, signature, then claims.
    fn decode(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(AuthError::Invalid)?;
        let verifier = [&self.hmac, &self.public]
            .into_iter()
            .flatten()
            .find(|v| v.validation.algorithms.contains(&header.alg))
            .ok_or(AuthError::Algorithm)?;
        decode::<Claims>(token, &verifier.key, &verifier.validation)
            .map(|data| data.claims)
            .map_err(AuthError::Invalid)
    }
}

/// Whether `claims` are still within `exp` as jsonwebtoken judges it: expired once
/// `exp` is more than the leeway in the past.
fn unexpired(claims: &Claims) -> bool {
    let now = jsonwebtoken::get_current_timestamp();
    claims.exp >= now.saturating_sub(LEEWAY_SECS)
}

/// Signs an HS256 token with `secret` (the `api-service token` command and tests).
///
/// # Errors
/// When the claims cannot be serialised.
pub fn mint<C: Serialize>(secret: &str, claims: &C) -> Result<String, jsonwebtoken::errors::Error> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::claims::Role;

    fn settings() -> ApiSettings {
        ApiSettings::for_secret(
            shared::config::RedisSettings::new("redis://x", "p"),
            "s3cret",
        )
    }

    #[test]
    fn remembered_tokens_stay_within_their_byte_budget() {
        let auth = Authenticator::from_settings(&settings()).unwrap();
        let exp = (chrono::Utc::now().timestamp() + 60) as u64;
        let token = |sub: String| {
            let claims = Claims {
                exp,
                sub: Some(sub),
                ..Claims::default()
            };
            mint("s3cret", &claims).unwrap()
        };
        auth.verify(&token("app-7f3a".into())).unwrap();
        assert!(
            auth.verified.weight() < 800,
            "a typical token weighs what the budget assumes"
        );
        let filler = "x".repeat(MAX_TOKEN_BYTES * 3 / 4 - 200);
        let count = 2 * VERIFIED_BYTES as usize / MAX_TOKEN_BYTES;
        for n in 0..count {
            let large = token(format!("{n}{filler}"));
            assert!(large.len() <= MAX_TOKEN_BYTES, "{}", large.len());
            auth.verify(&large).unwrap();
        }
        assert!(auth.verified.weight() <= VERIFIED_BYTES);
        assert!(
            auth.verified.len() < count,
            "large tokens were evicted by weight"
        );
    }

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let auth = Authenticator::from_settings(&settings()).unwrap();
        let exp = (chrono::Utc::now().timestamp() + 60) as u64;
        let token = mint(
            "s3cret",
            &Claims {
                exp,
                role: Some(Role::Admin),
                ..Claims::default()
            },
        )
        .unwrap();
        assert!(auth.verify(&token).unwrap().can_refresh());
        let wrong = mint(
            "other",
            &Claims {
                exp,
                ..Claims::default()
            },
        )
        .unwrap();
        assert!(matches!(auth.verify(&wrong), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify(""), Err(AuthError::Missing)));
        assert!(matches!(
            auth.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthError::TooLong)
        ));
    }
}
