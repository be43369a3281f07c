#!/usr/bin/env python3
"""Draws the benchmark figures of the README from the raw output of the bench/ scripts.

    docs/bench-serve.png     requests/s and p99 latency, api-service vs nginx, 200 and 304
                             paths, medians of the rounds (.local/bench/serve.csv, written
                             by bench/serve.sh)
    docs/bench-refresh.png   refresh time and refresher peak RSS vs offer count
                             for 10k, 100k and 1M offers (.local/bench/refresh-N.csv,
                             written by bench/refresh.sh N RUNS)
    docs/bench-soak-rss.png  api-service RSS during the soak, refreshes marked
                             (.local/bench/soak/, written by bench/soak.sh)

A figure whose input is missing is skipped with a message. Runs under its own virtual
environment, .local/venv-bench, which it creates and fills with matplotlib from PyPI on
first use.

Usage: bench/plot.py
"""

import csv
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / ".local" / "bench"
DOCS = ROOT / "docs"
VENV = ROOT / ".local" / "venv-bench"
MATPLOTLIB = "matplotlib==3.10.9"
REFRESH_SIZES = (10_000, 100_000, 1_000_000)


def in_venv() -> None:
    """Re-runs this script with the venv's python, creating the venv when missing."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True).returncode:
        print(f"plot.py: installing {MATPLOTLIB} into {VENV.relative_to(ROOT)}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MATPLOTLIB], check=True)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def percentile(values: list[float], p: float) -> float:
    """Nearest rank, as the bench scripts compute it."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


def label_bars(ax, bars, fmt: str) -> None:
    for bar in bars:
        ax.annotate(
            fmt.format(bar.get_height()),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )


def plot_serve(plt) -> None:
    source = RAW / "serve.csv"
    if not source.exists():
        print(f"skipped serving figure: no {source} (run bench/serve.sh)")
        return
    runs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows(source):
        runs.setdefault((r["path"], r["server"]), []).append(r)
    rounds = max(len(v) for v in runs.values())
    paths = ["200", "304"]
    names = {"200": "200 (gzip body)", "304": "304 (If-None-Match)"}
    servers = [("nginx", "nginx gzip_static", "#9e9e9e"), ("api", "api-service", "#1f77b4")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    width = 0.38
    for ax, column, title, fmt in [
        (axes[0], "requests_per_second", "Throughput (higher is better)", "{:,.0f}"),
        (axes[1], "p99_ms", "p99 latency (lower is better)", "{:.2f} ms"),
    ]:
        for i, (server, label, color) in enumerate(servers):
            values = [statistics.median(float(r[column]) for r in runs[(p, server)]) for p in paths]
            xs = [x + (i - 0.5) * width for x in range(len(paths))]
            label_bars(ax, ax.bar(xs, values, width, label=label, color=color), fmt)
        ax.set_xticks(range(len(paths)), [names[p] for p in paths])
        ax.set_title(title)
        ax.set_ylabel("requests/s" if column == "requests_per_second" else "ms")
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper left")
    fig.suptitle(
        "Serving the 7,000-offer snapshot on loopback (bench/serve.sh: wrk -t2 -c32, 2 cores shared;"
        f" median of {rounds} rounds)"
    )
    fig.tight_layout()
    save(fig, "bench-serve.png")


def plot_refresh(plt) -> None:
    sizes = []
    for offers in REFRESH_SIZES:
        source = RAW / f"refresh-{offers}.csv"
        if not source.exists():
            print(f"refresh figure: no {source} (run bench/refresh.sh {offers} RUNS)")
            continue
        data = rows(source)
        times = [float(r["execution_time_ms"]) for r in data]
        rss = [float(r["peak_rss_kb"]) / 1024 for r in data]
        sizes.append((offers, statistics.median(times), percentile(times, 90), max(rss), len(times)))
    if not sizes:
        print("skipped refresh figure")
        return
    from matplotlib.ticker import FuncFormatter, NullLocator

    offers = [s[0] for s in sizes]

    def short(n: float) -> str:
        return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e3 else f"{n:g}"

    def note(ax, x: float, y: float, text: str) -> None:
        ax.annotate(text, (x, y), xytext=(8, -10), textcoords="offset points", va="top", fontsize=8)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    ax.plot(offers, [s[1] for s in sizes], "o-", color="#1f77b4", label="median")
    ax.plot(offers, [s[2] for s in sizes], "v--", color="#ff7f0e", label="p90")
    for n, median, _, _, runs in sizes:
        note(ax, n, median, f"{median:,.0f} ms ({runs} runs)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_title("Refresh time (execution_time_ms, lock to switch)")
    ax.set_ylabel("ms (log scale)")
    ax = axes[1]
    ax.plot(offers, [s[3] for s in sizes], "s-", color="#2ca02c")
    for n, _, _, rss, _ in sizes:
        note(ax, n, rss, f"{rss:,.0f} MiB")
    ax.set_ylim(0, max(s[3] for s in sizes) * 1.2)
    ax.set_title("Refresher peak RSS (whole process)")
    ax.set_ylabel("MiB")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("live offers (log scale)")
        ax.set_xticks(offers, [short(n) for n in offers])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
        ax.margins(x=0.15, y=0.2)
    axes[0].legend(loc="upper left")
    fig.suptitle("refresh-service once vs offer count (bench/refresh.sh, 2 cores)")
    fig.tight_layout()
    save(fig, "bench-refresh.png")


def plot_soak(plt) -> None:
    source = RAW / "soak" / "rss.csv"
    if not source.exists():
        print(f"skipped soak figure: no {source} (run bench/soak.sh)")
        return
    data = rows(source)
    seconds = [float(r["seconds"]) for r in data]
    rss = [float(r["rss_kb"]) / 1024 for r in data]
    refreshes_file = RAW / "soak" / "refresh-seconds.txt"
    refreshes = [float(line) for line in refreshes_file.read_text().split()] if refreshes_file.exists() else []
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(seconds, rss, color="#1f77b4", linewidth=1.2, label="api-service VmRSS (1 s samples)")
    for i, t in enumerate(refreshes):
        ax.axvline(t, color="#ff7f0e", alpha=0.5, linewidth=0.8, label="new snapshot published" if i == 0 else None)
    tenth = len(rss) // 10
    if tenth >= 2:
        for lo, hi, name in [(tenth, 2 * tenth, "second tenth"), (len(rss) - tenth, len(rss), "last tenth")]:
            mean = statistics.fmean(rss[lo:hi])
            ax.hlines(mean, seconds[lo], seconds[hi - 1], colors="#2ca02c", linewidth=2.5)
            ax.annotate(f"{name}: {mean:.1f} MiB", (seconds[lo], mean), xytext=(0, 6), textcoords="offset points", fontsize=8)
    ax.set_ylim(0, max(rss) * 1.25)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("api-service memory during the soak (bench/soak.sh)")
    fig.tight_layout()
    save(fig, "bench-soak-rss.png")


def save(fig, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    path = DOCS / name
    fig.savefig(path, dpi=110)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    in_venv()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_serve(plt)
    plot_refresh(plt)
    plot_soak(plt)


if __name__ == "__main__":
    main()
