//! `refresh-service run`: the schedule, the ops channel and the start-up catch-up all
//! feed one queue; one worker drains it, so refreshes never overlap in this process and
//! a burst of requests during a refresh becomes at most one more refresh.

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::sync::{Notify, broadcast::error::RecvError, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use shared::config::ConfigError;
use shared::events::{Event, RefreshOutcome, RefreshRequest, RefreshStatus, Trigger};

use crate::commands::schedule::{self, Schedule};
use crate::commands::status::{self, Readiness};
use crate::pipeline::context::RefreshContext;
use crate::pipeline::recorded::{RefreshRun, run_recorded};
use crate::settings::RefreshSettings;

/// How often unwritten refresh log rows are retried.
const LOG_FLUSH_EVERY: Duration = Duration::from_secs(10);

/// One queued request.
#[derive(Debug)]
struct Queued {
    trigger: Trigger,
    request_id: String,
    traceparent: Option<String>,
}

impl Queued {
    fn new(trigger: Trigger, request_id: Option<String>) -> Self {
        Self {
            trigger,
            request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            traceparent: None,
        }
    }
}

/// `refresh-service run`: the status port (unless `metrics_bind` is `off`) and the daemon,
/// until SIGTERM or SIGINT.
///
/// # Errors
/// Configuration errors (naming the variable), Redis unreachable at start, the status
/// port not bound.
pub async fn execute(settings: &RefreshSettings, metrics_bind: &str) -> anyhow::Result<ExitCode> {
    let status_addr = status_addr(metrics_bind)?;
    let ctx = Arc::new(RefreshContext::connect(settings).await?);
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
    let readiness = Arc::new(Readiness::default());
    let status = match status_addr {
        Some(addr) => {
            let (acceptor, bound) = status::bind(addr).await?;
            tracing::info!(addr = %bound, "status port listening");
            Some(tokio::spawn(status::serve(
                acceptor,
                ctx.clone(),
                readiness.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let result = run(ctx, settings, readiness, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(status) = status {
        let _ = status.await;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the daemon until `shutdown` is cancelled; a refresh in progress then finishes.
/// `readiness` is set once the refresh channel is subscribed.
///
/// # Errors
/// When the schedule's settings are invalid or the ops channel cannot be subscribed at
/// start.
pub async fn run(
    ctx: Arc<RefreshContext>,
    settings: &RefreshSettings,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (queue, requests) = mpsc::unbounded_channel();
    let tracker = TaskTracker::new();

    let subscriber = shared::redis::subscriber(&settings.redis, shared::redis::Start::FailFast)?;
    shared::redis::connect(&subscriber)
        .await
        .context("cannot connect the ops-channel subscriber to Redis")?;
    let _resubscriber = subscriber.manage_subscriptions();
    let channel = ctx.store.keys().refresh_channel();
    subscriber
        .subscribe(channel.as_str())
        .await
        .context("cannot subscribe to the refresh channel")?;
    tracing::info!(channel = %channel, "listening for refresh requests");
    readiness.set(true);
    tracker.spawn(listen(
        ctx.clone(),
        subscriber,
        queue.clone(),
        shutdown.clone(),
    ));

    let schedule = settings.schedule()?.map(Schedule::from);
    if let Some(schedule) = &schedule {
        tracing::info!(
            schedule = %schedule.expression(),
            timezone = %schedule.timezone(),
            next = ?schedule.next_after((ctx.clock)()),
            "refresh schedule started"
        );
        let (schedule, tick, clock) = (schedule.clone(), queue.clone(), ctx.clock.clone());
        let stop = shutdown.clone();
        tracker.spawn(async move {
            schedule
                .run(&clock, &stop, |_| {
                    match tick.send(Queued::new(Trigger::Schedule, None)) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    }
                })
                .await;
        });
    } else {
        tracing::info!("in-process schedule is off (REFRESH_SCHEDULE=off)");
    }
    if let Some(reason) = startup_reason(&ctx, schedule.as_ref()).await {
        tracing::info!(%reason, "refreshing at start");
        let _ = queue.send(Queued::new(Trigger::Startup, None));
    }
    tracker.spawn(flush_log_periodically(ctx.clone(), shutdown.clone()));
    let deltas = Arc::new(Notify::new());
    tracker.spawn(build_deltas(ctx.clone(), deltas.clone(), shutdown.clone()));
    drop(queue);

    work(&ctx, requests, &deltas, &shutdown).await;

    readiness.set(false);
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    ctx.log.flush().await;
    Ok(())
}

async fn startup_reason(ctx: &RefreshContext, schedule: Option<&Schedule>) -> Option<String> {
    let has_snapshot = match ctx.store.current_meta().await {
        Ok(meta) => meta.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the current snapshot at start");
            false
        }
    };
    let last_success = match ctx.log.last_success().await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the refresh log at start");
            None
        }
    };
    schedule::catch_up_reason(schedule, (ctx.clock)(), has_snapshot, last_success)
}

/// Takes requests one batch at a time: everything queued when a refresh starts is
/// answered by that refresh. After each, the delta task is told to look at the current
/// version (the refresh has published and announced it by then).
async fn work(
    ctx: &RefreshContext,
    mut requests: mpsc::UnboundedReceiver<Queued>,
    deltas: &Notify,
    shutdown: &CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = requests.recv() => match next {
                Some(request) => request,
                None => return,
            },
        };
        let mut run = RefreshRun {
            trigger: first.trigger,
            request_ids: vec![first.request_id],
            traceparent: first.traceparent,
        };
        while let Ok(more) = requests.try_recv() {
            run.request_ids.push(more.request_id);
            run.traceparent = run.traceparent.or(more.traceparent);
        }
        run_recorded(ctx, &run).await;
        deltas.notify_one();
    }
}

/// Builds the current version's deltas at start and after each refresh, off the
/// refreshes' path: a refresh never waits for them, and requests that come while a build
/// runs are answered meanwhile (a notification during a build is kept for the next one).
async fn build_deltas(ctx: Arc<RefreshContext>, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = crate::pipeline::deltas::build_logged(&ctx) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
        }
    }
}

/// Turns messages on `P:refresh` into queued requests, rejecting malformed ones.
async fn listen(
    ctx: Arc<RefreshContext>,
    subscriber: SubscriberClient,
    queue: mpsc::UnboundedSender<Queued>,
    shutdown: CancellationToken,
) {
    let mut messages = subscriber.message_rx();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = messages.recv() => message,
        };
        match message {
            Ok(message) => match RefreshRequest::from_message(&message) {
                Ok(request) => {
                    tracing::info!(
                        request_id = ?request.request_id,
                        reason = ?request.reason,
                        requested_by = ?request.requested_by,
                        "refresh requested"
                    );
                    let queued = Queued {
                        traceparent: request.traceparent.clone(),
                        ..Queued::new(request.trigger(), request.request_id.clone())
                    };
                    if queue.send(queued).is_err() {
                        break;
                    }
                    ctx.metrics.request_taken();
                }
                Err(rejected) => {
                    tracing::warn!(error = %rejected, "refresh request rejected");
                    let event = Event::for_outcome(RefreshOutcome {
                        error: Some(rejected.to_string()),
                        ..RefreshOutcome::new(Trigger::Ops, RefreshStatus::Rejected)
                    });
                    ctx.publish_event(&event).await;
                }
            },
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "refresh requests were dropped while busy; queueing one refresh to cover them"
                );
                if queue.send(Queued::new(Trigger::Ops, None)).is_err() {
                    break;
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
    if let Err(e) = subscriber.quit().await {
        tracing::debug!(error = %e, "subscriber did not quit cleanly");
    }
}

async fn flush_log_periodically(ctx: Arc<RefreshContext>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(LOG_FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => { ctx.log.flush().await; }
        }
    }
}

/// The status port address from `REFRESH_METRICS_BIND`, or `None` for `off`.
fn status_addr(value: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| ConfigError::new("REFRESH_METRICS_BIND", value, e))
}
