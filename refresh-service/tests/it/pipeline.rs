//! The refresh pipeline: document, active-offer rule, ordering, unchanged detection,
//! atomic switch, locking and failure handling.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use serde_json::Value;

use refresh_service::pipeline::attempt::{Outcome, refresh};
use refresh_service::pipeline::recorded::{RefreshRun, run_recorded};
use shared::events::{Event, RefreshStatus, Trigger};
use shared::snapshot::SnapshotMeta;
use shared::store::{Bodies, StoreError};

use crate::helpers::*;

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn decode(meta: &SnapshotMeta, bodies: &Bodies) -> Value {
    let from_gzip = gunzip(&bodies.gzip);
    let from_zstd = zstd::decode_all(&bodies.zstd[..]).unwrap();
    assert_eq!(
        from_gzip, from_zstd,
        "gzip and zstd bodies decode to the same document"
    );
    assert!(
        meta.json_sha256.is_some(),
        "the document's SHA-256 is recorded"
    );
    meta.verify_document(&from_zstd).unwrap();
    serde_json::from_slice(&from_zstd).unwrap()
}

async fn published(env: &TestEnv) -> SnapshotMeta {
    match refresh(&env.ctx).await.unwrap() {
        Outcome::Published(meta) => meta,
        other => panic!("expected a published snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn refresh_publishes_a_document_both_encodings_decode_to() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 300).await;
    let meta = published(&env).await;
    let (current, bodies) = env.ctx.store.load_current().await.unwrap().unwrap();
    assert_eq!(current, meta);

    let doc = decode(&meta, &bodies);
    let offers = doc["ofertas"].as_array().unwrap();
    assert_eq!(offers.len(), 300);
    assert_eq!(doc["count"], 300);
    assert_eq!(doc["version"], meta.version.as_str());
    assert_eq!(doc["generated_at"], meta.generated_at_string().as_str());
    assert!(meta.generated_at_string().ends_with('Z') && meta.generated_at_string().len() == 24);
    assert_eq!(meta.etag, format!("\"{}\"", meta.version));
    let keys: Vec<&str> = offers[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "merchant_id",
        "merchant_name",
        "title",
        "description",
        "category",
        "price",
        "original_price",
        "discount_pct",
        "currency",
        "image_url",
        "starts_at",
        "ends_at",
        "score",
    ] {
        assert!(keys.contains(&key), "offer lacks {key}: {keys:?}");
    }
}

#[tokio::test]
async fn money_is_a_decimal_string_and_discount_is_derived() {
    let env = TestEnv::new().await;
    let mut offer = Offer::live(1); // price 3.99, no original price
    offer.price = "3.99";
    offer.original_price = None;
    offer.insert(&env.db.pool).await;
    let mut discounted = Offer::live(2);
    discounted.price = "12.50";
    discounted.original_price = Some("20.00");
    discounted.insert(&env.db.pool).await;
    let mut whole = Offer::live(3);
    whole.price = "149";
    whole.original_price = Some("100");
    whole.insert(&env.db.pool).await;

    let meta = published(&env).await;
    let doc = decode(&meta, &env.ctx.store.bodies(&meta).await.unwrap());
    let by_id = |id: i64| {
        doc["ofertas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(1)["price"], "3.99");
    assert_eq!(by_id(1)["original_price"], Value::Null);
    assert_eq!(by_id(1)["discount_pct"], Value::Null);
    assert_eq!(by_id(2)["price"], "12.50");
    assert_eq!(by_id(2)["original_price"], "20.00");
    assert_eq!(by_id(2)["discount_pct"], 37.5);
    assert_eq!(by_id(2)["currency"], "USD");
    assert_eq!(by_id(3)["price"], "149.00");
    assert_eq!(
        by_id(3)["discount_pct"],
        0.0,
        "a higher price than the original is no discount"
    );
}

#[tokio::test]
async fn active_offer_rule_holds_at_its_edges() {
    let env = TestEnv::new().await;
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap();
    let at = |id, starts: DateTime<Utc>, ends: Option<DateTime<Utc>>, active| Offer {
        starts_at: starts,
        ends_at: ends,
        active,
        updated_at: now - Span::days(1),
        ..Offer::live(id)
    };
    let micro = Span::microseconds(1);
    for offer in [
        at(1, now, None, true),                                      // starts now: in
        at(2, now - Span::days(1), Some(now), true),                 // ends now: out
        at(3, now + micro, None, true),                              // starts just after now: out
        at(4, now - Span::days(1), Some(now + micro), true),         // ends just after now: in
        at(5, now - Span::days(1), None, true),                      // open-ended: in
        at(6, now - Span::days(1), None, false),                     // inactive: out
        at(7, now - Span::days(9), Some(now - Span::days(2)), true), // expired: out
        at(8, now - Span::days(1), Some(now + Span::days(3)), true), // running: in
    ] {
        offer.insert(&env.db.pool).await;
    }
    let ctx = TestEnv::with_clock(&env.settings, now).await;
    let Outcome::Published(meta) = refresh(&ctx).await.unwrap() else {
        panic!("expected a snapshot")
    };
    let doc = decode(&meta, &ctx.store.bodies(&meta).await.unwrap());
    let ids: BTreeSet<i64> = doc["ofertas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([1, 4, 5, 8]));
    assert_eq!(meta.count, 4);
}

#[tokio::test]
async fn offers_are_ordered_by_score_descending_then_id() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 200).await;
    // Identical twins score identically: their order must come from the id.
    let twin = Offer::live(1000);
    twin.insert(&env.db.pool).await;
    Offer {
        id: 999,
        ..twin.clone()
    }
    .insert(&env.db.pool)
    .await;
    Offer { id: 1001, ..twin }.insert(&env.db.pool).await;

    let meta = published(&env).await;
    let doc = decode(&meta, &env.ctx.store.bodies(&meta).await.unwrap());
    let ranked: Vec<(f64, i64)> = doc["ofertas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["score"].as_f64().unwrap(), o["id"].as_i64().unwrap()))
        .collect();
    for pair in ranked.windows(2) {
        let ((s1, id1), (s2, id2)) = (pair[0], pair[1]);
        assert!(
            s1 > s2 || (s1 == s2 && id1 < id2),
            "out of order: {:?} before {:?}",
            pair[0],
            pair[1]
        );
    }
    let twins: Vec<i64> = ranked
        .iter()
        .filter(|(_, id)| [999, 1000, 1001].contains(id))
        .map(|&(_, id)| id)
        .collect();
    assert_eq!(twins, vec![999, 1000, 1001]);
    assert!(ranked.iter().all(|&(s, _)| (0.0..=1.0).contains(&s)));
    assert!(
        ranked.first().unwrap().0 > ranked.last().unwrap().0,
        "scores vary"
    );
}

#[tokio::test]
async fn unchanged_offers_publish_nothing_new() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 50).await;
    let first = run_recorded(&env.ctx, &RefreshRun::new(Trigger::from("test"))).await;
    assert_eq!(first.status, RefreshStatus::Success);

    let mut events = Events::subscribe(&env.prefix.0).await;
    let second = run_recorded(&env.ctx, &RefreshRun::new(Trigger::from("test"))).await;
    assert_eq!(second.status, RefreshStatus::Unchanged);
    assert_eq!(second.etag, first.etag);
    assert_eq!(second.version, first.version);
    // The outcome is also kept, for a waiter that missed the event.
    let kept = env
        .ctx
        .store
        .recall_outcome(second.request_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.outcome().map(|o| o.status),
        Some(RefreshStatus::Unchanged)
    );
    // A refresh announces its snapshot before its outcome, on one connection: nothing
    // announced before the outcome means nothing announced.
    let seen = events
        .up_to(
            Duration::from_secs(5),
            |e| matches!(e, Event::RefreshCompleted(o) if o.status == RefreshStatus::Unchanged),
        )
        .await;
    assert!(
        !seen.iter().any(|e| matches!(e, Event::SnapshotUpdated(_))),
        "{seen:?}"
    );
    assert_eq!(
        env.ctx.store.current_meta().await.unwrap().unwrap().etag,
        first.etag.clone().unwrap()
    );

    change(&env.db.pool, 7).await;
    let third = run_recorded(&env.ctx, &RefreshRun::new(Trigger::from("test"))).await;
    assert_eq!(third.status, RefreshStatus::Success);
    assert_ne!(third.etag, first.etag);
    let updated = events
        .next_matching(Duration::from_secs(2), |e| {
            matches!(e, Event::SnapshotUpdated(_))
        })
        .await;
    let Event::SnapshotUpdated(updated) = updated else {
        unreachable!()
    };
    assert_eq!(Some(updated.etag), third.etag);

    let statuses: Vec<String> = log_rows(&env.db.pool)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(statuses, ["success", "unchanged", "success"]);
}

#[tokio::test]
async fn readers_never_see_a_torn_snapshot_across_50_refreshes() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 100).await;
    published(&env).await;

    let store = env.ctx.store.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut reads, mut vanished) = (0u32, 0u32);
            while !stop.is_cancelled() {
                match store.load_current().await {
                    Ok(Some((meta, bodies))) => {
                        let doc: Value =
                            serde_json::from_slice(&zstd::decode_all(&bodies.zstd[..]).unwrap())
                                .unwrap();
                        assert_eq!(
                            doc["version"],
                            meta.version.as_str(),
                            "body of another version"
                        );
                        assert_eq!(doc["count"], meta.count);
                        assert_eq!(
                            gunzip(&bodies.gzip),
                            zstd::decode_all(&bodies.zstd[..]).unwrap()
                        );
                        reads += 1;
                    }
                    Ok(None) => panic!("current snapshot disappeared"),
                    // A version retired between reading `current` and its bodies is not a torn
                    // read: the reader simply reads `current` again.
                    Err(StoreError::Missing(_)) => vanished += 1,
                    Err(e) => panic!("mismatched snapshot: {e}"),
                }
            }
            (reads, vanished)
        }
    });
    let mut versions = BTreeSet::new();
    for i in 0..50 {
        change(&env.db.pool, 1 + i % 100).await;
        versions.insert(published(&env).await.version);
    }
    stop.cancel();
    let (reads, _vanished) = reader.await.unwrap();
    assert_eq!(versions.len(), 50);
    assert!(reads > 50, "the reader ran throughout ({reads} reads)");
    let retained = env.ctx.store.versions().await.unwrap();
    assert_eq!(retained.len(), shared::store::RETAINED_VERSIONS);
    assert_eq!(
        retained[0],
        env.ctx.store.current_meta().await.unwrap().unwrap()
    );
}

