"""Export throughput, the encoder before issue #17 against the current one, in one run.

    .venv/bin/python bench/export.py [--rows 200000] [--rounds 2] [--format csv|jsonl|both]
                                     [--database rearq_bench_export]

Seeds (once) ``--rows`` jobs with ``seed_task_logs`` on PostgreSQL, then downloads
``GET /cfg/tasks/logs/export/`` of every row from one gunicorn worker over HTTP, alternately
with the reference encoder (:mod:`bench.export_reference`, the code of commit 14e1bb4) and
the current one, ``--rounds`` times each, a fresh worker per download. Prints per encoder the
median rows/s wall-clock, the worker's CPU-seconds and rows per CPU-second, its peak RSS
(``VmHWM``), and the current/reference ratios. The machine may be shared: the ratios of
paired runs are the figure to trust, and the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import ensure_data, setup_django  # noqa: E402
from bench.search import api_client, export_over_http  # noqa: E402

ENCODERS = ("reference", "current")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--format", choices=("csv", "jsonl", "both"), default="csv")
    parser.add_argument("--database", default="rearq_bench_export")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    args = parser.parse_args()
    if args.rows <= 0 or args.rounds <= 0:
        parser.error("--rows and --rounds must be positive")
    return args


def paired(rows: int, fmt: str, rounds: int) -> dict[str, list[dict[str, float]]]:
    """``rounds`` downloads per encoder, interleaved (reference, current, reference, …)."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ENCODERS}
    for _ in range(rounds):
        for name in ENCODERS:
            result = export_over_http(
                rows, fmt, app="bench.export_wsgi:application", env={"REARQ_BENCH_EXPORT": name}
            )
            result["rows"] = rows  # exact: the line count also counts quoted newlines
            result["rows_per_s"] = rows / result["seconds"]
            result["rows_per_cpu_s"] = rows / result["cpu_s"]
            runs[name].append(result)
            print(
                f"  {fmt} {name}: {result['seconds']:.1f} s, {result['cpu_s']:.1f} CPU-s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return runs


def report(fmt: str, runs: dict[str, list[dict[str, float]]], rows: int) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    print(f"\n{fmt.upper()}, {rows:,} rows, medians of {len(runs['current'])} paired runs")
    print("| encoder | rows/s wall | worker CPU-s | rows per CPU-s | peak RSS | MB sent |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ENCODERS:
        peak = max(run["peak_rss_mb"] for run in runs[name])
        print(
            f"| {name} | {median(name, 'rows_per_s'):,.0f} | {median(name, 'cpu_s'):.1f} | "
            f"{median(name, 'rows_per_cpu_s'):,.0f} | {peak:.0f} MB | {median(name, 'mb'):.0f} |"
        )
    ratios = [
        ref["cpu_s"] / cur["cpu_s"]
        for ref, cur in zip(runs["reference"], runs["current"], strict=True)
    ]
    walls = [
        ref["seconds"] / cur["seconds"]
        for ref, cur in zip(runs["reference"], runs["current"], strict=True)
    ]
    print(
        f"current vs reference: {statistics.median(ratios):.2f}× less worker CPU per row "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}), "
        f"{statistics.median(walls):.2f}× wall-clock (pairs: "
        f"{', '.join(f'{w:.2f}' for w in walls)})"
    )


def main() -> None:
    args = parse_args()
    setup_django(args)
    ensure_data(args.rows)
    api_client()  # the bench user the download authenticates as
    formats = ("csv", "jsonl") if args.format == "both" else (args.format,)
    load = os.getloadavg()
    results = {fmt: paired(args.rows, fmt, args.rounds) for fmt in formats}
    print(
        f"\nPostgreSQL, one gunicorn worker over HTTP; load average {load[0]:.2f} → "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    for fmt, runs in results.items():
        report(fmt, runs, args.rows)


if __name__ == "__main__":
    main()
