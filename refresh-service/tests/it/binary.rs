//! The compiled `refresh-service` binary: configuration errors, `once`, `trigger`, `migrate`.

use std::time::Duration;

use fred::prelude::{EventInterface, PubsubInterface};
use shared::events::{Event, RefreshOutcome, RefreshRequest, RefreshStatus};
use shared::store::SnapshotStore;

use crate::helpers::*;

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_line_naming_the_variable() {
    let base = settings(
        "postgres://postgres@127.0.0.1:5432/none",
        "ofertasws_test_cfg",
    );
    for (variable, value) in [
        ("REFRESH_SCHEDULE", "every morning"),
        ("REFRESH_TIMEZONE", "Mars/Olympus_Mons"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("RANKER_MODEL", "/nonexistent/model.onnx"),
        ("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
        ("OFERTASWS_PREFIX", "has space"),
        ("REFRESH_METRICS_BIND", "port nine thousand"),
    ] {
        let subcommand = if variable == "REFRESH_METRICS_BIND" {
            "run"
        } else {
            "once"
        };
        let (code, _, stderr) = output(command(&base, &[subcommand]).env(variable, value)).await;
        assert_ne!(code, 0, "{variable}={value} must fail");
        assert!(stderr.contains(variable), "{variable}: {stderr}");
        assert!(!stderr.contains("panicked"), "{variable}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{variable}: one line, got {stderr}"
        );
    }
}

#[tokio::test]
async fn once_refreshes_and_a_concurrent_once_is_skipped() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 25).await;
    let blocker = block_offers_table(&env.db.url).await;
    let first = env.command(&["once"]).output();
    let first = tokio::spawn(first);
    eventually(
        Duration::from_secs(20),
        "the first once to take the lock",
        || lock_held(&env.ctx.store),
    )
    .await;

    let (code, stdout, stderr) =
        output(&mut env.command(&["once", "--trigger", "cronjob-b"])).await;
    assert_eq!(code, 0, "a skipped once exits 0: {stderr}");
    assert!(stderr.contains("skipped"), "{stderr}");
    assert!(stdout.contains(r#""status":"skipped""#), "{stdout}");
    drop(blocker);

    let first = first.await.unwrap().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains(r#""status":"success""#));
    let rows = log_rows(&env.db.pool).await;
    let mut seen: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    seen.sort();
    assert_eq!(seen, [("skipped", "cronjob-b"), ("success", "cronjob")]);

    // `versions` lists it, current, with the start of its document's SHA-256.
    let current = env.ctx.store.current_meta().await.unwrap().unwrap();
    let sha256 = current.json_sha256.unwrap().to_string();
    let (code, stdout, stderr) = output(&mut env.command(&["versions"])).await;
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with('*'))
        .unwrap_or_default();
    assert!(
        line.contains(&current.version) && line.contains(&sha256[..12]),
        "{stdout}"
    );
}

#[tokio::test]
async fn once_fails_non_zero_when_postgres_is_unreachable() {
    let env = TestEnv::new().await;
    let mut unreachable = env.settings.clone();
    unreachable.database_url = "postgres://postgres@127.0.0.1:1/ofertasws"
        .to_owned()
        .into();
    let (code, stdout, _) = output(&mut command(&unreachable, &["once"])).await;
    assert_eq!(code, 1);
    assert!(stdout.contains(r#""status":"failed""#), "{stdout}");
    assert!(env.ctx.store.current_meta().await.unwrap().is_none());
}

#[tokio::test]
async fn trigger_says_when_no_refresher_listens_and_waits_for_the_outcome_otherwise() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 5).await;
    let (code, _, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--timeout", "5"])).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("no refresh-service is subscribed"),
        "{stderr}"
    );

    // With the in-process schedule on (it must not delay shutdown).
    let status = format!("http://127.0.0.1:{}", free_port());
    let mut daemon = env
        .command(&["run"])
        .env("REFRESH_SCHEDULE", "0 0 10,15 * * *")
        .env("REFRESH_METRICS_BIND", status.trim_start_matches("http://"))
        .spawn()
        .unwrap();
    let mut events = Events::subscribe(&env.prefix.0).await;
    events
        .next_matching(
            Duration::from_secs(30),
            |e| matches!(e, Event::RefreshCompleted(o) if o.trigger == "startup"),
        )
        .await;
    change(&env.db.pool, 2).await;
    let (code, stdout, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--reason", "test"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(r#""type":"refresh.completed""#)
            && stdout.contains(r#""status":"success""#),
        "{stdout}"
    );

    let (code, stdout, _) = output(&mut env.command(&["trigger"])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains(r#""status":"accepted""#), "{stdout}");

    // The status port: probes and the refresh metrics (start-up and triggered refresh).
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("{status}{path}")).send();
        async move {
            let response = request.await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/health").await.0, 200);
    let (code, body) = get("/ready").await;
    assert_eq!(code, 200, "{body}");
    let (code, metrics) = get("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "ofertasws_refresh_outcomes_total{outcome=\"success\"} 2\n",
        "ofertasws_refresh_duration_seconds_count{stage=\"compress\"} 2\n",
        "ofertasws_refresh_consecutive_failures 0\n",
        "ofertasws_refresh_snapshot_offers 5\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }

    // SIGTERM: the daemon stops cleanly.
    let pid = daemon.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Listens on `P:refresh` in place of a daemon and answers the requests, in turn, with
/// the statuses in `answers` (`None`: no answer), keeping each outcome in Redis without
/// publishing its event, as if the event were lost while the waiter's subscription
/// reconnected.
async fn stand_in_keeping_outcomes_only(
    store: SnapshotStore,
    answers: Vec<Option<RefreshStatus>>,
) -> tokio::task::JoinHandle<()> {
    let settings = shared::config::RedisSettings::new(redis_url(), store.keys().prefix());
    let subscriber = shared::redis::subscriber(&settings, shared::redis::Start::FailFast).unwrap();
    shared::redis::connect(&subscriber).await.unwrap();
    let mut requests = subscriber.message_rx();
    subscriber
        .subscribe(store.keys().refresh_channel())
        .await
        .unwrap();
    tokio::spawn(async move {
        let _keep = subscriber;
        for answer in answers {
            let message = requests.recv().await.unwrap();
            let request = RefreshRequest::parse(message.value.as_bytes().unwrap()).unwrap();
            let Some(status) = answer else { continue };
            let id = request.request_id.clone().unwrap();
            let event = Event::for_outcome(RefreshOutcome {
                request_id: Some(id.clone()),
                error: (status == RefreshStatus::Failed).then(|| "database: refused".to_owned()),
                ..RefreshOutcome::new(request.trigger(), status)
            });
            store.remember_outcome(&id, &event).await.unwrap();
        }
    })
}

#[tokio::test]
async fn trigger_wait_finds_an_outcome_whose_event_was_lost_and_exits_by_its_status() {
    let env = TestEnv::new().await;
    let answers = vec![
        Some(RefreshStatus::Unchanged),
        Some(RefreshStatus::Failed),
        None,
    ];
    let refresher = stand_in_keeping_outcomes_only(env.ctx.store.clone(), answers).await;

    let (code, stdout, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--timeout", "20"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(r#""type":"refresh.completed""#)
            && stdout.contains(r#""status":"unchanged""#)
            && stdout.contains(r#""trigger":"ops""#),
        "{stdout}"
    );
    let (code, stdout, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--timeout", "20"])).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains(r#""type":"refresh.failed""#), "{stdout}");
    let (code, stdout, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--timeout", "1"])).await;
    assert_eq!(code, 2, "{stdout} {stderr}");
    assert!(stderr.contains("no outcome for request"), "{stderr}");
    refresher.await.unwrap();
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let name = format!("ofertasws_test_migrate_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", admin_url().rsplit_once('/').unwrap().0);
    let cfg = settings(&url, "unused");
    for _ in 0..2 {
        let (code, _, stderr) = output(&mut command(&cfg, &["migrate"])).await;
        assert_eq!(code, 0, "{stderr}");
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' and table_name like 'oferta%' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tables, ["ofertas", "ofertasws_cache_refresh_log"]);
    pool.close().await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"drop database "{name}" with (force)"#
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
