//! Serving the snapshot: encodings, conditional requests, HEAD, 503, corrupt bodies.

use std::io::Read;
use std::time::Duration;

use reqwest::Response;
use serde_json::Value;

use api_service::snapshot::sync::POLL_EVERY;

use crate::helpers::*;

/// A window in which a replica polls `current` at least once: its poll interval and half
/// a second more.
const ONE_POLL: Duration = POLL_EVERY.saturating_add(Duration::from_millis(500));

pub async fn get(api: &TestApi, headers: &[(&str, &str)]) -> Response {
    let mut request = http()
        .get(api.url("/api/v4/ofertasws"))
        .header("authorization", bearer(&user_token()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn head(api: &TestApi, accept_encoding: &str) -> Response {
    http()
        .head(api.url("/api/v4/ofertasws"))
        .header("authorization", bearer(&user_token()))
        .header("accept-encoding", accept_encoding)
        .send()
        .await
        .unwrap()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_encoding_carries_the_same_document_and_the_contract_headers() {
    let (_prefix, _writer, written, api) = ready_api(40).await;
    let version = &written.meta.version;
    for (accept, encoding, etag) in [
        (
            Some("zstd, gzip"),
            Some("zstd"),
            format!("\"{version}-zstd\""),
        ),
        (Some("gzip"), Some("gzip"), format!("\"{version}-gzip\"")),
        (None, None, format!("\"{version}\"")),
        (Some("br"), None, format!("\"{version}\"")),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let response = get(&api, &headers).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            header(&response, "content-encoding").as_deref(),
            encoding,
            "{accept:?}"
        );
        assert_eq!(header(&response, "etag"), Some(etag.clone()));
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some("application/json")
        );
        // Revalidated before reuse, yet kept by a browser as an RFC 9842 dictionary.
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("private, max-age=0, stale-while-revalidate=172800")
        );
        assert_eq!(
            header(&response, "vary").as_deref(),
            Some("Accept-Encoding, Available-Dictionary")
        );
        assert_eq!(
            header(&response, "use-as-dictionary").as_deref(),
            Some("match=\"/api/v4/ofertasws\"")
        );
        assert_eq!(header(&response, "x-ofertas-count").as_deref(), Some("40"));
        let last_modified = header(&response, "last-modified").unwrap();
        assert_eq!(
            httpdate::parse_http_date(&last_modified).unwrap(),
            std::time::SystemTime::from(written.meta.generated_at)
                - Duration::from_nanos(u64::from(
                    written.meta.generated_at.timestamp_subsec_nanos()
                ))
        );
        let body = sized_body(response).await;
        let document = match encoding {
            Some("zstd") => zstd::decode_all(&body[..]).unwrap(),
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            _ => body.to_vec(),
        };
        assert_eq!(document, written.document);
    }
    let refused = get(&api, &[("accept-encoding", "identity;q=0")]).await;
    assert_eq!(refused.status().as_u16(), 406);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "not_acceptable"
    );
}

