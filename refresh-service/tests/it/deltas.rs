//! Delta downloads, the refresher's side: deltas from every earlier retained version are
//! built after a version is current, decode to its document, expire with it; and, black
//! box, a client of the running binaries gets `dcz` within the contract's bound.

use std::time::Duration;

use base64::Engine as _;
use sha2::Digest;

use shared::events::Trigger;
use shared::snapshot::{Codec, SnapshotMeta};
use shared::store::{RETAINED_VERSIONS, SnapshotStore};

use refresh_service::pipeline::deltas::build_missing;
use refresh_service::pipeline::recorded::{RefreshRun, run_recorded};

use crate::helpers::*;

/// The identity document of `meta`'s version, from its stored zstd body.
async fn document(store: &SnapshotStore, meta: &SnapshotMeta) -> Vec<u8> {
    let mut zstd = Vec::new();
    store.copy_body(meta, Codec::Zstd, &mut zstd).await.unwrap();
    zstd::decode_all(&zstd[..]).unwrap()
}

fn undcz(dictionary: &[u8], body: &[u8]) -> Vec<u8> {
    let sha = shared::sha256::Sha256::of(dictionary);
    assert_eq!(shared::delta::dcz_dictionary(body), Some(sha));
    let mut decoder =
        zstd::stream::read::Decoder::with_ref_prefix(&body[40..], dictionary).unwrap();
    decoder.window_log_max(27).unwrap();
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut decoded).unwrap();
    decoded
}

/// One refresh after changing offer `n`; returns the new current metadata.
async fn refresh_after_change(env: &TestEnv, n: i64) -> SnapshotMeta {
    change(&env.db.pool, n).await;
    let outcome = run_recorded(&env.ctx, &RefreshRun::new(Trigger::Ops)).await;
    assert_eq!(outcome.status.as_str(), "success", "{outcome:?}");
    env.ctx.store.current_meta().await.unwrap().unwrap()
}

#[tokio::test]
async fn deltas_come_from_every_earlier_retained_version_and_expire_with_theirs() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 200).await;
    let store = &env.ctx.store;
    let mut versions = vec![refresh_after_change(&env, 1).await];
    let first = build_missing(&env.ctx).await.unwrap().unwrap();
    assert!(first.deltas.is_empty(), "nothing to make a delta from yet");

    for n in 2..=(RETAINED_VERSIONS as i64 + 2) {
        versions.push(refresh_after_change(&env, n).await);
        let built = build_missing(&env.ctx).await.unwrap().unwrap();
        let current = versions.last().unwrap();
        let earlier: Vec<&str> = versions
            .iter()
            .rev()
            .skip(1)
            .take(RETAINED_VERSIONS - 1)
            .map(|m| m.version.as_str())
            .collect();
        let bases: Vec<&str> = built.deltas.iter().map(|d| d.version.as_str()).collect();
        assert_eq!(bases, earlier, "newest base first, up to the retained ones");
        assert!(
            build_missing(&env.ctx).await.unwrap().is_none(),
            "built once"
        );

        let target = document(store, current).await;
        for delta in &built.deltas {
            let base = store.version_meta(&delta.version).await.unwrap().unwrap();
            let dictionary = document(store, &base).await;
            assert_eq!(delta.json_sha256, shared::sha256::Sha256::of(&dictionary));
            let mut body = Vec::new();
            store
                .copy_delta(&current.version, delta, &mut body)
                .await
                .unwrap();
            assert!(
                undcz(&dictionary, &body) == target,
                "decodes to the document"
            );
            assert!(delta.dcz_bytes < current.zstd_bytes);
        }
    }
    // The oldest versions were trimmed with their deltas; kept ones expire, the current
    // one does not.
    let keys = store.keys();
    let gone = &versions[0].version;
    for key in [
        keys.version_dcz(&versions[1].version),
        keys.version_deltas(gone),
    ] {
        let exists: i64 = fred::prelude::KeysInterface::exists(store.client(), &key)
            .await
            .unwrap();
        assert_eq!(exists, 0, "{key}");
    }
    let previous = &versions[versions.len() - 2].version;
    let current = &versions[versions.len() - 1].version;
    for (version, expires) in [(previous, true), (current, false)] {
        for key in [keys.version_dcz(version), keys.version_deltas(version)] {
            let ttl: i64 = fred::prelude::KeysInterface::ttl(store.client(), &key)
                .await
                .unwrap();
            assert_eq!(ttl > 0, expires, "{key}: TTL {ttl}");
        }
    }
}

