//! The JWT attack matrix: every refused token gets 401, the JSON body and
//! `WWW-Authenticate`; nothing yields a 5xx.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::*;

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const RSA_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/keys/rsa_public.pem");
const EC_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/keys/ec_public.pem");

fn rs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap()
}

fn es256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::ES256),
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token correctly signed with the API's secret over the payload text `claims`
/// exactly as given (so it can say things a JSON value cannot, like a key twice).
fn signed_raw_token(claims: &str) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.as_bytes())
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{input}.{signature}")
}

/// A token with an arbitrary header and payload and a given signature part.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

async fn status_of(api: &TestApi, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = http().get(api.url("/api/v4/ofertasws"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

async fn assert_refused(api: &TestApi, authorization: Option<&str>, case: &str) {
    let (status, challenge, body) = status_of(api, authorization).await;
    assert_eq!(status, 401, "{case}");
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{case}: WWW-Authenticate"
    );
    assert_eq!(body["error"], "unauthorized", "{case}: {body}");
    assert!(body["message"].is_string(), "{case}");
}

#[tokio::test]
async fn hs256_attack_matrix() {
    let prefix = TestPrefix::new();
    Writer::new(&prefix.0).await.publish(3, false).await;
    let api = spawn_api(&prefix.0).await;
    eventually(std::time::Duration::from_secs(5), "a snapshot", || async {
        api.current.get().is_some()
    })
    .await;

    let (status, _, _) = status_of(&api, Some(&bearer(&user_token()))).await;
    assert_eq!(status, 200, "a valid token is accepted");

    let exp = now() + 600;
    let wrong_secret =
        api_service::request::auth::mint("not-the-secret", &json!({"exp": exp})).unwrap();
    let valid = user_token();
    let (h, signature) = (
        valid.split('.').next().unwrap(),
        valid.split('.').nth(2).unwrap(),
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("wrong scheme", Some(format!("Basic {}", user_token()))),
        ("garbage", Some(bearer("garbage"))),
        ("three garbage parts", Some(bearer("a.b.c"))),
        ("non-ascii", Some("Bearer ñandú.🦀.x".into())),
        (
            "expired",
            Some(bearer(&token(json!({"exp": now() - 3600})))),
        ),
        ("no exp", Some(bearer(&token(json!({"sub": "x"}))))),
        (
            "not yet valid",
            Some(bearer(&token(json!({"exp": exp, "nbf": now() + 3600})))),
        ),
        ("wrong signature", Some(bearer(&wrong_secret))),
        (
            "tampered payload",
            Some(bearer(&format!(
                "{h}.{}.{}",
                b64(br#"{"exp":9999999999,"role":"admin"}"#),
                signature
            ))),
        ),
        (
            "alg none",
            Some(bearer(&raw_token(
                &json!({"alg": "none", "typ": "JWT"}),
                &json!({"exp": exp}),
                "",
            ))),
        ),
        (
            "alg none with signature",
            Some(bearer(&raw_token(
                &json!({"alg": "none"}),
                &json!({"exp": exp}),
                "x",
            ))),
        ),
        (
            "RS256 token against an HS256 key",
            Some(bearer(&rs256(&json!({"exp": exp})))),
        ),
        (
            "ES256 token against an HS256 key",
            Some(bearer(&es256(&json!({"exp": exp})))),
        ),
        (
            "10 KB token",
            Some(bearer(&format!("{h}.{}.{}", "A".repeat(10 * 1024), "x"))),
        ),
        (
            "trailing garbage",
            Some(bearer(&format!("{}.extra", user_token()))),
        ),
        (
            "exp as string",
            Some(bearer(&token(json!({"exp": "tomorrow"})))),
        ),
        (
            "payload not JSON",
            Some(bearer(&format!("{h}.{}.sig", b64(b"not json")))),
        ),
        ("huge exp", Some(bearer(&token(json!({"exp": 1e300}))))),
        (
            "duplicated exp (expired, then valid)",
            Some(bearer(&signed_raw_token(&format!(
                r#"{{"sub":"app","exp":1,"exp":{exp}}}"#
            )))),
        ),
        (
            "duplicated role (user, then admin)",
            Some(bearer(&signed_raw_token(&format!(
                r#"{{"sub":"app","role":"user","role":"admin","exp":{exp}}}"#
            )))),
        ),
        (
            "duplicated sub",
            Some(bearer(&signed_raw_token(&format!(
                r#"{{"sub":"app","sub":"ops","exp":{exp}}}"#
            )))),
        ),
        (
            "kid injection",
            Some(bearer(&raw_token(
                &json!({"alg": "HS256", "kid": "../../dev/null"}),
                &json!({"exp": exp}),
                "AAAA",
            ))),
        ),
    ];
    for (case, authorization) in cases {
        assert_refused(&api, authorization.as_deref(), case).await;
    }
}

#[tokio::test]
async fn public_keys_pin_the_algorithm_and_issuer_and_audience_are_enforced() {
    let prefix = TestPrefix::new();
    Writer::new(&prefix.0).await.publish(3, false).await;
    let mut rsa = settings(&prefix.0);
    rsa.jwt_secret = None;
    rsa.jwt_public_key_file = Some(RSA_PUBLIC.into());
    rsa.jwt_issuer = Some("https://auth.ofertas.pa".into());
    rsa.jwt_audience = Some("ofertas-app".into());
    let api = spawn_api_with(rsa).await;
    eventually(std::time::Duration::from_secs(5), "a snapshot", || async {
        api.current.get().is_some()
    })
    .await;

    let exp = now() + 600;
    let good = json!({"exp": exp, "iss": "https://auth.ofertas.pa", "aud": "ofertas-app"});
    assert_eq!(status_of(&api, Some(&bearer(&rs256(&good)))).await.0, 200);
    for (case, token) in [
        ("HS256 token against an RS256 key", token(good.clone())),
        (
            "RS256 public key used as an HS256 secret",
            api_service::request::auth::mint(&std::fs::read_to_string(RSA_PUBLIC).unwrap(), &good)
                .unwrap(),
        ),
        ("ES256 token against an RSA key", es256(&good)),
        (
            "wrong issuer",
            rs256(&json!({"exp": exp, "iss": "https://evil.example", "aud": "ofertas-app"})),
        ),
        (
            "missing issuer",
            rs256(&json!({"exp": exp, "aud": "ofertas-app"})),
        ),
        (
            "wrong audience",
            rs256(&json!({"exp": exp, "iss": "https://auth.ofertas.pa", "aud": "other"})),
        ),
        (
            "missing audience",
            rs256(&json!({"exp": exp, "iss": "https://auth.ofertas.pa"})),
        ),
        (
            "expired RS256",
            rs256(
                &json!({"exp": now() - 3600, "iss": "https://auth.ofertas.pa", "aud": "ofertas-app"}),
            ),
        ),
    ] {
        assert_refused(&api, Some(&bearer(&token)), case).await;
    }

    let mut ec = settings(&prefix.0);
    ec.jwt_secret = None;
    ec.jwt_public_key_file = Some(EC_PUBLIC.into());
    let api = spawn_api_with(ec).await;
    eventually(std::time::Duration::from_secs(5), "a snapshot", || async {
        api.current.get().is_some()
    })
    .await;
    assert_eq!(
        status_of(&api, Some(&bearer(&es256(&json!({"exp": exp})))))
            .await
            .0,
        200
    );
    assert_refused(
        &api,
        Some(&bearer(&rs256(&json!({"exp": exp})))),
        "RS256 against an EC key",
    )
    .await;
    assert_refused(
        &api,
        Some(&bearer(&token(json!({"exp": exp})))),
        "HS256 against an EC key",
    )
    .await;
}

#[tokio::test]
async fn refresh_needs_the_admin_role_or_the_refresh_scope() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    let post = |token: String| {
        http()
            .post(api.url("/api/v4/ofertasws/refresh?wait=false"))
            .header("authorization", bearer(&token))
            .send()
    };
    let response = post(user_token()).await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "forbidden"
    );
    let response = post(token(
        json!({"exp": now() + 60, "role": "viewer", "scope": "ofertas:read"}),
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // Allowed, but nobody listens on the refresh channel.
    for allowed in [
        admin_token(),
        token(json!({"exp": now() + 60, "scope": "ofertas:read ofertas:refresh"})),
    ] {
        let response = post(allowed).await.unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "no_refresher"
        );
    }
    let response = http()
        .post(api.url("/api/v4/ofertasws/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}
