"""Bulk retry of N failed jobs in a big TaskLog table, with a real worker draining the retries.

    .venv/bin/python bench/bulk.py [--rows 1000000] [--failed 50000] [--load-seconds 20]

PostgreSQL database ``rearq_bench_bulk`` (created once, seeded like ``bench/api.py`` with
``--rows`` rows), plus ``--failed`` failed ``add`` jobs of the example project. Redis DB
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/7``, flushed) and ReArq's own tables in
the same PostgreSQL database. Then, in one run:

1. the list endpoint's p95 with no operation running (``--load-seconds``, 4 client threads,
   Django's test client in this process: a baseline from the same run);
2. ``POST /cfg/tasks/logs/bulk/`` (retry, filter ``status=failed&task_name_exact=add``): its
   time is the longest request of the operation;
3. ``manage.py run_task_operations`` and ``manage.py rearq_worker`` start; while the operation
   runs the same list load is measured again, and ``pg_stat_activity`` is sampled every 50 ms
   for the longest statement of any other backend (its resolution is the sampling step);
4. it waits for the operation to be done and for the worker to have run every retry.

Prints: total operation time, retries/s, time until the worker drained them, the longest
request (POST, and the slowest GET of the progress endpoint), the longest statement seen, and
the list endpoint's p95 during vs before (ratio).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import ensure_data, p95  # noqa: E402
from harness.databases import ensure_database  # noqa: E402
from harness.processes import ProcessPool, child_env, manage_argv, worker_argv  # noqa: E402
from harness.waiting import wait_for  # noqa: E402

LIST = "/cfg/tasks/logs/?status=failed&page_size=50"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--failed", type=int, default=50_000)
    parser.add_argument("--load-seconds", type=float, default=20)
    parser.add_argument("--database", default="rearq_bench_bulk")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    return parser.parse_args()


def setup(args: argparse.Namespace) -> dict[str, str]:
    ensure_database(args.database, host=args.host, user=args.user)
    url = f"postgres://{args.user}@{args.host}:5432/{args.database}"
    env = {
        "DATABASE_URL": url,
        "REARQ_DB_URL": url,
        "REARQ_REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
        "DJANGO_SETTINGS_MODULE": "bench.load_settings",
        "DJANGO_DEBUG": "0",
    }
    os.environ.update(env)
    import django

    django.setup()
    return env


def seed_failed(count: int) -> None:
    """``count`` failed ``add`` jobs (the earlier run's, and their retries, removed first)."""
    from django.utils import timezone

    from rearq_tasks.models import TaskLog
    from rearq_tasks.operation_models import AuditEntry, TaskOperation

    TaskLog.objects.filter(task_name="add").delete()
    TaskOperation.objects.all().delete()
    AuditEntry.objects.all().delete()
    now = timezone.now()
    rows = (
        TaskLog(
            job_id=f"bench-bulk-{i:07d}",
            task_name="add",
            queue_name="default",
            args=[i, 1],
            status="failed",
            success=False,
            error_message="boom",
            enqueue_time=now,
        )  # fmt: skip
        for i in range(count)
    )
    TaskLog.objects.bulk_create(rows, batch_size=5000)


def reset_rearq() -> None:
    """Redis flushed, ReArq's tables made (once) and emptied."""
    import asyncio

    from bench.load import rearq_schemas
    from rearq_tasks.queue.connection import redis_client
    from rearq_tasks.queue.loop import run_sync

    redis_client(timeout=5).flushdb()
    asyncio.run(rearq_schemas())

    async def clear() -> None:
        from rearq.server.models import Job, JobResult

        await JobResult.all().delete()
        await Job.all().delete()

    run_sync(clear, timeout=300)


def list_load(seconds: float, threads: int = 4) -> list[float]:
    """Back-to-back GETs of the list endpoint from ``threads`` threads; latencies in ms."""
    from django.db import connection
    from django.test import Client

    from rearq_tasks.models import TaskLog  # noqa: F401

    samples: list[float] = []
    until = time.monotonic() + seconds

    def run() -> None:
        client = Client()
        client.force_login(staff())
        while time.monotonic() < until:
            start = time.perf_counter()
            assert client.get(LIST).status_code == 200
            samples.append((time.perf_counter() - start) * 1000)
        connection.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return samples


def staff():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-bulk", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


class StatementWatch(threading.Thread):
    """The longest statement of any other backend, sampled from pg_stat_activity."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.longest = (0.0, "")
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection

        sql = (
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - query_start), left(query, 120) "
            "FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
            "AND pid <> pg_backend_pid() ORDER BY 1 DESC LIMIT 1"
        )
        with connection.cursor() as cursor:
            while not self.stopped.wait(0.05):
                cursor.execute(sql)
                row = cursor.fetchone()
                if row and row[0] and float(row[0]) > self.longest[0]:
                    self.longest = (float(row[0]), row[1])
        connection.close()


def main() -> None:
    args = parse_args()
    env = setup(args)
    from django.core.management import call_command

    from rearq_tasks.models import TaskLog

    call_command("migrate", verbosity=0)  # a fresh database has no table yet
    TaskLog.objects.filter(task_name="add").delete()  # the previous run's, before the count
    ensure_data(args.rows)
    seed_failed(args.failed)
    reset_rearq()
    from django.test import Client

    from rearq_tasks.operation_models import TaskOperation

    total = TaskLog.objects.count()
    print(f"{total:,} TaskLog rows, {args.failed:,} failed add jobs to retry", flush=True)
    before = list_load(args.load_seconds)
    client = Client()
    client.force_login(staff())
    body = {"action": "retry", "filters": {"status": "failed", "task_name_exact": "add"}}
    start = time.perf_counter()
    answer = client.post("/cfg/tasks/logs/bulk/", body, content_type="application/json")
    post_ms = (time.perf_counter() - start) * 1000
    assert answer.status_code == 202, answer.content
    operation_id = answer.json()["operation_id"]
    pool = ProcessPool(ROOT / "var", child_env(**env))
    watch = StatementWatch()
    watch.start()
    started = time.monotonic()
    try:
        pool.spawn("worker", worker_argv("default", group="bench-bulk", consumer="w1"))
        pool.spawn("runner", manage_argv("run_task_operations", "--poll-seconds", "0.2"))
        during = list_load(args.load_seconds)
        slowest_get = 0.0

        def finished() -> bool:
            nonlocal slowest_get
            begin = time.perf_counter()
            state = client.get(f"/cfg/tasks/operations/{operation_id}/").json()["state"]
            slowest_get = max(slowest_get, (time.perf_counter() - begin) * 1000)
            return state == "done"

        wait_for(finished, 7200, "the operation", interval=1)
        operation_s = time.monotonic() - started
        done = TaskOperation.objects.get(pk=operation_id)
        retried = TaskLog.objects.filter(task_name="add").exclude(job_id__startswith="bench-")
        wait_for(
            lambda: retried.filter(status="success").count() >= args.failed, 7200,
            "the worker", interval=1,
        )  # fmt: skip
        drained_s = time.monotonic() - started
    finally:
        watch.stopped.set()
        pool.stop_all()
    print(f"operation: {done.done:,} retried, {done.skipped:,} skipped, {done.failed:,} failed")
    print(f"operation time: {operation_s:.1f} s ({done.done / operation_s:.0f} retries/s)")
    print(f"worker drained every retry after: {drained_s:.1f} s")
    print(f"longest request: POST bulk {post_ms:.0f} ms; GET operation {slowest_get:.0f} ms")
    print(f"longest statement seen (50 ms sampling): {watch.longest[0] * 1000:.0f} ms "
          f"({watch.longest[1]!r})")  # fmt: skip
    print(
        f"list p95: before {p95(before):.1f} ms ({len(before)} requests), during "
        f"{p95(during):.1f} ms ({len(during)} requests), ratio {p95(during) / p95(before):.2f}"
    )


if __name__ == "__main__":
    main()
