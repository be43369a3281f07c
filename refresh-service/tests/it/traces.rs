//! OpenTelemetry export: both binaries send spans to an OTLP/HTTP receiver this test runs,
//! and a refresh asked for through the API is one trace across both services.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::web::Data;
use poem::{EndpointExt, Route, Server, handler, post};
use serde_json::Value;

use crate::helpers::{ApiProcess, TestEnv, change, seed};

/// One exported span: which service sent it, its name and its trace.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
}

type Received = Arc<Mutex<Vec<Exported>>>;

/// Reads an OTLP/JSON `ExportTraceServiceRequest`.
fn exported_spans(request: &Value) -> Vec<Exported> {
    let mut spans = Vec::new();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                spans.push(Exported {
                    service: service.clone(),
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                    trace_id: span["traceId"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    spans
}

#[handler]
fn receive_traces(body: Vec<u8>, received: Data<&Received>) -> &'static str {
    let request: Value = serde_json::from_slice(&body).expect("OTLP/JSON body");
    received.lock().unwrap().extend(exported_spans(&request));
    "{}"
}

/// An OTLP/HTTP receiver on a free port: `(endpoint, spans received)`.
async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let (acceptor, addr) = refresh_service::commands::status::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let app = Route::new()
        .at("/v1/traces", post(receive_traces))
        .data(received.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}"), received)
}

fn with_exporter(cmd: &mut tokio::process::Command, endpoint: &str) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
}

#[tokio::test]
async fn an_api_triggered_refresh_is_one_trace_across_both_services() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 30).await;
    let (endpoint, received) = start_receiver().await;

    let mut refresher = env.command(&["run"]);
    with_exporter(&mut refresher, &endpoint);
    let _refresher = refresher.spawn().unwrap();

    let api = ApiProcess::start_with(&env, |api| with_exporter(api, &endpoint)).await;
    let (base, token) = (api.base.clone(), api.token.clone());
    let http = reqwest::Client::new();

    change(&env.db.pool, 1).await;
    let reply = http
        .post(format!("{base}/api/v4/ofertasws/refresh?timeout=20"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["status"], "success", "{reply}");

    // The trace of the API request must hold the refresher's spans (every stage) and the
    // API's reload of the snapshot that refresh announced.
    let expected: BTreeSet<(&str, &str)> = [
        ("api-service", "POST /api/v4/ofertasws/refresh"),
        ("refresh-service", "refresh"),
        ("refresh-service", "query"),
        ("refresh-service", "rank"),
        ("refresh-service", "compress"),
        ("refresh-service", "write"),
        ("refresh-service", "publish"),
        ("api-service", "snapshot.reload"),
    ]
    .into();
    let trace_of_request = || {
        let spans = received.lock().unwrap().clone();
        let trace_id = spans
            .iter()
            .find(|s| s.service == "api-service" && s.name == "POST /api/v4/ofertasws/refresh")
            .map(|s| s.trace_id.clone())?;
        let mut by_trace: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        for span in spans {
            by_trace
                .entry(span.trace_id)
                .or_default()
                .insert((span.service, span.name));
        }
        by_trace.remove(&trace_id).map(|names| (trace_id, names))
    };
    let complete = || {
        trace_of_request().is_some_and(|(_, names)| {
            expected
                .iter()
                .all(|(service, name)| names.contains(&((*service).to_owned(), (*name).to_owned())))
        })
    };
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !complete() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "expected {expected:?} in one trace; the request's trace has {:?}; received {:?}",
        trace_of_request(),
        received
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{}/{}/{}", s.service, s.name, s.trace_id))
            .collect::<Vec<_>>()
    );
    let (trace_id, _) = trace_of_request().unwrap();
    assert_eq!(trace_id.len(), 32, "hex trace id: {trace_id}");
}
