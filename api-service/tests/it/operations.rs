//! OpenAPI document, graceful shutdown, configuration errors of the binary.

use std::time::Duration;

use serde_json::Value;

use shared::events::{Event, RefreshOutcome, RefreshStatus};

use system_tests::free_port;

use crate::helpers::*;

const OPENAPI_SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi.json");

#[tokio::test]
async fn openapi_document_matches_the_committed_snapshot() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    let document: Value = get_json(&api, "/openapi.json").await;
    let rendered = serde_json::to_string_pretty(&document).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(OPENAPI_SNAPSHOT, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(OPENAPI_SNAPSHOT).unwrap_or_default();
    assert!(
        committed == rendered,
        "OpenAPI document changed; review it and rerun with UPDATE_SNAPSHOTS=1"
    );
    for path in [
        "/api/v4/ofertasws",
        "/api/v4/ofertasws/meta",
        "/api/v4/ofertasws/refresh",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(document["paths"][path].is_object(), "{path} documented");
    }
    let get = &document["paths"]["/api/v4/ofertasws"]["get"];
    for status in ["200", "304", "401", "406", "503"] {
        assert!(
            get["responses"][status].is_object(),
            "GET documents {status}"
        );
    }
    for name in [
        "ETag",
        "Content-Encoding",
        "Last-Modified",
        "Cache-Control",
        "Vary",
        "X-Ofertas-Count",
        "Content-Length",
    ] {
        let documented = &get["responses"]["200"]["headers"][name.to_ascii_uppercase()];
        assert!(documented.is_object(), "200 documents {name}");
    }
    assert!(document["paths"]["/api/v4/ofertasws"]["head"].is_object());
    let docs = http().get(api.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(1, false).await;
    let mut api = spawn_api(&prefix.0).await;
    wait_for_version(&api, &written.meta.version, Duration::from_secs(5)).await;

    // A refresh request stays in flight until the stand-in answers, 1.5 s later.
    let settings = shared::config::RedisSettings::new(redis_url(), &prefix.0);
    let subscriber = shared::redis::subscriber(&settings, shared::redis::Start::FailFast).unwrap();
    shared::redis::connect(&subscriber).await.unwrap();
    let mut requests = fred::prelude::EventInterface::message_rx(&subscriber);
    fred::prelude::PubsubInterface::subscribe(
        &subscriber,
        shared::keys::Keys::new(&prefix.0).refresh_channel(),
    )
    .await
    .unwrap();
    let in_flight = tokio::spawn({
        let url = api.url("/api/v4/ofertasws/refresh");
        async move {
            http()
                .post(url)
                .header("authorization", bearer(&admin_token()))
                .send()
                .await
        }
    });
    let message = tokio::time::timeout(Duration::from_secs(5), requests.recv())
        .await
        .unwrap()
        .unwrap();
    let request = shared::events::RefreshRequest::from_message(&message).unwrap();

    // Shutting down: the listener closes at once, the request stays in flight.
    api.stop.cancel();
    eventually(
        Duration::from_secs(5),
        "the API to stop accepting",
        || async { tokio::net::TcpStream::connect(api.addr).await.is_err() },
    )
    .await;
    assert!(
        !in_flight.is_finished(),
        "the in-flight request was cut short"
    );
    let event = Event::for_outcome(RefreshOutcome {
        request_id: request.request_id,
        trigger: "api".into(),
        status: RefreshStatus::Unchanged,
        count: Some(1),
        version: None,
        etag: None,
        execution_time_ms: Some(1),
        error: None,
        traceparent: None,
    });
    let _: i64 = fred::prelude::PubsubInterface::publish(
        writer.store.client(),
        writer.store.keys().events_channel(),
        event.to_json(),
    )
    .await
    .unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "unchanged"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut api.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(api.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn the_binary_refuses_to_start_without_a_key_and_exits_0_on_sigterm() {
    let prefix = TestPrefix::new();
    let binary = env!("CARGO_BIN_EXE_api-service");
    let base = |cmd: &mut tokio::process::Command| {
        cmd.env_clear()
            .env("REDIS_URL", redis_url())
            .env("OFERTASWS_PREFIX", &prefix.0)
            .env("API_BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
    };
    let mut no_key = tokio::process::Command::new(binary);
    base(&mut no_key);
    let out = no_key.arg("serve").output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    for (variable, value) in [
        ("API_BIND", "nowhere"),
        ("REDIS_URL", "ftp://x"),
        ("JWT_PUBLIC_KEY_FILE", "/nonexistent.pem"),
    ] {
        let mut cmd = tokio::process::Command::new(binary);
        base(&mut cmd);
        let out = cmd
            .env("JWT_SECRET", SECRET)
            .env(variable, value)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(variable),
            "{variable}: {stderr}"
        );
    }

    let mut serve = tokio::process::Command::new(binary);
    base(&mut serve);
    let bind = format!("127.0.0.1:{}", free_port());
    let mut child = serve
        .env("JWT_SECRET", SECRET)
        .env("API_BIND", &bind)
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the binary to serve /health",
        || {
            let health = http().get(format!("http://{bind}/health")).send();
            async { health.await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
    assert!(child.try_wait().unwrap().is_none(), "serving");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    let mut token = tokio::process::Command::new(binary);
    base(&mut token);
    let out = token
        .env("JWT_SECRET", SECRET)
        .args(["token", "--role", "admin", "--ttl", "5m"])
        .output()
        .await
        .unwrap();
    let minted = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let settings = settings(&prefix.0);
    let claims = api_service::request::auth::Authenticator::from_settings(&settings)
        .unwrap()
        .verify(&minted)
        .unwrap();
    assert!(claims.can_refresh());
}

#[tokio::test]
async fn a_method_a_route_does_not_answer_is_a_405_naming_the_ones_it_does() {
    let prefix = TestPrefix::new();
    let api = spawn_api(&prefix.0).await;
    for (method, path, allow) in [
        ("PUT", "/api/v4/ofertasws", "GET, HEAD"),
        ("TRACE", "/api/v4/ofertasws/meta", "GET, HEAD"),
        ("GET", "/api/v4/ofertasws/refresh", "POST"),
        ("POST", "/health", "GET, HEAD"),
    ] {
        let response = http()
            .request(method.parse().unwrap(), api.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}