#[tokio::test]
async fn conditional_requests_answer_304_for_any_encoding_of_the_current_snapshot() {
    let (_prefix, _writer, written, api) = ready_api(5).await;
    let v = &written.meta.version;
    let generated = std::time::SystemTime::from(written.meta.generated_at);
    let later = httpdate::fmt_http_date(generated + Duration::from_secs(60));
    let same_second = httpdate::fmt_http_date(generated);
    let earlier = httpdate::fmt_http_date(generated - Duration::from_secs(60));
    let not_modified: Vec<Vec<(&str, String)>> = vec![
        vec![("if-none-match", format!("\"{v}\""))],
        vec![("if-none-match", format!("\"{v}-gzip\""))],
        vec![("if-none-match", format!("\"{v}-zstd\""))],
        vec![("if-none-match", format!("W/\"{v}-gzip\""))],
        vec![("if-none-match", format!("\"old\", W/\"{v}\", \"other\""))],
        vec![("if-none-match", "*".to_owned())],
        vec![
            ("if-none-match", format!("\"{v}-zstd\"")),
            ("accept-encoding", "gzip".to_owned()),
        ],
        vec![("if-modified-since", same_second)],
        vec![("if-modified-since", later.clone())],
    ];
    for headers in &not_modified {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = get(&api, &pairs).await;
        assert_eq!(response.status().as_u16(), 304, "{headers:?}");
        assert!(
            header(&response, "etag").is_some_and(|e| e.contains(v.as_str())),
            "{headers:?}"
        );
        assert_eq!(
            header(&response, "vary").as_deref(),
            Some("Accept-Encoding, Available-Dictionary")
        );
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let modified: Vec<Vec<(&str, String)>> = vec![
        vec![("if-none-match", "\"something-else\"".to_owned())],
        vec![("if-none-match", format!("\"{v}-br\""))],
        vec![("if-none-match", "not a valid list".to_owned())],
        vec![("if-modified-since", earlier)],
        vec![("if-modified-since", "yesterday-ish".to_owned())],
        // If-None-Match takes precedence over If-Modified-Since.
        vec![
            ("if-none-match", "\"other\"".to_owned()),
            ("if-modified-since", later),
        ],
    ];
    for headers in &modified {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            get(&api, &pairs).await.status().as_u16(),
            200,
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let (_prefix, _writer, written, api) = ready_api(12).await;
    let get = get(&api, &[("accept-encoding", "gzip")]).await;
    let head = head(&api, "gzip").await;
    assert_eq!(head.status().as_u16(), 200);
    for name in [
        "etag",
        "content-encoding",
        "content-length",
        "last-modified",
        "x-ofertas-count",
        "vary",
        "content-type",
    ] {
        assert_eq!(header(&head, name), header(&get, name), "{name}");
    }
    assert_eq!(
        header(&head, "content-length"),
        Some(written.meta.gzip_bytes.to_string())
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let unauthorized = http()
        .head(api.url("/api/v4/ofertasws"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
}

#[tokio::test]
async fn before_the_first_snapshot_the_api_answers_503_and_is_not_ready() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    let response = get(&api, &[]).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(header(&response, "retry-after").is_some());
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "no_snapshot"
    );
    let meta = http()
        .get(api.url("/api/v4/ofertasws/meta"))
        .header("authorization", bearer(&user_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status().as_u16(), 503);
    assert_eq!(get_status(&api, "/ready").await, 503);
    assert_eq!(get_status(&api, "/health").await, 200);

    let written = Writer::new(&prefix.0).await.publish(2, true).await;
    wait_for_version(&api, &written.meta.version, Duration::from_secs(5)).await;
    assert_eq!(get_status(&api, "/ready").await, 200);
    let meta = get_meta(&api).await;
    assert_eq!(meta["version"], written.meta.version.as_str());
    assert_eq!(meta["etag"], written.meta.etag.as_str());
    assert_eq!(meta["count"], 2);
    assert_eq!(meta["gzip_bytes"], written.meta.gzip_bytes);
    assert_eq!(meta["zstd_bytes"], written.meta.zstd_bytes);
    assert_eq!(meta["json_bytes"], written.meta.json_bytes);
    assert_eq!(
        meta["generated_at"],
        written.meta.generated_at_string().as_str()
    );
    assert!(meta["age_seconds"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn a_corrupt_body_is_refused_and_the_previous_snapshot_kept() {
    let (_prefix, writer, good, api) = ready_api(8).await;
    let (meta, mut bodies, _) = writer.build(9).await;
    let mut tampered = bodies.gzip.to_vec();
    let last = tampered.len() - 10;
    tampered[last] ^= 0xff;
    bodies.gzip = tampered.into();
    writer.store.publish(&meta, &bodies).await.unwrap();
    writer.announce(&meta).await;

    let metrics = || async { get_text(&api, "/metrics").await };
    eventually(
        Duration::from_secs(5),
        "the corrupt snapshot to be refused",
        || async {
            metrics()
                .await
                .contains("ofertasws_snapshot_rejected_total 1")
        },
    )
    .await;
    let response = get(&api, &[("accept-encoding", "gzip")]).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        header(&response, "etag")
            .unwrap()
            .contains(&good.meta.version)
    );
    assert_eq!(api.current.get().unwrap().meta.version, good.meta.version);
    // Polling does not reload (or re-report) the same corrupt version. A window, not a
    // wait for something to arrive: it covers at least one poll, in which nothing may
    // happen.
    tokio::time::sleep(ONE_POLL).await;
    assert!(
        metrics()
            .await
            .contains("ofertasws_snapshot_rejected_total 1")
    );
}

/// The value of the `/metrics` sample `series` (name and labels exactly), if exported.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[tokio::test]
async fn snapshot_responses_are_counted_by_status_and_encoding() {
    let (_prefix, _writer, written, api) = ready_api(30).await;
    let ok = get(&api, &[("accept-encoding", "gzip")]).await;
    assert_eq!(ok.status().as_u16(), 200);
    let gzip_bytes: f64 = header(&ok, "content-length").unwrap().parse().unwrap();
    assert!(ok.bytes().await.unwrap().len() as f64 == gzip_bytes);
    let revalidation = get(
        &api,
        &[
            ("accept-encoding", "gzip"),
            (
                "if-none-match",
                &format!("\"{}-gzip\"", written.meta.version),
            ),
        ],
    )
    .await;
    assert_eq!(revalidation.status().as_u16(), 304);
    assert_eq!(head(&api, "zstd").await.status().as_u16(), 200);
    assert_eq!(get_status(&api, "/api/v4/ofertasws").await, 401);

    let metrics = get_text(&api, "/metrics").await;
    let route = "route=\"/api/v4/ofertasws\"";
    for (status, encoding, requests, bytes) in [
        (200, "gzip", 1.0, Some(gzip_bytes)),
        (200, "zstd", 1.0, Some(0.0)),
        (200, "identity", 0.0, Some(0.0)),
        (304, "identity", 1.0, Some(0.0)),
        (401, "identity", 1.0, None),
    ] {
        let labels = format!("{{{route},status=\"{status}\",encoding=\"{encoding}\"}}");
        assert_eq!(
            sample(&metrics, &format!("ofertasws_http_requests_total{labels}")),
            Some(requests),
            "requests {labels} in:\n{metrics}"
        );
        if let Some(bytes) = bytes {
            assert_eq!(
                sample(
                    &metrics,
                    &format!("ofertasws_http_response_body_bytes_total{labels}")
                ),
                Some(bytes),
                "body bytes {labels}"
            );
        }
    }
    assert_eq!(
        sample(&metrics, "ofertasws_http_not_modified_total"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("ofertasws_http_request_duration_seconds_count{{{route}}}")
        ),
        Some(4.0)
    );
}
