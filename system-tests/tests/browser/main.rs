//! The browser test of issue 12: a real browser downloads a refresh as an RFC 9842 delta.
//!
//! Headless Chromium (Debian's `chromium-headless-shell`) loads a page from an nginx that
//! runs the documented load balancer (`deploy/nginx.conf`) proxying `/api/` to two real
//! `api-service` replicas fed
//! by the real `refresh-service once` from a database of the test's own. The page fetches
//! the snapshot; once Chromium offers that response as a dictionary (nginx logs its
//! `Available-Dictionary`), the churn model (`scripts/churn.sql`) changes the offers and a
//! second `refresh-service once` publishes a new version with its deltas. The page fetches
//! again and this proves, from nginx's log and from what the page read:
//! - Chromium named the first document (`:base64(SHA-256):`) and accepted `dcz`;
//! - the replica answered `Content-Encoding: dcz` and nginx passed it on untouched;
//! - Chromium's own decoder turned it into exactly the new document: the bytes the page
//!   read hash to the `json_sha256` both replicas report, and its version and count are
//!   theirs.
//!
//! `large_documents` does the same with documents over 8 MiB (a delta in a larger window);
//! `side_by_side` has the Android and the Rust clients fetch the same versions through the
//! same nginx, and prints the bytes of each client's calls.
//!
//! Needs `chromium-headless-shell` and `nginx` (`scripts/browser.sh` installs both; so does
//! `scripts/test.sh`), a JDK with Debian's OkHttp and zstd-jni jars for `side_by_side`
//! (`scripts/java.sh`), `psql`, PostgreSQL and Redis as the other tests use them, and the
//! ONNX Runtime library of `scripts/onnxruntime.sh`. On failure the scratch folder with
//! every log (nginx's access log, the services', Chromium's stderr and net-log) is kept
//! and named. Run alone: `cargo test -p system-tests --test browser`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod chromium;
mod large_documents;
mod side_by_side;

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;

use backend::{Backend, Meta, STEP_DEADLINE};
use chromium::{Page, SNAPSHOT_PATH};
use side_by_side::SideBySide;
use system_tests::Scratch;
use system_tests::nginx::Nginx;

/// Half a day of changes to the offers (issue 12's churn model).
const CHURN: &str = "scripts/churn.sql";

/// Live offers seeded: enough for a realistic delta, small enough to refresh in a second.
const LIVE_OFFERS: u32 = 1500;

