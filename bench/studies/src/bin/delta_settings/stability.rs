//! The `stability` subcommand: for each pair, clock and score precision, the delta between
//! the re-ranked documents and the fidelity of the later one (Markdown); then what reading
//! the clock hours off the refresh time costs the ranking.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail};
use clap::ValueEnum as _;

use refresh_service::pipeline::rank::Ranker;
use refresh_service::settings::RefreshSettings;

use crate::delta::{build, patch_from_limit, plain_bodies, recommended};
use crate::fidelity::fidelity;
use crate::rerank::{Clock, Snapshot, Variant, model_scores, ranker_and_zone, rounded};

/// Unchanged offers (same record but for the score, same `updated_at`) of the two
/// documents, and how many of them are byte-identical, score included, in the variants.
fn unchanged(
    old: &Snapshot,
    old_variant: &Variant,
    new: &Snapshot,
    new_variant: &Variant,
) -> (usize, usize) {
    let before: HashMap<i64, usize> = (0..old.document.offers.len())
        .map(|i| (old.document.offers[i].id, i))
        .collect();
    let (mut same, mut identical) = (0, 0);
    for (j, offer) in new.document.offers.iter().enumerate() {
        let Some(&i) = before.get(&offer.id) else {
            continue;
        };
        if old.document.fields(i) == new.document.fields(j)
            && old.updated_at.get(&offer.id) == new.updated_at.get(&offer.id)
        {
            same += 1;
            if old_variant.scores[i].to_bits() == new_variant.scores[j].to_bits() {
                identical += 1;
            }
        }
    }
    (same, identical)
}

pub(crate) fn stability(
    settings: &RefreshSettings,
    pairs: &[String],
    decimals: &[i32],
    clocks: &[Clock],
    offsets: &[i64],
    zstd_cli: &str,
) -> anyhow::Result<()> {
    let (ranker, zone) = ranker_and_zone(settings)?;
    let mut first_new = None;
    println!(
        "delta: the recommended setting (up to 8 MiB: level 19, the largest window a client \
         accepts, LDM on); fidelity of the later document against the exact model order (raw \
         scores at its refresh time, ties by id); clock anchors in {zone}\n"
    );
    println!(
        "| pair | clock | decimals | unchanged offers byte-identical | dcz bytes | limit | gzip-6 \
         | zstd-7 | gzip ÷ dcz | zstd ÷ dcz | dcz ÷ limit | Kendall τ | top-100 | top-1000 \
         | top-100 max shift | max score error |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for pair in pairs.chunks(3) {
        let [label, old, new] = pair else {
            bail!("--pair takes LABEL OLD NEW");
        };
        let old = Snapshot::load(&ranker, Path::new(old), zone)?;
        let new = Snapshot::load(&ranker, Path::new(new), zone)?;
        for &clock in clocks {
            for &places in decimals {
                let old_variant = old.variant(&ranker, clock, places, zone)?;
                let new_variant = new.variant(&ranker, clock, places, zone)?;
                let (same, identical) = unchanged(&old, &old_variant, &new, &new_variant);
                let setting = recommended(old_variant.text.len());
                let built = build(&old_variant.text, &new_variant.text, setting, 1)?
                    .map_err(|why| anyhow!("a client refuses the recommended setting: {why}"))?;
                let (limit, _) = patch_from_limit(zstd_cli, &old_variant.text, &new_variant.text)?;
                let (gzip, zstd) = plain_bodies(&new_variant.text)?;
                let f = fidelity(
                    &new.document,
                    &new.exact,
                    &new_variant.order,
                    &new_variant.scores,
                );
                let dcz = built.dcz_bytes as f64;
                println!(
                    "| {label} | {} | {places} | {identical} of {same} | {} | {limit} | {gzip} \
                     | {zstd} | {:.1} \
                     | {:.1} | {:.2} | {:.4} | {:.0} % | {:.1} % | {} | {:.4} |",
                    clock
                        .to_possible_value()
                        .map_or("?".into(), |v| v.get_name().to_owned()),
                    built.dcz_bytes,
                    gzip as f64 / dcz,
                    zstd as f64 / dcz,
                    dcz / limit as f64,
                    f.kendall_tau,
                    f.top100 * 100.0,
                    f.top1000 * 100.0,
                    f.top100_shift,
                    f.max_score_error,
                );
            }
        }
        first_new.get_or_insert((label.clone(), new));
    }
    if let Some((label, new)) = first_new.filter(|_| !offsets.is_empty()) {
        offset_fidelity(&ranker, &label, &new, offsets)?;
    }
    Ok(())
}

/// Fidelity of `snapshot` (six decimals) with the clock-dependent features read `offsets`
/// hours off its refresh time: what anchoring them costs, whatever the anchor.
fn offset_fidelity(
    ranker: &Ranker,
    label: &str,
    snapshot: &Snapshot,
    offsets: &[i64],
) -> anyhow::Result<()> {
    let refresh = snapshot.document.generated_at;
    println!(
        "\nclock read off the refresh time ({label}, later document, refreshed {refresh}; \
         6 decimals)\n"
    );
    println!(
        "| offset (h) | Kendall τ | top-100 | top-1000 | top-100 max shift | max score error |"
    );
    println!("|---|---|---|---|---|---|");
    for &hours in offsets {
        let at = refresh + chrono::TimeDelta::hours(hours);
        let raw = model_scores(ranker, &snapshot.document, &snapshot.updated_at, at)?;
        let scores: Vec<f64> = raw.iter().map(|&s| rounded(s, 6)).collect();
        let order = snapshot.document.ranked(&scores);
        let f = fidelity(&snapshot.document, &snapshot.exact, &order, &scores);
        println!(
            "| {hours:+} | {:.4} | {:.0} % | {:.1} % | {} | {:.4} |",
            f.kendall_tau,
            f.top100 * 100.0,
            f.top1000 * 100.0,
            f.top100_shift,
            f.max_score_error
        );
    }
    Ok(())
}
