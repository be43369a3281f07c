//! The reference client (`examples/delta_client.rs`) against a live API across a refresh:
//! it ends with the exact new document, having downloaded a delta (made as refresh-service
//! makes it) smaller than the zstd body, and then revalidates to a 304 — also for a
//! document over 8 MiB, whose delta needs the larger window the client allows.

use std::time::Duration;

use crate::helpers::*;

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/delta_client.rs"]
mod client;

#[tokio::test]
async fn the_reference_client_follows_a_refresh_with_a_delta() {
    follow_a_refresh(500).await;
}

#[tokio::test]
async fn the_reference_client_decodes_a_delta_to_a_document_over_8_mib() {
    let started = std::time::Instant::now();
    let (_prefix, writer, first, second) = follow_a_refresh(LARGE_DOCUMENT_OFFERS).await;
    let version = &second.meta.version;
    let delta = writer
        .store
        .deltas(version)
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    let mut body = Vec::new();
    writer
        .store
        .copy_delta(version, &delta, &mut body)
        .await
        .unwrap();
    assert_decoded_only_in_a_larger_window(&first.document, &body, &second.document);
    eprintln!(
        "reference client, {}-byte document: {:?}",
        second.document.len(),
        started.elapsed()
    );
}

/// The reference client across a refresh from `offers` to `offers + 1` offers: a whole
/// document first, the new one as a delta (the one delta served), then a 304. Returns the
/// prefix (its keys go with it), its writer and both documents.
async fn follow_a_refresh(offers: u64) -> (TestPrefix, Writer, Written, Written) {
    let (prefix, writer, first, api) = ready_api(offers).await;
    let dir = tempdir();
    let http = reqwest::Client::new();
    let url = api.url("/api/v4/ofertasws");
    let token = user_token();

    let fetched = client::fetch(&http, &url, &token, &dir).await.unwrap();
    assert_eq!((fetched.status, fetched.encoding.as_str()), (200, "zstd"));
    assert_eq!(fetched.version, first.meta.version);
    assert!(
        std::fs::read(dir.join("document.json")).unwrap() == first.document,
        "the kept document is the first one, exactly"
    );

    let second = writer.publish(offers + 1, false).await;
    writer.publish_deltas(&second, &[&first]).await;
    writer.announce(&second.meta).await;
    eventually(
        Duration::from_secs(10),
        "the delta to be served",
        || async {
            api.current
                .get()
                .is_some_and(|s| s.meta.version == second.meta.version && !s.deltas.is_empty())
        },
    )
    .await;

    let fetched = client::fetch(&http, &url, &token, &dir).await.unwrap();
    assert_eq!((fetched.status, fetched.encoding.as_str()), (200, "dcz"));
    assert_eq!(fetched.version, second.meta.version);
    assert_eq!(fetched.sha256, sha256_hex(&second.document));
    assert!(
        std::fs::read(dir.join("document.json")).unwrap() == second.document,
        "the kept document is the new one, exactly"
    );
    assert!(
        (fetched.transferred_bytes as u64) < second.meta.zstd_bytes,
        "{} bytes transferred, the zstd body is {}",
        fetched.transferred_bytes,
        second.meta.zstd_bytes
    );

    let again = client::fetch(&http, &url, &token, &dir).await.unwrap();
    assert_eq!((again.status, again.transferred_bytes), (304, 0));
    assert_eq!(again.version, second.meta.version);
    let _ = std::fs::remove_dir_all(&dir);
    (prefix, writer, first, second)
}

/// A fresh folder under the system temp dir.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ofertasws-client-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_dcz_body_for_another_dictionary_is_refused() {
    let kept = client::Kept {
        document: b"{\"version\":\"1-a\"}".to_vec(),
        etag: "\"1-a\"".to_owned(),
    };
    let body = shared::delta::compress(b"another document", b"{\"version\":\"2-b\"}").unwrap();
    let error = client::decode("dcz", &body, Some(&kept)).unwrap_err();
    assert!(error.to_string().contains("another dictionary"), "{error}");
    assert!(
        client::verify(
            b"{\"version\":\"2-b\",\"count\":0,\"ofertas\":[]}",
            "\"1-a-zstd\"",
            None
        )
        .is_err()
    );
    assert_eq!(
        client::verify(
            b"{\"version\":\"2-b\",\"count\":0,\"ofertas\":[]}",
            "\"2-b-dcz-1-a\"",
            Some("0")
        )
        .unwrap(),
        "2-b"
    );
}
