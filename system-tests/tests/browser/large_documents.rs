//! Issue 17: the same download with documents over 8 MiB, so Chromium decodes a delta
//! that `refresh-service` made at the large-document setting (level 12) in a window
//! larger than the 8 MiB every client must allow.
//!
//! The delta is one single-segment zstd frame, whose window is the new document's size
//! (RFC 8878 §3.1.1.1.2); Chromium takes windows up to
//! `clamp(ceil(log2(1.25 × dictionary)), 23, 27)`, here 2^24. Besides what the smaller
//! case proves (Chromium turned the delta into exactly the new document), this checks
//! that the delta it was sent — the same bytes a replica serves to the same request —
//! declares that larger window and that a decoder limited to 2^23 refuses it.

use std::io::Read as _;

use crate::{available_dictionary, delta_download};
use system_tests::Scratch;

/// Live offers seeded: the seed's offers take about 370 bytes each, so the documents are
/// about 9.3 MB (over 8 MiB, with room for the churn's ended offers).
const LIVE_OFFERS: u32 = 25_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_decodes_a_delta_to_a_document_over_8_mib_in_a_larger_window() {
    let started = std::time::Instant::now();
    let scratch = Scratch::new("browser-large");
    let (backend, first, second) = delta_download(&scratch, LIVE_OFFERS, None).await;

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let response = http
        .get(format!(
            "http://127.0.0.1:{}/api/v4/ofertasws",
            backend.replicas[0]
        ))
        .bearer_auth(&backend.token)
        .header("accept-encoding", "dcz")
        .header(
            "available-dictionary",
            available_dictionary(&first.json_sha256),
        )
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(response.headers()["content-encoding"], "dcz");
    let body = response.bytes().await.expect("the delta");
    let delta = second
        .deltas
        .iter()
        .find(|d| d.version == first.version)
        .expect("delta listed");
    assert_eq!(body.len() as u64, delta.dcz_bytes, "the delta Chromium got");

    let frame = &body[shared::delta::DCZ_HEADER_BYTES..];
    assert_ne!(
        frame[4] & 0x20,
        0,
        "a single segment: its window is its size"
    );
    let window = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .expect("the frame declares its size");
    assert!(
        window > 8 << 20,
        "the new document is {window} bytes: not over 8 MiB, so this proves nothing of the \
         larger window; seed more offers"
    );
    let mut within_8_mib = zstd::stream::read::Decoder::new(frame).expect("decoder");
    within_8_mib.window_log_max(23).expect("window limit");
    let refused = within_8_mib
        .read_to_end(&mut Vec::new())
        .expect_err("a decoder limited to 8 MiB windows read a frame of a larger one");
    assert!(
        refused.to_string().contains("too much memory"),
        "refused for another reason than its window: {refused}"
    );
    eprintln!(
        "browser test, large documents: a {window}-byte document from a {}-byte delta \
         (window log {}), {:?} in all",
        body.len(),
        shared::delta::window_log(window),
        started.elapsed()
    );
}
