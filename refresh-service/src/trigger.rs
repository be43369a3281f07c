//! `refresh-service trigger`: an operator's refresh request, optionally waiting for its
//! outcome.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fred::prelude::{EventInterface, PubsubInterface};

use shared::config::RedisSettings;
use shared::events::{Event, RefreshRequest, RefreshStatus};

/// Exit code when no refresher is subscribed to the refresh channel.
pub const EXIT_NO_REFRESHER: u8 = 3;
/// Exit code when the outcome did not arrive in time.
pub const EXIT_TIMEOUT: u8 = 2;

/// Publishes a refresh request and, with `wait`, prints its outcome event.
///
/// Exit codes: 0 accepted or completed/skipped, 1 failed, 2 timed out, 3 no refresher.
///
/// # Errors
/// When Redis cannot be reached.
pub async fn trigger(
    settings: &RedisSettings,
    wait: bool,
    timeout: Duration,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let keys = shared::keys::Keys::new(&settings.prefix);
    let client = shared::redis::client(settings, shared::redis::Start::FailFast)?;
    shared::redis::connect(&client)
        .await
        .context("cannot connect to Redis")?;
    let subscriber = shared::redis::subscriber(settings, shared::redis::Start::FailFast)?;
    shared::redis::connect(&subscriber)
        .await
        .context("cannot connect to Redis")?;
    let mut events = subscriber.message_rx();
    if wait {
        subscriber
            .subscribe(keys.events_channel())
            .await
            .context("cannot subscribe to events")?;
    }

    let request_id = uuid::Uuid::new_v4().to_string();
    let request = RefreshRequest {
        request_id: Some(request_id.clone()),
        reason,
        requested_by: Some(format!(
            "refresh-service trigger ({})",
            crate::context::instance_name()
        )),
        trigger: None,
        traceparent: shared::telemetry::traceparent(),
    };
    let body = serde_json::to_string(&request)?;
    let receivers = shared::redis::publish(&client, &keys.refresh_channel(), body)
        .await
        .context("cannot publish the request")?;
    if receivers == 0 {
        eprintln!(
            "no refresh-service is subscribed to {}: start `refresh-service run` (request {request_id} was not delivered)",
            keys.refresh_channel()
        );
        return Ok(ExitCode::from(EXIT_NO_REFRESHER));
    }
    if !wait {
        println!(
            "{}",
            serde_json::json!({"status": "accepted", "request_id": request_id})
        );
        return Ok(ExitCode::SUCCESS);
    }

    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Ok(message) => {
                    let Ok(event) = serde_json::from_slice::<Event>(
                        message.value.as_bytes().unwrap_or_default(),
                    ) else {
                        continue;
                    };
                    if let Some(outcome) = event
                        .outcome()
                        .filter(|o| o.request_id.as_deref() == Some(&request_id))
                    {
                        return Some((event.to_json(), outcome.status));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    match outcome {
        Ok(Some((json, status))) => {
            println!("{json}");
            Ok(match status {
                RefreshStatus::Failed | RefreshStatus::Rejected => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            })
        }
        Ok(None) => {
            anyhow::bail!("the connection to Redis closed while waiting for request {request_id}")
        }
        Err(_) => {
            eprintln!(
                "timed out after {}s waiting for the outcome of request {request_id}",
                timeout.as_secs()
            );
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
    }
}
