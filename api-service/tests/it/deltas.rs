//! Delta downloads (RFC 9842 `dcz`) as the contract's "Delta downloads" section says:
//! a client naming an earlier document in `Available-Dictionary` gets the new one as a
//! delta, by q-value, with an ETag of its own; anything else about the dictionary is
//! ignored; a corrupt delta is refused alone.

use std::time::Duration;

use reqwest::Response;

use crate::helpers::*;

/// Three versions, the last with deltas from the first two, and an API serving it with
/// them.
async fn api_with_deltas() -> (TestPrefix, Writer, [Written; 3], TestApi) {
    let (prefix, writer, first, api) = ready_api(300).await;
    let second = writer.publish(301, false).await;
    let third = writer.publish(302, false).await;
    writer.publish_deltas(&third, &[&first, &second]).await;
    writer.announce(&third.meta).await;
    wait_for_deltas(&api, &third.meta.version, 2).await;
    (prefix, writer, [first, second, third], api)
}

async fn wait_for_deltas(api: &TestApi, version: &str, count: usize) {
    eventually(
        Duration::from_secs(10),
        "the deltas to be served",
        || async {
            api.current
                .get()
                .is_some_and(|s| s.meta.version == version && s.deltas.len() == count)
        },
    )
    .await;
}

async fn request(api: &TestApi, method: reqwest::Method, headers: &[(&str, &str)]) -> Response {
    let mut request = http()
        .request(method, api.url("/api/v4/ofertasws"))
        .header("authorization", bearer(&user_token()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn get(api: &TestApi, headers: &[(&str, &str)]) -> Response {
    request(api, reqwest::Method::GET, headers).await
}

fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_returning_client_gets_the_delta_from_the_document_it_holds() {
    let (_prefix, _writer, [first, second, third], api) = api_with_deltas().await;
    let mut etags = Vec::new();
    for base in [&first, &second] {
        let dictionary = available_dictionary(&base.document);
        let response = get(
            &api,
            &[
                ("accept-encoding", "dcz, zstd, gzip"),
                ("available-dictionary", &dictionary),
            ],
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-encoding"), Some("dcz"));
        assert_eq!(
            header(&response, "vary"),
            Some("Accept-Encoding, Available-Dictionary")
        );
        assert_eq!(
            header(&response, "use-as-dictionary"),
            Some("match=\"/api/v4/ofertasws\"")
        );
        let etag = header(&response, "etag").unwrap().to_owned();
        assert!(!etag.starts_with("W/"), "a strong ETag: {etag}");
        etags.push(etag);
        let body = sized_body(response).await;
        assert_eq!(body[..8], [0x5E, 0x2A, 0x4D, 0x18, 0x20, 0x00, 0x00, 0x00]);
        assert!(
            undcz(&base.document, &body) == third.document,
            "the delta decodes to the current document"
        );
        assert!(body.len() < third.meta.zstd_bytes as usize);
    }
    let plain = get(&api, &[("accept-encoding", "zstd")]).await;
    let zstd_etag = header(&plain, "etag").unwrap().to_owned();
    assert_ne!(
        etags[0], etags[1],
        "each delta is a representation of its own"
    );
    assert!(!etags.contains(&zstd_etag));

    let meta = get_meta(&api).await;
    let listed: Vec<(&str, &str)> = meta["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["version"].as_str().unwrap(),
                d["json_sha256"].as_str().unwrap(),
            )
        })
        .collect();
    let first_sha = sha256_hex(&first.document);
    assert!(
        listed.contains(&(first.meta.version.as_str(), first_sha.as_str())),
        "{meta}"
    );
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn if_none_match_wins_over_a_dictionary_and_matches_the_delta_etag() {
    let (_prefix, _writer, [first, _, third], api) = api_with_deltas().await;
    let dictionary = available_dictionary(&first.document);
    let delta = get(
        &api,
        &[
            ("accept-encoding", "dcz"),
            ("available-dictionary", &dictionary),
        ],
    )
    .await;
    let delta_etag = header(&delta, "etag").unwrap().to_owned();
    let zstd_etag = format!("\"{}-zstd\"", third.meta.version);
    for if_none_match in [delta_etag.as_str(), zstd_etag.as_str(), "*"] {
        let response = get(
            &api,
            &[
                ("accept-encoding", "dcz, zstd"),
                ("available-dictionary", &dictionary),
                ("if-none-match", if_none_match),
            ],
        )
        .await;
        assert_eq!(response.status(), 304, "{if_none_match}");
        assert_eq!(
            header(&response, "vary"),
            Some("Accept-Encoding, Available-Dictionary")
        );
        assert_eq!(header(&response, "etag"), Some(delta_etag.as_str()));
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // A client holding the delta of an older snapshot gets the new delta.
    let stale = get(
        &api,
        &[
            ("accept-encoding", "dcz"),
            ("available-dictionary", &dictionary),
            ("if-none-match", "\"1-old-dcz-0-older\""),
        ],
    )
    .await;
    assert_eq!(stale.status(), 200);
    assert_eq!(header(&stale, "content-encoding"), Some("dcz"));
}

#[tokio::test]
async fn dcz_is_chosen_by_q_value_and_any_other_dictionary_gets_the_best_whole_encoding() {
    let (_prefix, writer, [first, second, third], api) = api_with_deltas().await;
    let dictionary = available_dictionary(&first.document);
    let by_q = [
        ("dcz;q=0, zstd, gzip", Some("zstd")),
        ("dcz;q=0.5, zstd", Some("zstd")),
        ("dcz, zstd;q=0.5", Some("dcz")),
        ("gzip, dcz", Some("dcz")),
        ("dcz;q=0.8, gzip;q=0.9", Some("gzip")),
        ("dcz;q=0.2, identity;q=0.5", None),
    ];
    for (accept, want) in by_q {
        let response = get(
            &api,
            &[
                ("accept-encoding", accept),
                ("available-dictionary", &dictionary),
            ],
        )
        .await;
        assert_eq!(response.status(), 200, "{accept}");
        assert_eq!(header(&response, "content-encoding"), want, "{accept}");
    }
    // Unknown (a retained version with no delta to this one), stale (no longer
    // retained), malformed, repeated, the current document itself: ignored, the best
    // whole encoding is sent.
    let unknown = available_dictionary(b"a document this API never served");
    let older = writer.build(299).await.2;
    let stale = available_dictionary(&older);
    let second_dictionary = available_dictionary(&second.document);
    let current = available_dictionary(&third.document);
    let oversized = "x".repeat(10_000);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("available-dictionary", &unknown)],
        vec![("available-dictionary", &stale)],
        vec![("available-dictionary", &current)],
        vec![("available-dictionary", ":not base64!:")],
        vec![(
            "available-dictionary",
            "U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BY=",
        )],
        vec![("available-dictionary", ":AAAA:")],
        vec![("available-dictionary", &oversized)],
        vec![
            ("available-dictionary", &dictionary),
            ("available-dictionary", &second_dictionary),
        ],
    ];
    for case in &cases {
        let mut headers = vec![("accept-encoding", "dcz, zstd, gzip")];
        headers.extend(case.iter().copied());
        let response = get(&api, &headers).await;
        assert_eq!(response.status(), 200, "{case:?}");
        assert_eq!(
            header(&response, "content-encoding"),
            Some("zstd"),
            "{case:?}"
        );
    }
    let metrics = get_text(&api, "/metrics").await;
    let unmatched: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ofertasws_http_dictionary_unmatched_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        unmatched, 2,
        "the unknown and the stale dictionary; a client holding the current document \
         lacks no delta"
    );
}

#[tokio::test]
async fn head_and_auth_come_as_for_the_other_encodings() {
    let (_prefix, _writer, [first, ..], api) = api_with_deltas().await;
    let dictionary = available_dictionary(&first.document);
    let headers = [
        ("accept-encoding", "dcz"),
        ("available-dictionary", dictionary.as_str()),
    ];
    let got = get(&api, &headers).await;
    let head = request(&api, reqwest::Method::HEAD, &headers).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-encoding"), Some("dcz"));
    assert_eq!(
        header(&head, "content-length"),
        header(&got, "content-length")
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let refused = http()
        .get(api.url("/api/v4/ofertasws"))
        .header("authorization", "Bearer garbage")
        .header("accept-encoding", "dcz")
        .header("available-dictionary", &dictionary)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn a_corrupt_delta_is_refused_alone_and_counted() {
    let (_prefix, writer, first, api) = ready_api(300).await;
    let second = writer.publish(301, false).await;
    let third = writer.publish(302, false).await;
    writer.publish_deltas(&third, &[&first, &second]).await;
    let key = writer.store.keys().version_dcz(&third.meta.version);
    let _: i64 = fred::prelude::HashesInterface::hset(
        writer.store.client(),
        &key,
        (first.meta.version.as_str(), "damaged"),
    )
    .await
    .unwrap();
    writer.announce(&third.meta).await;
    wait_for_deltas(&api, &third.meta.version, 1).await;
    let from_first = available_dictionary(&first.document);
    let from_second = available_dictionary(&second.document);
    let refused = get(
        &api,
        &[
            ("accept-encoding", "dcz, zstd"),
            ("available-dictionary", &from_first),
        ],
    )
    .await;
    assert_eq!(header(&refused, "content-encoding"), Some("zstd"));
    let served = get(
        &api,
        &[
            ("accept-encoding", "dcz, zstd"),
            ("available-dictionary", &from_second),
        ],
    )
    .await;
    assert_eq!(header(&served, "content-encoding"), Some("dcz"));
    let metrics = get_text(&api, "/metrics").await;
    assert!(
        metrics.contains("ofertasws_snapshot_deltas_rejected_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_document_over_8_mib_comes_as_a_delta_in_a_larger_window() {
    let started = std::time::Instant::now();
    let (_prefix, writer, first, api) = ready_api(LARGE_DOCUMENT_OFFERS).await;
    let second = writer.publish(LARGE_DOCUMENT_OFFERS + 1, false).await;
    writer.publish_deltas(&second, &[&first]).await;
    writer.announce(&second.meta).await;
    wait_for_deltas(&api, &second.meta.version, 1).await;
    let response = get(
        &api,
        &[
            ("accept-encoding", "dcz, zstd, gzip"),
            (
                "available-dictionary",
                &available_dictionary(&first.document),
            ),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-encoding"), Some("dcz"));
    let body = sized_body(response).await;
    assert_decoded_only_in_a_larger_window(&first.document, &body, &second.document);
    assert!(
        (body.len() as u64) < second.meta.zstd_bytes / 10,
        "a {}-byte delta, the zstd body is {}",
        body.len(),
        second.meta.zstd_bytes
    );
    eprintln!(
        "large delta: {} → {} bytes as a {}-byte delta; {:?} in all",
        first.document.len(),
        second.document.len(),
        body.len(),
        started.elapsed()
    );
}