/// `Available-Dictionary` naming the document whose SHA-256 is `hex`.
fn available_dictionary(hex: &str) -> String {
    let digest = hex::decode(hex).expect("json_sha256 is hex");
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The page read exactly the document `meta` describes.
fn assert_document(report: &HashMap<String, String>, meta: &Meta, what: &str) {
    assert_eq!(report.get("error"), None, "{what}: the page's fetch failed");
    let field = |name: &str| report.get(name).map(String::as_str).unwrap_or_default();
    let count = meta.count.to_string();
    assert_eq!(field("status"), "200", "{what}: status the page saw");
    assert_eq!(field("version"), meta.version, "{what}: version");
    assert_eq!(field("count"), count, "{what}: count");
    assert_eq!(field("offers"), count, "{what}: length of ofertas");
    assert_eq!(
        field("sha256"),
        meta.json_sha256,
        "{what}: SHA-256 of the bytes Chromium handed the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_downloads_a_refresh_as_a_dcz_delta_and_decodes_it() {
    delta_download(&Scratch::new("browser"), LIVE_OFFERS, None).await;
}

/// The download this suite proves (module docs), from a database of `live` live offers,
/// with `others` (the app clients) fetching the same versions through the same nginx when
/// given; returns the back end, still serving, and the metadata of the first and second
/// version.
async fn delta_download(
    scratch: &Scratch,
    live: u32,
    mut others: Option<&mut SideBySide>,
) -> (Backend, Meta, Meta) {
    let mut backend = Backend::seeded(scratch, live).await;
    backend.refresh_once(&scratch.join("refresh-1.log")).await;
    backend.start_replicas(scratch, 2).await;
    let first = backend
        .meta_everywhere("both replicas to serve the first version", |_| true)
        .await;
    let mut page = Page::new(scratch, &backend.token);
    let nginx = Nginx::start(scratch, page.www(), &backend.replicas).await;
    let _chromium = chromium::start(scratch, &format!("http://127.0.0.1:{}/", nginx.port));

    // A first visit: no dictionary yet, the best plain encoding.
    let (request, report) = page.fetch(&nginx, "default").await;
    assert_eq!(request.status, "200", "first fetch: {request:?}");
    assert!(
        request.available_dictionary.is_empty(),
        "first fetch: {request:?}"
    );
    assert_eq!(request.content_encoding, "zstd", "first fetch: {request:?}");
    assert_document(&report, &first, "first fetch");
    let zstd_bytes = request.bytes;

    // Registration is asynchronous: revalidate until Chromium offers the document.
    let dictionary = available_dictionary(&first.json_sha256);
    let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
    let offered = loop {
        let (request, report) = page.fetch(&nginx, "no-cache").await;
        assert_document(&report, &first, "revalidation");
        if !request.available_dictionary.is_empty() {
            break request;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Chromium did not offer the first response as a dictionary within {STEP_DEADLINE:?}; \
             last revalidation: {request:?}"
        );
    };
    assert_eq!(offered.available_dictionary, dictionary, "{offered:?}");
    assert!(
        offered
            .accept_encoding
            .split(',')
            .any(|c| c.trim() == "dcz"),
        "Chromium offered a dictionary without accepting dcz: {offered:?}"
    );
    // Chromium revalidates and names its dictionary at once; a matching ETag wins.
    assert!(!offered.if_none_match.is_empty(), "{offered:?}");
    assert_eq!(offered.status, "304", "{offered:?}");
    if let Some(others) = others.as_deref_mut() {
        others
            .at_first_version(scratch, &backend.token, nginx.port, &first)
            .await;
    }

    // Half a day of churn, a refresh, and both replicas serving the delta from the first.
    system_tests::database::psql(&backend.db.url, CHURN, &[], &scratch.join("churn.log")).await;
    backend.refresh_once(&scratch.join("refresh-2.log")).await;
    let second = backend
        .meta_everywhere(
            "both replicas to serve the second version with a delta from the first",
            |meta| {
                meta.version != first.version
                    && meta
                        .deltas
                        .iter()
                        .any(|d| d.version == first.version && d.json_sha256 == first.json_sha256)
            },
        )
        .await;
    assert_ne!(second.json_sha256, first.json_sha256);

    // The returning visit: Chromium gets dcz and decodes it itself.
    let (request, report) = page.fetch(&nginx, "no-cache").await;
    assert_eq!(request.available_dictionary, dictionary, "{request:?}");
    assert_eq!(request.status, "200", "{request:?}");
    assert_eq!(
        request.upstream_content_encoding, "dcz",
        "the replica did not answer with a delta: {request:?}"
    );
    assert_eq!(
        request.content_encoding, "dcz",
        "nginx changed the encoding: {request:?}"
    );
    assert_document(&report, &second, "fetch after the refresh");
    assert_eq!(
        report.get("encoding").map(String::as_str),
        Some("dcz"),
        "the Content-Encoding the page saw: {report:?}"
    );
    let delta = second
        .deltas
        .iter()
        .find(|d| d.version == first.version)
        .expect("delta listed");
    assert_eq!(request.bytes, delta.dcz_bytes.to_string(), "{request:?}");
    if let Some(others) = others {
        let bytes = |access: &system_tests::nginx::Access| access.bytes.parse().unwrap_or(0);
        let chromium = [
            zstd_bytes.parse().unwrap_or(0),
            bytes(&offered),
            bytes(&request),
        ];
        others
            .at_second_version(scratch, &backend.token, nginx.port, &second, chromium)
            .await;
    }

    // Both replicas took part, and neither fell over.
    let upstreams: BTreeSet<String> = nginx
        .entries()
        .into_iter()
        .filter(|access| access.uri == SNAPSHOT_PATH)
        .map(|access| access.upstream)
        .collect();
    let replicas: BTreeSet<String> = backend
        .replicas
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    assert_eq!(
        upstreams, replicas,
        "nginx should balance over both replicas"
    );
    assert!(backend.replicas_alive(), "an API replica exited");
    eprintln!(
        "browser test: {} offers; first download zstd {zstd_bytes} bytes, after the refresh \
         dcz {} bytes; Chromium offered the dictionary after {} revalidation(s)",
        second.count,
        request.bytes,
        page.steps() - 2,
    );
    (backend, first, second)
}
