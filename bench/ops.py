"""Operations at 1,000,000 rows on PostgreSQL: retention cleanup, alert rules, /metrics/.

    .venv/bin/python bench/ops.py                   # seeds rearq_bench_ops once (~1 min)
    .venv/bin/python bench/ops.py --count 200000 --runs 5

Seeds ``--count`` rows over ``--days`` (120: ~25 % older than the 90-day retention) and keeps
a snapshot table so each cleanup starts from the same data. In one run it measures:

* ``cleanup_task_logs`` (batched, keyset) against the naive single ``DELETE ... WHERE`` —
  total time and the longest single statement (goal < 1 s), every statement timed with
  ``connection.execute_wrapper``;
* the alert rules (``run_alerts(dry_run=True)``) against per-task ``.count()``/``aggregate``
  loops, goal < 500 ms;
* ``GET /cfg/tasks/metrics/`` through the full Django stack against per task/queue/status
  ``.count()`` loops, goal < 500 ms.

Other processes share the machine's cores: the ``uptime`` load is printed with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench._common import timed  # noqa: E402
from harness.databases import ensure_database  # noqa: E402

TOKEN = "bench-metrics-token-0123456789"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=120)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--retention-days", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--database", default="rearq_bench_ops")
    parser.add_argument("--reseed", action="store_true", help="truncate and seed again")
    return parser.parse_args()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class StatementLog:
    """Every SQL statement's wall time (execute_wrapper), to find the longest one."""

    def __init__(self) -> None:
        self.durations: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.durations.append(((time.perf_counter() - start) * 1000, " ".join(sql.split())))

    @property
    def longest(self) -> tuple[float, str]:
        return max(self.durations) if self.durations else (0.0, "")


