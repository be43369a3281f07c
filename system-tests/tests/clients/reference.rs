//! The Rust reference client (`api-service/examples/delta_client.rs`, what the README's
//! protocol section walks through) against the real services: a full download, then,
//! after the churn model and a refresh, the delta `refresh-service` itself built (level
//! 19, long-distance matching), decoded to the server's exact document, then a 304.

use system_tests::Scratch;

use crate::stack::{ClientStack, DEMO_OFFERS};

#[allow(dead_code, unreachable_pub)]
#[path = "../../../api-service/examples/delta_client.rs"]
mod client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_client_decodes_the_refreshers_own_delta() {
    let scratch = Scratch::new("reference-client");
    let stack = ClientStack::start(&scratch, DEMO_OFFERS).await;
    let kept = scratch.join("kept");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let url = format!("{}/api/v4/ofertasws", stack.base);

    let first = stack.meta().await;
    let fetched = client::fetch(&http, &url, &stack.token, &kept)
        .await
        .unwrap();
    assert_eq!((fetched.status, fetched.encoding.as_str()), (200, "zstd"));
    assert_eq!(fetched.sha256, first.json_sha256);
    assert_eq!(fetched.transferred_bytes as u64, first.zstd_bytes);

    let second = stack.churn_and_refresh(&scratch, &first.version).await;
    let delta = second
        .deltas
        .iter()
        .find(|d| d.version == first.version)
        .expect("a delta from the kept version");
    let fetched = client::fetch(&http, &url, &stack.token, &kept)
        .await
        .unwrap();
    assert_eq!((fetched.status, fetched.encoding.as_str()), (200, "dcz"));
    assert_eq!(fetched.version, second.version);
    assert_eq!(
        fetched.sha256, second.json_sha256,
        "byte-identical to the server's document"
    );
    assert_eq!(fetched.transferred_bytes as u64, delta.dcz_bytes);
    assert!(
        delta.dcz_bytes * 10 <= second.zstd_bytes,
        "the delta ({} B) is more than a tenth of the zstd body ({} B)",
        delta.dcz_bytes,
        second.zstd_bytes
    );

    let again = client::fetch(&http, &url, &stack.token, &kept)
        .await
        .unwrap();
    assert_eq!((again.status, again.transferred_bytes), (304, 0));
    eprintln!(
        "reference client: first zstd {} B, after the churn dcz {} B, then a 304",
        first.zstd_bytes, delta.dcz_bytes
    );
}