#[tokio::test]
async fn a_refresh_skips_while_another_holds_the_lock() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 20).await;
    let blocker = block_offers_table(&env.db.url).await;
    let ctx = env.ctx.clone();
    let first =
        tokio::spawn(
            async move { run_recorded(&ctx, &RefreshRun::new(Trigger::from("first"))).await },
        );
    eventually(
        Duration::from_secs(10),
        "the first refresh to take the lock",
        || lock_held(&env.ctx.store),
    )
    .await;

    let second = run_recorded(&env.ctx, &RefreshRun::new(Trigger::from("second"))).await;
    assert_eq!(second.status, RefreshStatus::Skipped);
    assert!(
        second
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("holds the lock"),
        "{second:?}"
    );
    drop(blocker);
    assert_eq!(first.await.unwrap().status, RefreshStatus::Success);
    assert!(!lock_held(&env.ctx.store).await, "the lock is released");

    let rows = log_rows(&env.db.pool).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.0 == "skipped" && r.1 == "second"));
    assert!(rows.iter().any(|r| r.0 == "success" && r.1 == "first"));
}

#[tokio::test]
async fn an_older_refresh_cannot_replace_a_newer_snapshot() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 20).await;
    let newer = published(&env).await;
    // A slow refresh that took its sequence number before `newer` finishes only now.
    let mut stale = newer.clone();
    stale.seq = newer.seq - 1;
    stale.version = format!("{}-stale", stale.seq);
    let bodies = env.ctx.store.bodies(&newer).await.unwrap();
    let switch = env.ctx.store.publish(&stale, &bodies).await.unwrap();
    assert_eq!(switch, shared::store::Switch::Superseded(newer.seq));
    assert_eq!(env.ctx.store.current_meta().await.unwrap().unwrap(), newer);
}