/// The offers of a document as their JSON text, in document order.
fn offers_text(document: &[u8]) -> Vec<String> {
    let parsed: serde_json::Value = serde_json::from_slice(document).unwrap();
    parsed["ofertas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect()
}

#[tokio::test]
async fn an_unchanged_offer_is_the_same_bytes_in_the_same_place_in_both_refreshes_of_a_day() {
    use chrono::TimeZone;
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 300).await;
    let panama = chrono_tz::America::Panama;
    let today = chrono::Utc::now().with_timezone(&panama).date_naive();
    let at = |hour| {
        panama
            .from_local_datetime(&today.and_hms_opt(hour, 0, 0).unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let morning = TestEnv::with_clock(&env.settings, at(10)).await;
    assert_eq!(
        run_recorded(&morning, &RefreshRun::new(Trigger::Schedule))
            .await
            .status
            .as_str(),
        "success"
    );
    let first = env.ctx.store.current_meta().await.unwrap().unwrap();
    change(&env.db.pool, 7).await;
    let afternoon = TestEnv::with_clock(&env.settings, at(15)).await;
    assert_eq!(
        run_recorded(&afternoon, &RefreshRun::new(Trigger::Schedule))
            .await
            .status
            .as_str(),
        "success"
    );
    let second = env.ctx.store.current_meta().await.unwrap().unwrap();

    let (before, after) = (
        offers_text(&document(&env.ctx.store, &first).await),
        offers_text(&document(&env.ctx.store, &second).await),
    );
    let changed = |text: &String| text.contains("\"id\":7,");
    let unchanged = |offers: &[String]| {
        offers
            .iter()
            .filter(|o| !changed(o))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(unchanged(&before).len(), 299);
    assert!(
        unchanged(&before) == unchanged(&after),
        "five hours later, the unchanged offers are the same bytes in the same order"
    );
    for offer in &after {
        let score = serde_json::from_str::<serde_json::Value>(offer).unwrap()["score"].to_string();
        let decimals = score.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 4, "score {score} has more than four decimals");
    }
}

#[tokio::test]
async fn a_client_of_the_running_binaries_gets_a_dcz_delta_after_a_refresh() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 300).await;
    let _refresher = env.command(&["run"]).spawn().unwrap();
    let api = ApiProcess::start(&env).await;
    let http = reqwest::Client::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = http
            .get(format!("{}/api/v4/ofertasws", api.base))
            .bearer_auth(&api.token);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let first = get(vec![]).await.unwrap().bytes().await.unwrap();

    for id in 1..=20 {
        change(&env.db.pool, id).await;
    }
    let (code, stdout, stderr) =
        output(&mut env.command(&["trigger", "--wait", "--timeout", "30"])).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let version = env.ctx.store.current_meta().await.unwrap().unwrap().version;
    eventually(
        Duration::from_secs(60),
        "the API to serve deltas of the new version",
        || {
            let meta = http
                .get(format!("{}/api/v4/ofertasws/meta", api.base))
                .bearer_auth(&api.token)
                .send();
            let version = version.clone();
            async move {
                let Ok(meta) = meta.await else { return false };
                let meta: serde_json::Value = meta.json().await.unwrap_or_default();
                meta["version"] == version.as_str()
                    && meta["deltas"].as_array().is_some_and(|d| !d.is_empty())
            }
        },
    )
    .await;
    let dictionary = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&first))
    );
    let delta = get(vec![
        ("accept-encoding", "dcz, zstd, gzip".into()),
        ("available-dictionary", dictionary),
    ])
    .await
    .unwrap();
    assert_eq!(delta.headers()["content-encoding"], "dcz");
    let body = delta.bytes().await.unwrap();
    let second = get(vec![]).await.unwrap().bytes().await.unwrap();
    assert!(
        undcz(&first, &body) == second,
        "the delta decodes to the document served"
    );
    assert!(
        body.len() * 10 < second.len(),
        "{} of {} bytes",
        body.len(),
        second.len()
    );
}
