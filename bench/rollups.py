"""Aggregates read from the rollups against the same aggregates scanning rows, in one run.

    .venv/bin/python bench/rollups.py --database rearq_bench_rollups [--rows 1000000] [--runs 21]

Uses (seeding once with ``seed_task_logs``, 30 days) a dedicated PostgreSQL database. For each
aggregate surface — the API's ``stats/``, ``timeline/``, ``overview/``, ``tasks/``,
``retries/`` through Django's test client, the admin dashboard — it alternates one request
served by the rollups (what the package does) with one where every ``queries.*`` call gets
``Scope.rows()`` instead of the ``Scope`` (the row-scan version, same code otherwise), and
prints p50/p95 of each and their ratio, with the load average. ``/cfg/tasks/metrics/`` and
``run_alerts`` read the rollups only (no row path is left): their p50/p95 are printed.
Then the percentile error of the rollups against exact ``percentile_cont`` over the same
rows, and ``rebuild_task_stats`` over every seeded day: wall time and peak RSS of a child
process (``/usr/bin/time -v``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.api import p95  # noqa: E402
from harness.databases import ensure_database  # noqa: E402

TOKEN = "bench-metrics-token-0123456789"
BASE = "/cfg/tasks/logs/"
PAIRED = {
    "stats 24h": f"{BASE}stats/?period_hours=24",
    "stats 7d": f"{BASE}stats/?period_hours=168",
    "timeline 7d hourly": f"{BASE}timeline/?period_hours=168&interval=hour",
    "timeline 30d daily": f"{BASE}timeline/?period_hours=720&interval=day",
    "overview": f"{BASE}overview/",
    "tasks 24h": f"{BASE}tasks/?period_hours=24",
    "retries 24h": f"{BASE}retries/?period_hours=24",
    "admin dashboard": "/admin/tasks/tasklog/dashboard/",
}
AGGREGATES = ("summary", "timeline", "overview", "by_task", "retries_by_task")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=21, help="timed requests per path")
    parser.add_argument("--database", default="rearq_bench_rollups")
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args()
    if args.rows <= 0 or args.runs <= 1:
        parser.error("--rows must be positive and --runs at least 2")
    return args


def setup_django(database: str) -> None:
    ensure_database(database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault(
        "REARQ_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
    )
    import django

    django.setup()


def ensure_data(rows: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from rearq_tasks.models import TaskLog

    call_command("migrate", verbosity=0)
    if TaskLog.objects.count() != rows:
        print(f"seeding {rows:,} rows over 30 days …", flush=True)
        call_command("seed_task_logs", count=str(rows), days="30", seed="1", truncate=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


@contextlib.contextmanager
def row_scan() -> Iterator[None]:
    """Every aggregate reads rows: a Scope is swapped for the same jobs as a queryset."""
    from rearq_tasks import queries

    originals = {name: getattr(queries, name) for name in AGGREGATES}

    def rows_instead(fn: Callable) -> Callable:
        def call(scope, *args, **kwargs):
            if isinstance(scope, queries.Scope):
                scope = scope.rows()
            return fn(scope, *args, **kwargs)

        return call

    for name, fn in originals.items():
        setattr(queries, name, rows_instead(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(queries, name, fn)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def request_timer(client, url: str, **headers: str) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        response = client.get(url, **headers)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (url, response.status_code)
        return elapsed

    return once


def paired(client, runs: int) -> None:
    from django.core.cache import cache

    print(f"\nrollups vs row scan, {runs} alternating pairs each; load {load()}\n")
    print("| aggregate | rollups p50 | rollups p95 | row scan p50 | row scan p95 | p95 ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, url in PAIRED.items():
        once = request_timer(client, url)
        ours: list[float] = []
        rows: list[float] = []
        once()
        with row_scan():
            once()
        for _ in range(runs):
            cache.clear()
            ours.append(once())
            cache.clear()
            with row_scan():
                rows.append(once())
        print(
            f"| {label} | {statistics.median(ours):.1f} ms | {p95(ours):.1f} ms | "
            f"{statistics.median(rows):.1f} ms | {p95(rows):.1f} ms | "
            f"{p95(rows) / p95(ours):.1f}× |",
            flush=True,
        )
    print(f"\nload after: {load()}")


def rollup_only(client, runs: int) -> None:
    from django.conf import settings
    from django.test.utils import override_settings

    from rearq_tasks.ops.alerts import run_alerts

    with override_settings(REARQ_TASKS={**settings.REARQ_TASKS, "METRICS_TOKEN": TOKEN}):
        scrape = request_timer(client, "/cfg/tasks/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        scrape()
        metrics = [scrape() for _ in range(runs)]

    def alerts() -> float:
        start = time.perf_counter()
        run_alerts(dry_run=True)
        return (time.perf_counter() - start) * 1000

    alerts()
    rules = [alerts() for _ in range(runs)]
    for label, samples in (("metrics", metrics), ("alert rules (dry run)", rules)):
        print(
            f"| {label} | {statistics.median(samples):.1f} ms | {p95(samples):.1f} ms | — | — | — |"
        )


def percentile_error() -> None:
    """The rollup's p50/p95/p99 against exact percentile_cont over the same rows."""
    from django.db import connection

    from rearq_tasks import queries
    from rearq_tasks.models import TaskLog
    from rearq_tasks.queries import Scope

    print("\npercentile error against percentile_cont (terminal rows, same period)")
    print("| period | figure | rollups | percentile_cont | relative error |")
    print("|---|---|---:|---:|---:|")
    for hours in (24, 168, 720):
        scope = Scope.period(hours)
        figures = queries.summary(scope)
        sql, params = (
            scope.rows()
            .filter(duration_ms__isnull=False)
            .values("duration_ms")
            .query.sql_with_params()
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), "
                f"percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM ({sql}) d",
                params,
            )
            exact = cursor.fetchone()
        for key, value in zip(
            ("p50_duration_ms", "p95_duration_ms", "p99_duration_ms"), exact, strict=True
        ):
            ours = figures[key]
            error = abs(ours - value) / value if value else 0.0
            print(f"| {hours} h | {key} | {ours} | {value:.1f} | {error:.3%} |")
    assert TaskLog.objects.exists()


def rebuild_cost(database: str) -> None:
    from rearq_tasks.models import TaskLog, TaskStat, TaskStatBin

    before = (TaskStat.objects.count(), TaskStatBin.objects.count())
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    print(f"\nrebuild_task_stats over {TaskLog.objects.count():,} rows; load {load()}")
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "django", "rebuild_task_stats", "-v", "0"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    rss = next(line for line in done.stderr.splitlines() if "Maximum resident" in line)
    after = (TaskStat.objects.count(), TaskStatBin.objects.count())
    print(f"  {wall:.1f} s wall, {rss.strip()}; rollup rows {before} → {after}; load {load()}")


def main() -> None:
    args = parse_args()
    setup_django(args.database)
    ensure_data(args.rows)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from rearq_tasks.models import TaskLog, TaskStat

    user, _ = get_user_model().objects.update_or_create(
        username="bench_rollups", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(
        f"PostgreSQL, {TaskLog.objects.count():,} TaskLog rows, "
        f"{TaskStat.objects.count():,} TaskStat rows"
    )
    paired(client, args.runs)
    rollup_only(client, args.runs)
    percentile_error()
    if not args.skip_rebuild:
        rebuild_cost(args.database)


if __name__ == "__main__":
    main()