def main() -> int:
    args = parse_args()
    ensure_database(args.database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("REARQ_REDIS_URL", "redis://127.0.0.1:6379/12")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Avg
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from rearq_tasks.models import StatusChoices, TaskLog
    from rearq_tasks.ops.alerts import run_alerts
    from rearq_tasks.ops.retention import expired_q, purge

    table = TaskLog._meta.db_table
    snapshot = "bench_ops_snapshot"
    print(f"load before: {load()}")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [snapshot])
        has_snapshot = cursor.fetchone()[0]
        rows = 0
        if has_snapshot:
            cursor.execute(f"SELECT count(*) FROM {snapshot}")
            rows = cursor.fetchone()[0]
    if args.reseed or rows != args.count:
        started = time.perf_counter()
        call_command(
            "seed_task_logs", count=str(args.count), days=str(args.days), truncate=True,
            force=True, verbosity=0,  # force: its own database
        )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {snapshot}")
            cursor.execute(f"CREATE TABLE {snapshot} AS TABLE {table}")
        print(
            f"seeded {args.count:,} rows over {args.days:g} days in "
            f"{time.perf_counter() - started:.1f} s"
        )

    def restore() -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # The insert's triggers count the rows into the rollups again: start them empty.
            cursor.execute(f"TRUNCATE {table}, django_cfg_task_stat, django_cfg_task_stat_bin")
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {snapshot}")
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
        print(
            f"  (restored {TaskLog.objects.count():,} rows in "
            f"{time.perf_counter() - started:.1f} s)"
        )

    restore()
    now = timezone.now()
    cutoff = now - dt.timedelta(days=args.retention_days)
    expected = TaskLog.objects.filter(expired_q(args.retention_days, None, now)).count()
    print(
        f"\n== cleanup: {expected:,} of {TaskLog.objects.count():,} rows older than "
        f"{args.retention_days} days"
    )
    naive = StatementLog()
    with connection.execute_wrapper(naive), transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE enqueue_time < %s", [cutoff])
            naive_deleted = cursor.rowcount
        naive_total = (time.perf_counter() - started) * 1000
    print(
        f"naive single DELETE: {naive_deleted:,} rows, total {naive_total:,.0f} ms, "
        f"longest statement {naive.longest[0]:,.0f} ms"
    )

    restore()
    ours = StatementLog()
    batch_ends: list[float] = []
    with connection.execute_wrapper(ours):
        started = time.perf_counter()
        batch_ends.append(started)
        result = purge(
            days=args.retention_days, batch_size=args.batch_size, now=now,
            progress=lambda *_: batch_ends.append(time.perf_counter()),
        )  # fmt: skip
        ours_total = (time.perf_counter() - started) * 1000
    batch_ms = [(b - a) * 1000 for a, b in zip(batch_ends, batch_ends[1:], strict=False)]
    deletes = [d for d, sql in ours.durations if sql.startswith("DELETE")]
    page_sql = f"LIMIT {args.batch_size}"
    selects = [d for d, sql in ours.durations if sql.startswith("SELECT") and page_sql in sql]
    longest_ms, longest_sql = ours.longest
    print(
        f"batched purge (batch {args.batch_size}): {result.deleted:,} rows in "
        f"{result.batches} batches, total {ours_total:,.0f} ms, {len(ours.durations)} statements"
    )
    print(f"  longest statement {longest_ms:,.0f} ms: {longest_sql[:90]}…")
    print(
        f"  DELETE per batch: median {statistics.median(deletes):.0f} ms, "
        f"max {max(deletes):.0f} ms; id SELECT per batch: median "
        f"{statistics.median(selects):.0f} ms, max {max(selects):.0f} ms"
    )
    print(
        f"  wall time per batch (select ids + delete + commit, first includes the count): "
        f"median {statistics.median(batch_ms):.0f} ms, max {max(batch_ms):.0f} ms"
    )
    print(
        f"  longest statement ratio naive/ours: {naive.longest[0] / longest_ms:.1f}x; "
        f"total time ours/naive: {ours_total / naive_total:.2f}x"
    )
    assert result.deleted == naive_deleted == expected, (result.deleted, naive_deleted, expected)
    restore()

    print(f"\n== alert rules at {TaskLog.objects.count():,} rows")

    def naive_alerts() -> None:
        since = TaskLog.objects.since(1)
        tasks = list(since.order_by().values_list("task_name", flat=True).distinct())
        for task in tasks:
            qs = since.for_task(task)
            qs.completed().count()
            qs.failed().count()
            qs.completed().aggregate(Avg("duration_ms"), Avg("job_retries"))
        TaskLog.objects.stuck().count()
        list(TaskLog.objects.stuck().order_by("start_time")[:10])
        for queue in TaskLog.objects.order_by().values_list("queue_name", flat=True).distinct():
            TaskLog.objects.filter(queue_name=queue, status=StatusChoices.QUEUED).count()

    first, ours_ms = timed(lambda: run_alerts(dry_run=True), args.runs)
    _, naive_ms = timed(naive_alerts, args.runs)
    print(
        f"run_alerts(dry_run): median {ours_ms:.0f} ms (first {first:.0f} ms); "
        f"naive loops {naive_ms:.0f} ms; ratio naive/ours {naive_ms / ours_ms:.1f}x"
    )
    found = run_alerts(dry_run=True)
    print(f"  firing: {', '.join(a.key for a in found.firing) or 'none'}")

    print(f"\n== GET /cfg/tasks/metrics/ at {TaskLog.objects.count():,} rows")
    client = Client()
    with override_settings(REARQ_TASKS={**settings.REARQ_TASKS, "METRICS_TOKEN": TOKEN}):

        def scrape() -> None:
            response = client.get("/cfg/tasks/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
            assert response.status_code == 200, response.status_code

        first, ours_ms = timed(scrape, args.runs)
        size = len(client.get("/cfg/tasks/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)

    def naive_metrics() -> None:
        since = TaskLog.objects.since(24)
        tasks = list(TaskLog.objects.order_by().values_list("task_name", flat=True).distinct())
        queues = list(TaskLog.objects.order_by().values_list("queue_name", flat=True).distinct())
        for task in tasks:
            for queue in queues:
                for status in StatusChoices.values:
                    since.filter(task_name=task, queue_name=queue, status=status).count()
        for queue in queues:
            TaskLog.objects.filter(queue_name=queue, status=StatusChoices.QUEUED).count()
            TaskLog.objects.stuck().filter(queue_name=queue).count()

    _, naive_ms = timed(naive_metrics, max(3, args.runs // 2))
    print(
        f"metrics endpoint: median {ours_ms:.0f} ms (first {first:.0f} ms), {size:,} bytes; "
        f"naive per-status .count() loops {naive_ms:.0f} ms; "
        f"ratio naive/ours {naive_ms / ours_ms:.1f}x"
    )
    print(f"\nload after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