#[tokio::test]
async fn a_postgres_failure_mid_refresh_keeps_the_snapshot_and_is_logged_when_back() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 30).await;
    published(&env).await;
    let before = env.ctx.store.current_meta().await.unwrap().unwrap();
    change(&env.db.pool, 3).await;

    // The refresher reaches Postgres through a proxy the test can cut.
    let server = postgres_host_port();
    let proxy = Proxy::start(server.parse().unwrap()).await;
    let via_proxy = env.db.url.replace(&server, &proxy.addr.to_string());
    let ctx = context_for(&settings(&via_proxy, &env.prefix.0)).await;
    let blocker = block_offers_table(&env.db.url).await;
    let run = tokio::spawn(async move {
        let outcome = run_recorded(&ctx, &RefreshRun::new(Trigger::from("test"))).await;
        (outcome, ctx)
    });
    eventually(
        Duration::from_secs(10),
        "the refresh's query to wait for the locked table",
        || queries_waiting_for_a_lock(&env.db.pool),
    )
    .await;
    assert!(
        lock_held(&env.ctx.store).await,
        "the refresh holds its lock"
    );
    proxy.cut();
    drop(blocker);
    let (outcome, ctx) = run.await.unwrap();
    assert_eq!(outcome.status, RefreshStatus::Failed);
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("database"),
        "{outcome:?}"
    );

    let (after, bodies) = env.ctx.store.load_current().await.unwrap().unwrap();
    assert_eq!(after, before, "the current snapshot is untouched");
    decode(&after, &bodies);
    assert!(
        log_rows(&env.db.pool).await.iter().all(|r| r.0 != "failed"),
        "not writable while Postgres is away"
    );
    assert_eq!(
        ctx.log.flush().await,
        1,
        "the failed row waits for Postgres"
    );

    proxy.restore();
    assert_eq!(ctx.log.flush().await, 0);
    let rows = log_rows(&env.db.pool).await;
    let failed: Vec<_> = rows.iter().filter(|r| r.0 == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert!(
        failed[0]
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("database")
    );
    assert_eq!(
        run_recorded(&ctx, &RefreshRun::new(Trigger::from("test")))
            .await
            .status,
        RefreshStatus::Success
    );
}

