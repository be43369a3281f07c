//! The `refresh` probe: refresh request published → `snapshot.updated` received, next to
//! the refresh's own `execution_time_ms`, one CSV row per run and a summary.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Args;
use crate::bench::Bench;
use crate::stats::{median, ms, percentile, sorted};

pub(crate) async fn refresh_bench(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let mut csv = String::from("run,end_to_end_ms,execution_time_ms,outside_ms,version\n");
    let (mut total, mut inside) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let r = bench.refresh(run).await?;
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
    let (total, inside) = (sorted(total), sorted(inside));
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
    Ok(csv)
}
