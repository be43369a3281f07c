//! Measures gzip and zstd levels on the current snapshot document (run by
//! `bench/refresh.sh`): size, ratio to gzip-6 and median compression time of 7 runs.
//!
//! Reads the snapshot from Redis (`REDIS_URL`, `OFERTASWS_PREFIX`).

use std::io::Write;
use std::time::Instant;

use clap::Parser;
use shared::config::RedisSettings;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    redis: RedisSettings,
}

fn median_ms(mut run: impl FnMut() -> usize) -> (usize, f64) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..7 {
        let started = Instant::now();
        size = run();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (size, times[times.len() / 2])
}

fn gzip(document: &[u8], level: u32) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder
        .write_all(document)
        .map(|()| encoder.finish().map_or(0, |b| b.len()))
        .unwrap_or(0)
}

fn zstd(document: &[u8], level: i32) -> usize {
    zstd::bulk::compress(document, level).map_or(0, |b| b.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = refresh_service::pipeline::context::connect_store(&args.redis).await?;
    let (meta, bodies) = store
        .load_current()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no current snapshot"))?;
    let document = zstd::bulk::decompress(&bodies.zstd, meta.json_bytes as usize)?;
    println!(
        "document: {} offers, {} bytes of JSON",
        meta.count,
        document.len()
    );
    let (gzip6, _) = median_ms(|| gzip(&document, 6));
    println!(
        "{:<8} {:>5} {:>10} {:>9} {:>9}",
        "codec", "level", "bytes", "÷ gzip-6", "ms"
    );
    for level in [1, 3, 6, 9] {
        let (size, ms) = median_ms(|| gzip(&document, level));
        println!(
            "{:<8} {:>5} {:>10} {:>9.3} {:>9.2}",
            "gzip",
            level,
            size,
            size as f64 / gzip6 as f64,
            ms
        );
    }
    for level in [3, 5, 6, 7, 8, 9, 12, 19] {
        let (size, ms) = median_ms(|| zstd(&document, level));
        println!(
            "{:<8} {:>5} {:>10} {:>9.3} {:>9.2}",
            "zstd",
            level,
            size,
            size as f64 / gzip6 as f64,
            ms
        );
    }
    Ok(())
}
