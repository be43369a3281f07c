//! Test harness: an API on an ephemeral port over its own Redis prefix, tokens, and a
//! snapshot writer that goes through the shared store exactly as refresh-service does.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DurationRound, TimeDelta, Utc};
use fred::prelude::PubsubInterface;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use api_service::http::sealed::BodyFiles;
use api_service::settings::ApiSettings;
use api_service::snapshot::CurrentSnapshot;
use api_service::startup::Application;
use shared::config::RedisSettings;
use shared::events::{Event, SnapshotUpdated};
use shared::keys::Keys;
use shared::sha256::Sha256;
use shared::snapshot::{SnapshotMeta, hash_hex};
use shared::store::{Bodies, SnapshotStore};
pub use system_tests::{Proxy, TestPrefix, eventually, redis_url};

pub const SECRET: &str = "api-test-secret";

/// A running API.
pub struct TestApi {
    pub addr: SocketAddr,
    pub current: Arc<CurrentSnapshot>,
    pub files: Arc<BodyFiles>,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn settings(prefix: &str) -> ApiSettings {
    ApiSettings::for_secret(RedisSettings::new(redis_url(), prefix), SECRET)
}

pub async fn spawn_api(prefix: &str) -> TestApi {
    spawn_api_with(settings(prefix)).await
}

pub async fn spawn_api_with(settings: ApiSettings) -> TestApi {
    shared::telemetry::init_for_tests();
    let app = Application::build(settings).await.unwrap();
    let addr = app.addr();
    let current = app.parts().current.clone();
    let files = app.parts().files.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApi {
        addr,
        current,
        files,
        stop,
        task,
    }
}

/// An HTTP client that does not decompress, follow redirects or pool connections.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Status of an unauthenticated GET of `path`.
pub async fn get_status(api: &TestApi, path: &str) -> u16 {
    http()
        .get(api.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// JSON body of an unauthenticated GET of `path`.
pub async fn get_json(api: &TestApi, path: &str) -> Value {
    json_of(http().get(api.url(path))).await
}

/// `GET /api/v4/ofertasws/meta` with a user token, as JSON.
pub async fn get_meta(api: &TestApi) -> Value {
    json_of(
        http()
            .get(api.url("/api/v4/ofertasws/meta"))
            .header("authorization", bearer(&user_token())),
    )
    .await
}

/// The JSON body `request` gets.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The body of `response`, checked to be as long as its `Content-Length` says.
pub async fn sized_body(response: reqwest::Response) -> Bytes {
    let length: usize = response
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Content-Length");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    body
}

/// Text body of an unauthenticated GET of `path`.
pub async fn get_text(api: &TestApi, path: &str) -> String {
    http()
        .get(api.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// An HS256 token signed with [`SECRET`] carrying `claims`.
pub fn token(claims: Value) -> String {
    api_service::request::auth::mint(SECRET, &claims).unwrap()
}

pub fn user_token() -> String {
    token(json!({"sub": "app", "exp": now() + 600}))
}

pub fn admin_token() -> String {
    token(json!({"sub": "ops", "exp": now() + 600, "role": "admin"}))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Writes snapshots through the shared store, as refresh-service does.
pub struct Writer {
    pub store: SnapshotStore,
}

/// A written snapshot: its metadata and identity document.
pub struct Written {
    pub meta: SnapshotMeta,
    pub document: Vec<u8>,
}

fn compress(document: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(document).unwrap();
    (gz.finish().unwrap(), zstd::encode_all(document, 9).unwrap())
}

impl Writer {
    pub async fn new(prefix: &str) -> Self {
        let client = shared::redis::client(
            &RedisSettings::new(redis_url(), prefix),
            shared::redis::Start::FailFast,
        )
        .unwrap();
        shared::redis::connect(&client).await.unwrap();
        Self {
            store: SnapshotStore::new(client, Keys::new(prefix)),
        }
    }

    /// Builds a snapshot of `count` offers; `corrupt_gzip` stores a gzip body that does not
    /// match the metadata.
    pub async fn build(&self, count: u64) -> (SnapshotMeta, Bodies, Vec<u8>) {
        let seq = self.store.next_seq().await.unwrap();
        let generated_at = Utc::now()
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap();
        let content_hash = hash_hex(format!("{seq}:{count}").as_bytes());
        let version = SnapshotMeta::version_for(seq, &content_hash);
        let offers: Vec<Value> = (0..count)
            .map(|id| json!({"id": id, "merchant_id": 1, "merchant_name": "Super 99", "title": format!("Oferta {id}"),
                "description": null, "category": "Supermercados", "price": "1.50", "original_price": "2.00",
                "discount_pct": 25.0, "currency": "USD", "image_url": null, "starts_at": "2026-11-01T00:00:00Z",
                "ends_at": null, "score": 0.5}))
            .collect();
        let document = serde_json::to_vec(&json!({"version": version, "generated_at": shared::snapshot::format_millis(&generated_at),
            "count": count, "ofertas": offers})).unwrap();
        let (gzip, zstd) = compress(&document);
        let meta = SnapshotMeta {
            etag: SnapshotMeta::etag_for(&version),
            version,
            seq,
            count,
            generated_at,
            content_hash,
            json_bytes: document.len() as u64,
            gzip_bytes: gzip.len() as u64,
            zstd_bytes: zstd.len() as u64,
            json_hash: hash_hex(&document),
            json_sha256: Some(Sha256::of(&document)),
            gzip_hash: hash_hex(&gzip),
            zstd_hash: hash_hex(&zstd),
        };
        (
            meta,
            Bodies {
                gzip: Bytes::from(gzip),
                zstd: Bytes::from(zstd),
            },
            document,
        )
    }

    /// Writes a snapshot of `count` offers and makes it current; with `announce`, also
    /// publishes `snapshot.updated`.
    pub async fn publish(&self, count: u64, announce: bool) -> Written {
        let (meta, bodies, document) = self.build(count).await;
        self.store.publish(&meta, &bodies).await.unwrap();
        if announce {
            self.announce(&meta).await;
        }
        Written { meta, document }
    }

    pub async fn announce(&self, meta: &SnapshotMeta) {
        let event = Event::SnapshotUpdated(SnapshotUpdated::announcing(meta));
        let _: i64 = self
            .store
            .client()
            .publish(self.store.keys().events_channel(), event.to_json())
            .await
            .unwrap();
    }
}

/// A prefix with a snapshot of `count` offers and an API serving it.
pub async fn ready_api(count: u64) -> (TestPrefix, Writer, Written, TestApi) {
    ready_api_with(count, |_| {}).await
}

/// As [`ready_api`], with `configure` applied to the API's settings first.
pub async fn ready_api_with(
    count: u64,
    configure: impl FnOnce(&mut ApiSettings),
) -> (TestPrefix, Writer, Written, TestApi) {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(count, false).await;
    let mut settings = settings(&prefix.0);
    configure(&mut settings);
    let api = spawn_api_with(settings).await;
    wait_for_version(
        &api,
        &written.meta.version,
        std::time::Duration::from_secs(5),
    )
    .await;
    (prefix, writer, written, api)
}

/// Waits until `api` serves `version`.
pub async fn wait_for_version(api: &TestApi, version: &str, within: std::time::Duration) {
    eventually(within, &format!("the API to serve {version}"), || async {
        api.current.get().is_some_and(|s| s.meta.version == version)
    })
    .await;
}

/// Lowercase hex SHA-256 of `document`.
pub fn sha256_hex(document: &[u8]) -> String {
    Sha256::of(document).to_string()
}

/// `Available-Dictionary` naming `document`.
pub fn available_dictionary(document: &[u8]) -> String {
    use base64::Engine as _;
    let sha = Sha256::of(document);
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(sha.as_bytes())
    )
}

/// The document a dcz `body` decodes to with `dictionary`, in the largest window RFC 9842
/// lets a client allow (log 27, as the reference client does).
pub fn undcz(dictionary: &[u8], body: &[u8]) -> Vec<u8> {
    undcz_within(dictionary, body, *shared::delta::WINDOW_LOG.end())
        .expect("the delta decodes within the largest window RFC 9842 allows")
}

/// The document a dcz `body` decodes to with `dictionary` by a decoder that allows
/// windows of up to 2^`window_log_max` bytes: an error when the frame needs a larger one.
pub fn undcz_within(
    dictionary: &[u8],
    body: &[u8],
    window_log_max: u32,
) -> std::io::Result<Vec<u8>> {
    assert_eq!(
        shared::delta::dcz_dictionary(body),
        Some(Sha256::of(dictionary)),
        "the dcz header names the dictionary"
    );
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(
        &body[shared::delta::DCZ_HEADER_BYTES..],
        dictionary,
    )?;
    decoder.window_log_max(window_log_max)?;
    let mut document = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut document)?;
    Ok(document)
}

impl Writer {
    /// Stores deltas of `written` from each of `earlier` (their documents as dictionaries),
    /// made as refresh-service makes them ([`shared::delta::compress`]); a pair it would
    /// make no delta for fails the test.
    pub async fn publish_deltas(&self, written: &Written, earlier: &[&Written]) {
        let deltas: Vec<(shared::delta::Delta, Bytes)> = earlier
            .iter()
            .map(|base| {
                assert!(
                    shared::delta::allowed(base.meta.json_bytes, written.meta.json_bytes),
                    "refresh-service makes no delta of {} from {}",
                    written.meta.version,
                    base.meta.version
                );
                let body = shared::delta::compress(&base.document, &written.document).unwrap();
                let delta = shared::delta::Delta {
                    version: base.meta.version.clone(),
                    json_sha256: Sha256::of(&base.document),
                    dcz_bytes: body.len() as u64,
                    dcz_hash: hash_hex(&body),
                };
                (delta, Bytes::from(body))
            })
            .collect();
        assert!(
            self.store
                .publish_deltas(&written.meta.version, &deltas)
                .await
                .unwrap()
        );
    }
}

/// Offers in a [`Writer`] document of about 9.8 MB: over 8 MiB, so its deltas are made at
/// the large-document setting in a window larger than every client must allow.
pub const LARGE_DOCUMENT_OFFERS: u64 = 35_000;

/// Asserts that `body`, a delta from `dictionary`, decodes to `document` (over 8 MiB) in
/// the largest window RFC 9842 allows, and that a decoder limited to the 8 MiB every
/// client must allow refuses it for its window: the delta really uses the larger one.
pub fn assert_decoded_only_in_a_larger_window(dictionary: &[u8], body: &[u8], document: &[u8]) {
    assert!(
        document.len() > 8 << 20,
        "the document is {} bytes: not over 8 MiB, so this proves nothing of the larger window",
        document.len()
    );
    assert!(
        undcz(dictionary, body) == document,
        "the delta decodes to the document"
    );
    let refused = undcz_within(dictionary, body, *shared::delta::WINDOW_LOG.start())
        .map(|decoded| decoded.len())
        .expect_err("a decoder limited to 8 MiB windows decoded the delta (bytes decoded)");
    assert!(
        refused.to_string().contains("too much memory"),
        "refused for another reason than its window: {refused}"
    );
}