#[tokio::test]
async fn rollback_restores_the_previous_version_and_announces_it() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 10).await;
    let first = published(&env).await;
    change(&env.db.pool, 4).await;
    let second = published(&env).await;
    let listed = refresh_service::commands::rollback::list(&env.ctx.store)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(c, m)| (*c, m.version.clone()))
            .collect::<Vec<_>>(),
        [
            (true, second.version.clone()),
            (false, first.version.clone())
        ]
    );

    let mut events = Events::subscribe(&env.prefix.0).await;
    let restored = refresh_service::commands::rollback::rollback(&env.ctx, None)
        .await
        .unwrap();
    assert_eq!(restored, first);
    let (current, bodies) = env.ctx.store.load_current().await.unwrap().unwrap();
    assert_eq!(current, first);
    decode(&current, &bodies);
    let event = events
        .next_matching(Duration::from_secs(2), |e| {
            matches!(e, Event::SnapshotUpdated(_))
        })
        .await;
    assert!(matches!(event, Event::SnapshotUpdated(u) if u.version == first.version));
    assert!(
        log_rows(&env.db.pool)
            .await
            .iter()
            .any(|r| r.1 == "rollback" && r.0 == "success")
    );

    // Rolling forward by name works too; the current version cannot be "restored".
    assert_eq!(
        refresh_service::commands::rollback::rollback(&env.ctx, Some(&second.version))
            .await
            .unwrap(),
        second
    );
    assert!(
        refresh_service::commands::rollback::rollback(&env.ctx, Some(&second.version))
            .await
            .is_err()
    );
    assert!(
        refresh_service::commands::rollback::rollback(&env.ctx, Some("0-nope"))
            .await
            .is_err()
    );
    // A refresh after a rollback still publishes (its sequence number is newer).
    change(&env.db.pool, 5).await;
    assert!(published(&env).await.seq > second.seq);
}

#[tokio::test]
async fn offers_over_the_held_json_limit_are_read_again_into_the_same_document() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 300).await;
    let now = Utc::now();
    // Default limit: all held; 0: nothing held; 5,000 bytes: dropped part-way through
    // the first read. Same offers, same clock: the same document.
    let mut documents = Vec::new();
    for limit in [
        refresh_service::pipeline::context::HELD_JSON_LIMIT,
        0,
        5_000,
    ] {
        let prefix = TestPrefix::new();
        let mut ctx = TestEnv::with_clock(&settings(&env.db.url, &prefix.0), now).await;
        ctx.held_json_limit = limit;
        let meta = match refresh(&ctx).await.unwrap() {
            Outcome::Published(meta) => meta,
            other => panic!("expected a published snapshot, got {other:?}"),
        };
        let (_, bodies) = ctx.store.load_current().await.unwrap().unwrap();
        let document = decode(&meta, &bodies);
        assert_eq!(meta.count, 300, "limit {limit}");
        documents.push((limit, meta, document));
    }
    let (_, held, held_doc) = &documents[0];
    for (limit, meta, document) in &documents[1..] {
        assert_eq!(meta.content_hash, held.content_hash, "limit {limit}");
        assert_eq!(document["ofertas"], held_doc["ofertas"], "limit {limit}");
    }
}

#[tokio::test]
async fn a_redis_that_lost_its_data_never_gets_a_version_id_again() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 20).await;
    let before = published(&env).await;
    // Redis restarted empty: counter and pointer gone, same offers.
    let keys = env.ctx.store.keys();
    let _: i64 =
        fred::prelude::KeysInterface::del(env.ctx.store.client(), vec![keys.seq(), keys.current()])
            .await
            .unwrap();
    // Sequence numbers are never below the refresher's clock in milliseconds: once the
    // clock has passed the lost number, the next one is higher.
    eventually(
        Duration::from_secs(1),
        "the clock to pass the lost sequence number",
        || async { Utc::now().timestamp_millis() > before.seq as i64 },
    )
    .await;
    let after = published(&env).await;
    assert_eq!(after.content_hash, before.content_hash);
    assert_ne!(after.version, before.version);
    assert!(after.seq > before.seq, "{} then {}", before.seq, after.seq);
}

/// Whether a query on `pool`'s database waits for a lock another session holds.
async fn queries_waiting_for_a_lock(pool: &sqlx::PgPool) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    waiting > 0
}
