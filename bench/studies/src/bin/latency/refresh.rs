//! The `refresh` probe: refresh request published → `snapshot.updated` received, next to
//! the refresh's own `execution_time_ms`, one CSV row per run and a summary.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Args;
use crate::bench::Bench;
use crate::stats::{median, ms, percentile, sorted};

pub(crate) async fn refresh_bench(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let mut csv = String::from("run,end_to_end_ms,execution_time_ms,outside_ms,version\n");
    let (mut total, mut inside, mut deltas) = (Vec::new(), Vec::new(), Vec::new());
    let deltas_within = Duration::from_millis(args.deltas_timeout_ms);
    for run in 1..=args.runs {
        let r = bench.refresh(run).await?;
        if !deltas_within.is_zero() {
            let ready = bench
                .deltas_ready(&r.updated.version, deltas_within)
                .await?;
            let ready = ready.ok_or_else(|| {
                anyhow::anyhow!(
                    "no delta index for {} within {deltas_within:?} (use --deltas-timeout-ms 0 \
                     for a refresher that builds none)",
                    r.updated.version
                )
            })?;
            deltas.push(ready.as_secs_f64() * 1000.0);
        }
        let e2e = ms(r.requested, r.updated_at);
        writeln!(
            csv,
            "{run},{e2e:.3},{},{:.3},{}",
            r.execution_time_ms,
            e2e - r.execution_time_ms as f64,
            r.updated.version
        )?;
        total.push(e2e);
        inside.push(r.execution_time_ms as f64);
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let (total, inside, deltas) = (sorted(total), sorted(inside), sorted(deltas));
    println!(
        "refresh end to end (PUBLISH {} → snapshot.updated received), {} runs: \
         median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
        bench.keys.refresh_channel(),
        args.runs,
        median(&total),
        percentile(&total, 90.0),
        total[0],
        total[total.len() - 1]
    );
    println!(
        "  of which inside the refresh (outcome's execution_time_ms, lock to switch): \
         median {} ms, p90 {} ms",
        median(&inside),
        percentile(&inside, 90.0)
    );
    if !deltas.is_empty() {
        println!(
            "  deltas of each version ready (waited for before the next run) after \
             snapshot.updated: median {:.0} ms, max {:.0} ms",
            median(&deltas),
            deltas[deltas.len() - 1]
        );
    }
    Ok(csv)
}
