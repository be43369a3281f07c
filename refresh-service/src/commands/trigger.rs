//! `refresh-service trigger`: an operator's refresh request, optionally waiting for its
//! outcome, through the protocol in [`shared::refresh`].

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};

use shared::config::RedisSettings;
use shared::events::{Event, RefreshRequest, RefreshStatus};
use shared::keys::Keys;
use shared::redis::Start;
use shared::refresh::{RefreshRequester, RequestError};

/// Exit code when the refresh failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the outcome did not arrive in time.
pub const EXIT_TIMEOUT: u8 = 2;
/// Exit code when no refresher is subscribed to the refresh channel.
pub const EXIT_NO_REFRESHER: u8 = 3;

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
    let keys = Keys::new(&settings.prefix);
    let client = shared::redis::client(settings, Start::FailFast)?;
    shared::redis::connect(&client)
        .await
        .context("cannot connect to Redis")?;
    let requester = RefreshRequester::new(client, keys.clone());
    let request = RefreshRequest {
        reason,
        requested_by: Some(format!(
            "refresh-service trigger ({})",
            crate::pipeline::context::instance_name()
        )),
        ..RefreshRequest::default()
    };
    let answered = if wait {
        // Subscribed before the request goes out, so its outcome cannot be missed; one
        // lost while the subscription reconnects is found in its kept copy.
        let subscriber = shared::redis::subscriber(settings, Start::FailFast)?;
        shared::redis::connect(&subscriber)
            .await
            .context("cannot connect to Redis")?;
        let _resubscribe = subscriber.manage_subscriptions();
        let events = subscriber.message_rx();
        subscriber
            .subscribe(keys.events_channel())
            .await
            .context("cannot subscribe to events")?;
        let answered = requester.request_and_wait(request, events, timeout).await;
        if let Err(e) = subscriber.quit().await {
            tracing::debug!(error = %e, "event subscriber did not quit cleanly");
        }
        answered.map(|outcome| {
            let failed = matches!(
                outcome.status,
                RefreshStatus::Failed | RefreshStatus::Rejected
            );
            println!("{}", Event::for_outcome(outcome).to_json());
            if failed {
                ExitCode::from(EXIT_FAILED)
            } else {
                ExitCode::SUCCESS
            }
        })
    } else {
        requester.request(request).await.map(|request_id| {
            let accepted = serde_json::json!({"status": "accepted", "request_id": request_id});
            println!("{accepted}");
            ExitCode::SUCCESS
        })
    };
    match answered {
        Ok(code) => Ok(code),
        Err(e @ RequestError::NoRefresher { .. }) => {
            eprintln!("{e}: start `refresh-service run`");
            Ok(ExitCode::from(EXIT_NO_REFRESHER))
        }
        Err(e @ RequestError::TimedOut { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
        Err(e @ RequestError::Redis(_)) => Err(e).context("cannot request a refresh"),
    }
}
