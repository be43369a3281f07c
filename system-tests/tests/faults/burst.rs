//! 100 refresh triggers at once, from redis-cli, the API and two `once` processes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use serde_json::Value;

use shared::events::RefreshStatus;

use system_tests::eventually;
use system_tests::observe::{Checker, Load, MetaBook, assert_one_refresh_at_a_time};
use system_tests::servers::shared_cluster;
use system_tests::stack::{FIVE_SECONDS, OFFERS, OnceRun, REPLICAS, SETUP, Stack};

/// Requests through `POST /api/v4/ofertasws/refresh`, alternating replicas; the rest
/// of the 100 are published by redis-cli (two processes, half each).
const FROM_API: usize = 50;
/// `refresh-service once` processes in the first burst.
const ONCE: usize = 2;
/// Pause between two changes of the second round's writer (about 100 changes a second).
const WRITER_PACE: Duration = Duration::from_millis(10);

/// What one burst sent and got back.
struct Burst {
    /// Ids of the requests that reached the daemon (redis-cli and API ones).
    ids: Vec<String>,
    api: Vec<(u16, Value)>,
    onces: Vec<OnceRun>,
}

/// Fires 100 triggers at once (`once` of them `refresh-service once` processes) and waits
/// until each has been sent (and each API call and `once` process has answered).
async fn fire(stack: &Stack, round: &str, api_query: &str, once: usize) -> Burst {
    let channel = stack.store.keys().refresh_channel();
    let from_cli = 100 - FROM_API - once;
    let cli_ids: Vec<String> = (0..from_cli).map(|i| format!("{round}-cli-{i}")).collect();
    let cli = join_all(cli_ids.chunks(from_cli.div_ceil(2)).map(|ids| {
        let commands: String = ids
            .iter()
            .map(|id| format!("PUBLISH {channel} '{{\"request_id\":\"{id}\"}}'\n"))
            .collect();
        stack.redis_cli(commands)
    }));
    let api = join_all((0..FROM_API).map(|i| stack.refresh_via_api(i % REPLICAS, api_query)));
    let trigger = format!("{round}-once");
    let onces = join_all((0..once).map(|_| stack.once(&trigger)));
    let (cli, api, onces) = tokio::join!(cli, api, onces);
    for receivers in cli.iter().flat_map(|out| out.lines()) {
        assert!(
            receivers.trim().parse::<i64>().is_ok_and(|n| n >= 1),
            "PUBLISH reached {receivers:?}"
        );
    }
    let mut ids = cli_ids;
    ids.extend(api.iter().map(|(status, body)| {
        body["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: {body}"))
            .to_owned()
    }));
    assert_eq!(ids.len() + onces.len(), 100);
    Burst { ids, api, onces }
}

