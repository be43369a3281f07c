//! Each snapshot body held once, in a sealed file; an identity document over
//! `API_IDENTITY_HOLD_MB` not held at all but decompressed while it is sent.

use std::time::Duration;

use crate::helpers::*;
use crate::serving::get;

fn content_length(response: &reqwest::Response) -> u64 {
    response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_body_is_held_once_and_the_previous_snapshot_is_let_go() {
    let (_prefix, writer, first, api) = ready_api(2_000).await;
    let meta = &first.meta;
    assert_eq!(
        api.files.held_bytes(),
        meta.json_bytes + meta.gzip_bytes + meta.zstd_bytes,
        "zstd, gzip and the identity document, each once"
    );
    let second = writer.publish(2_001, true).await;
    wait_for_version(&api, &second.meta.version, Duration::from_secs(5)).await;
    let meta = &second.meta;
    eventually(
        Duration::from_secs(5),
        "the first snapshot's bodies to go",
        || async { api.files.held_bytes() == meta.json_bytes + meta.gzip_bytes + meta.zstd_bytes },
    )
    .await;
    let health = get_json(&api, "/health").await;
    let charged = health["memory_bytes"].as_u64().unwrap();
    assert!(charged > api.files.held_bytes(), "{health}");
}

#[tokio::test]
async fn a_document_over_the_hold_limit_is_decompressed_while_it_is_sent() {
    let (_prefix, _writer, written, api) =
        ready_api_with(5_000, |settings| settings.identity_hold_mb = 0).await;
    let meta = &written.meta;
    assert_eq!(
        api.files.held_bytes(),
        meta.gzip_bytes + meta.zstd_bytes,
        "only the compressed bodies are held"
    );
    let identity = get(&api, &[("accept-encoding", "identity")]).await;
    assert_eq!(identity.status(), 200);
    assert_eq!(content_length(&identity), meta.json_bytes);
    assert!(identity.headers().get("content-encoding").is_none());
    let body = identity.bytes().await.unwrap();
    assert!(body == written.document, "the sent document differs");

    let head = http()
        .head(api.url("/api/v4/ofertasws"))
        .header("authorization", bearer(&user_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(content_length(&head), meta.json_bytes);

    let zstd = get(&api, &[("accept-encoding", "zstd")]).await;
    assert_eq!(zstd.headers()["content-encoding"], "zstd");
    let body = zstd.bytes().await.unwrap();
    assert_eq!(zstd::decode_all(&body[..]).unwrap(), written.document);
}
