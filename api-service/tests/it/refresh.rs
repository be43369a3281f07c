//! `POST /api/v4/ofertasws/refresh` against a stand-in refresher on the real channels.

use std::time::Duration;

use fred::prelude::{EventInterface, PubsubInterface};
use serde_json::Value;

use shared::config::RedisSettings;
use shared::events::{Event, RefreshOutcome, RefreshRequest, RefreshStatus};
use shared::keys::Keys;

use crate::helpers::*;

/// How the stand-in refresher answers.
#[derive(Clone, Copy, PartialEq)]
enum Delivery {
    /// Keeps the outcome and publishes its event, like refresh-service.
    KeptAndPublished,
    /// Keeps the outcome only, as if the event were lost on the way.
    KeptOnly,
}

/// Listens on `P:refresh` like refresh-service and answers each request with `status`
/// after `delay` (never, when `status` is `None`). Returns the requests it saw.
async fn stand_in_refresher(
    prefix: &str,
    status: Option<RefreshStatus>,
    delay: Duration,
    delivery: Delivery,
) -> tokio::task::JoinHandle<Vec<RefreshRequest>> {
    let settings = RedisSettings::new(redis_url(), prefix);
    let subscriber = shared::redis::subscriber(&settings, shared::redis::Start::FailFast).unwrap();
    shared::redis::connect(&subscriber).await.unwrap();
    let mut messages = subscriber.message_rx();
    subscriber
        .subscribe(Keys::new(prefix).refresh_channel())
        .await
        .unwrap();
    let writer = Writer::new(prefix).await;
    tokio::spawn(async move {
        let _keep = subscriber;
        let mut seen = Vec::new();
        while let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_secs(5), messages.recv()).await
        {
            let request = RefreshRequest::from_message(&message).unwrap();
            seen.push(request.clone());
            let Some(status) = status else { continue };
            tokio::time::sleep(delay).await;
            let event = Event::for_outcome(RefreshOutcome {
                request_id: request.request_id.clone(),
                trigger: request.trigger().to_owned(),
                status,
                count: Some(7),
                version: Some("9-abc".into()),
                etag: Some("\"9-abc\"".into()),
                execution_time_ms: Some(42),
                error: (status == RefreshStatus::Failed)
                    .then(|| "database: connection refused".to_owned()),
                traceparent: None,
            });
            let id = request.request_id.clone().unwrap();
            writer.store.remember_outcome(&id, &event).await.unwrap();
            if delivery == Delivery::KeptAndPublished {
                let _: i64 = writer
                    .store
                    .client()
                    .publish(writer.store.keys().events_channel(), event.to_json())
                    .await
                    .unwrap();
            }
        }
        seen
    })
}

async fn post(api: &TestApi, query: &str) -> (u16, Value) {
    let response = http()
        .post(api.url(&format!("/api/v4/ofertasws/refresh{query}")))
        .header("authorization", bearer(&admin_token()))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn api_ready_for_events(prefix: &TestPrefix) -> TestApi {
    let writer = Writer::new(&prefix.0).await;
    let written = writer.publish(1, false).await;
    let api = spawn_api(&prefix.0).await;
    wait_for_version(&api, &written.meta.version, Duration::from_secs(5)).await;
    api
}

#[tokio::test]
async fn waits_for_the_outcome_of_its_own_request() {
    let prefix = TestPrefix::new();
    let api = api_ready_for_events(&prefix).await;
    let refresher = stand_in_refresher(
        &prefix.0,
        Some(RefreshStatus::Success),
        Duration::from_millis(200),
        Delivery::KeptAndPublished,
    )
    .await;
    let (status, body) = post(&api, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["count"], 7);
    assert_eq!(body["version"], "9-abc");
    assert_eq!(body["etag"], "\"9-abc\"");
    assert_eq!(body["execution_time_ms"], 42);
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    let seen = refresher.await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(seen[0].trigger(), "api");
    assert_eq!(seen[0].requested_by.as_deref(), Some("ops"));
}

#[tokio::test]
async fn a_failed_refresh_is_a_502() {
    let prefix = TestPrefix::new();
    let api = api_ready_for_events(&prefix).await;
    let _failing = stand_in_refresher(
        &prefix.0,
        Some(RefreshStatus::Failed),
        Duration::ZERO,
        Delivery::KeptAndPublished,
    )
    .await;
    let (status, body) = post(&api, "").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
}

#[tokio::test]
async fn no_answer_is_a_504_and_wait_false_a_202() {
    let prefix = TestPrefix::new();
    let api = api_ready_for_events(&prefix).await;
    let silent =
        stand_in_refresher(&prefix.0, None, Duration::ZERO, Delivery::KeptAndPublished).await;
    let started = std::time::Instant::now();
    let (status, body) = post(&api, "?timeout=1").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    let (status, body) = post(&api, "?wait=false").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert!(body["request_id"].is_string());
    assert_eq!(silent.await.unwrap().len(), 2);

    for query in ["?timeout=soon", "?timeout=-1", "?timeout=301"] {
        let (status, body) = post(&api, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request");
    }
}

#[tokio::test]
async fn an_outcome_event_missed_on_the_channel_is_found_in_its_kept_copy() {
    let prefix = TestPrefix::new();
    let api = api_ready_for_events(&prefix).await;
    let _refresher = stand_in_refresher(
        &prefix.0,
        Some(RefreshStatus::Success),
        Duration::ZERO,
        Delivery::KeptOnly,
    )
    .await;
    let (status, body) = post(&api, "?timeout=10").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["version"], "9-abc");
}