/// Request ids the daemon has logged as received.
fn received(stack: &Stack) -> HashSet<String> {
    stack
        .refresher()
        .logged("refresh requested")
        .iter()
        .filter_map(|line| line["fields"]["request_id"].as_str())
        .map(|id| {
            id.trim_start_matches("Some(\"")
                .trim_end_matches("\")")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_triggers_runs_one_refresh_at_a_time_and_never_tears() {
    let stack = Stack::start(shared_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let (load, checker) = (Load::start(&stack, &book), Checker::start(&stack, &book));
    let events = stack.events().await;

    // Round 1: the burst lands while a refresh runs (held in its query by a table lock).
    stack.change_offer(7).await;
    let round_started = Utc::now();
    let blocker = stack.block_offers_table().await;
    assert_eq!(stack.publish(r#"{"request_id":"running"}"#).await, 1);
    let holder = stack.wait_for_lock().await;
    assert!(holder.contains(&format!(":{}:", stack.refresher().pid())));
    let burst = fire(&stack, "r1", "?wait=false", ONCE).await;
    for (status, body) in &burst.api {
        assert_eq!(*status, 202, "{body}");
    }
    for once in &burst.onces {
        assert_eq!(once.code, Some(0), "{}", once.stderr);
        assert_eq!(
            once.outcome().status,
            RefreshStatus::Skipped,
            "{}",
            once.stdout
        );
    }
    eventually(
        SETUP,
        "every request of the burst to reach the daemon",
        || {
            let received = received(&stack);
            std::future::ready(burst.ids.iter().all(|id| received.contains(id)))
        },
    )
    .await;
    assert_eq!(
        stack.lock_holder().await,
        Some(holder),
        "the refresh still runs"
    );
    drop(blocker);

    let running = events.wait_outcome("running").await;
    assert_eq!(running.status, RefreshStatus::Success, "{running:?}");
    let second = running.version.unwrap();
    let outcomes = events.wait_outcomes(&burst.ids).await;
    for id in &burst.ids {
        let outcome = &outcomes[id];
        assert_eq!(
            (outcome.status, outcome.version.as_deref()),
            (RefreshStatus::Unchanged, Some(second.as_str())),
            "{id} is answered by the one coalesced rerun: {outcome:?}"
        );
    }
    let rows = stack.log_rows().await;
    let round: Vec<_> = rows
        .iter()
        .filter(|r| r.executed_at >= round_started)
        .collect();
    let ran: Vec<_> = round.iter().filter(|r| r.status != "skipped").collect();
    assert_eq!(
        ran.len(),
        2,
        "the refresh and one coalesced rerun: {round:?}"
    );
    // The two `once` processes were refused while the first refresh ran: their
    // attempts lie inside its span, and they never ran one of their own.
    let skipped: Vec<_> = round.iter().filter(|r| r.status == "skipped").collect();
    assert_eq!(skipped.len(), ONCE, "{round:?}");
    let (first_start, first_ms) = (ran[0].executed_at, ran[0].execution_time_ms);
    let first_end = first_start + chrono::TimeDelta::milliseconds(i64::from(first_ms));
    for once in &skipped {
        assert_eq!(once.trigger, "r1-once", "{round:?}");
        assert!(
            first_start < once.executed_at && once.executed_at < first_end,
            "{once:?} was skipped while {:?} ran",
            ran[0]
        );
    }

    // Round 2: nothing holds the refreshes back and the offers keep changing, so a
    // burst of 100 from redis-cli and the API becomes a run of refreshes, each switching
    // to a new snapshot while the checker and the load read. (`once` processes stay out
    // of this round: a `once` that starts while the daemon releases the lock records
    // `executed_at` before it takes the lock, so its logged span can overlap the
    // daemon's by a few milliseconds although the lock was never shared.)
    stack.change_offer(8).await;
    let pool = stack.pool.clone();
    let writer = tokio::spawn(async move {
        for n in 0i64.. {
            sqlx::query(
                "update ofertas set title = title || '+', updated_at = now() where id = $1",
            )
            .bind(n % OFFERS + 1)
            .execute(&pool)
            .await
            .unwrap();
            tokio::time::sleep(WRITER_PACE).await;
        }
    });
    let burst = fire(&stack, "r2", "?timeout=60", 0).await;
    writer.abort();
    // With no other refresher about, every request is answered by a refresh that ran.
    for (status, body) in &burst.api {
        assert_eq!(*status, 200, "{body}");
        assert!(
            ["success", "unchanged"].contains(&body["status"].as_str().unwrap()),
            "{body}"
        );
    }
    let outcomes = events.wait_outcomes(&burst.ids).await;
    for id in &burst.ids {
        assert!(
            [RefreshStatus::Success, RefreshStatus::Unchanged].contains(&outcomes[id].status),
            "{:?}",
            outcomes[id]
        );
    }

    let last = stack.current().await.unwrap().version;
    stack
        .wait_served(&last, Instant::now() + FIVE_SECONDS, "after the bursts")
        .await;
    let checks = checker.finish(&last).await;
    checks.assert_never_torn();
    assert_eq!(checks.versions[..2], [first.version.clone(), second]);
    assert!(
        checks.versions.len() > 2,
        "round 2 published: {:?}",
        checks.versions
    );
    println!(
        "{} snapshots current in turn, read {} times",
        checks.versions.len(),
        checks.reads
    );
    let report = load.finish(&last).await;
    report.assert_all_served();
    report.assert_served_in_sequence(&last);
    let rows = stack.log_rows().await;
    let ran: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.trigger.as_str(), r.status.as_str()))
        .collect();
    println!("refresh log: {ran:?}");
    assert_one_refresh_at_a_time(&rows);
}
