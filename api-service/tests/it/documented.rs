//! The OpenAPI document against what the server really does: every documented path is a
//! route of the route table with the same methods, and the snapshot route — served
//! outside poem-openapi — answers each status its declaration lists with exactly the
//! headers and media type declared for it.

use std::collections::BTreeSet;

use poem::http::Method;
use serde_json::Value;

use api_service::request::route_table::Route;

use crate::helpers::*;

/// Headers every response may carry whatever the document says: framing and date.
const TRANSPORT: [&str; 3] = ["date", "content-length", "content-type"];

#[tokio::test]
async fn every_documented_path_is_a_route_of_the_table_with_its_methods() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    let document: Value = get_json(&api, "/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    for (path, operations) in paths {
        let route = Route::of(path);
        assert_eq!(route.label(), path, "{path} is in the route table");
        let documented: BTreeSet<String> = operations
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            let answers = route.answers(&method.parse::<Method>().unwrap());
            // poem-openapi documents GET routes without a HEAD operation; HEAD is served.
            let head_of_get = method == "HEAD" && documented.contains("GET");
            assert_eq!(
                answers,
                documented.contains(method) || head_of_get,
                "{method} {path}"
            );
        }
    }
    for route in Route::SERVED {
        let undocumented = matches!(route, Route::OpenApi | Route::Docs);
        assert_eq!(
            paths.contains_key(route.label()),
            !undocumented,
            "{}",
            route.label()
        );
    }
}

/// The response of `method` on the snapshot route with `headers`.
async fn snapshot_response(
    api: &TestApi,
    method: Method,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request = http().request(method, api.url("/api/v4/ofertasws"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

/// Checks `response` against the declaration of its status in `operation`.
fn check_against_document(operation: &Value, response: &reqwest::Response, case: &str) {
    let status = response.status().as_u16().to_string();
    let declared = &operation["responses"][&status];
    assert!(
        declared.is_object(),
        "{case}: status {status} is not documented"
    );
    let headers = declared["headers"].as_object().cloned().unwrap_or_default();
    for (name, header) in &headers {
        if header["required"] == true {
            assert!(
                response.headers().contains_key(name.as_str()),
                "{case}: documented header {name} missing"
            );
        }
    }
    for name in response.headers().keys() {
        let name = name.as_str();
        assert!(
            TRANSPORT.contains(&name) || headers.contains_key(&name.to_ascii_uppercase()),
            "{case}: header {name} is not documented for {status}"
        );
    }
    let media: Vec<&String> = declared["content"]
        .as_object()
        .map(|content| content.keys().collect())
        .unwrap_or_default();
    let sent = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    match media.as_slice() {
        [] => assert!(status == "304" || sent.is_none(), "{case}: {sent:?}"),
        [one] => assert_eq!(sent.as_deref(), Some(one.as_str()), "{case}"),
        more => panic!("{case}: several media types {more:?}"),
    }
}

#[tokio::test]
async fn the_snapshot_route_answers_every_documented_status_as_documented() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    let document: Value = get_json(&api, "/openapi.json").await;
    let auth = ("authorization", bearer(&user_token()));
    let mut seen = BTreeSet::new();
    for method in [Method::GET, Method::HEAD] {
        let operation =
            &document["paths"]["/api/v4/ofertasws"][method.as_str().to_ascii_lowercase()];
        let response = snapshot_response(&api, method.clone(), std::slice::from_ref(&auth)).await;
        assert_eq!(response.status(), 503);
        check_against_document(operation, &response, &format!("{method} before a snapshot"));
        seen.insert(503);
    }

    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(20, true).await;
    wait_for_version(
        &api,
        &written.meta.version,
        std::time::Duration::from_secs(5),
    )
    .await;
    let etag = format!("\"{}-zstd\"", written.meta.version);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "zstd",
            vec![auth.clone(), ("accept-encoding", "zstd, gzip".into())],
        ),
        (
            "gzip",
            vec![auth.clone(), ("accept-encoding", "gzip".into())],
        ),
        ("identity", vec![auth.clone()]),
        (
            "304",
            vec![
                auth.clone(),
                ("accept-encoding", "zstd".into()),
                ("if-none-match", etag),
            ],
        ),
        ("401", vec![("authorization", "Bearer garbage".into())]),
        (
            "406",
            vec![auth.clone(), ("accept-encoding", "identity;q=0".into())],
        ),
    ];
    for method in [Method::GET, Method::HEAD] {
        let operation =
            &document["paths"]["/api/v4/ofertasws"][method.as_str().to_ascii_lowercase()];
        for (name, headers) in &cases {
            let response = snapshot_response(&api, method.clone(), headers).await;
            seen.insert(response.status().as_u16());
            check_against_document(operation, &response, &format!("{method} {name}"));
        }
    }
    let declared: BTreeSet<u16> = document["paths"]["/api/v4/ofertasws"]["get"]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(seen, declared, "every documented status was produced");
}
