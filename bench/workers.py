"""The workers page with 1,000 simulated heartbeats and 10,000 running jobs, on PostgreSQL.

    .venv/bin/python bench/workers.py                    # ~1 min: seeds wk_bench_workers
    .venv/bin/python bench/workers.py --background 1000000 --runs 50

Writes 1,000 heartbeats into ReArq's hash exactly as ReArq 0.2.9 does (``--dead`` of them
stale), each worker a consumer of its queue's stream group (so ``XINFO CONSUMERS`` has
1,000 entries to read), 10,000 ``in_progress`` rows spread over the workers (the dead ones'
too: they are flagged), ``--finished`` rows ended in the last two hours and ``--background``
older rows (``seed_task_logs``). Then times, in-process through the full Django stack
(middleware, authentication, view, rendering), ``GET /cfg/tasks/workers/`` (first page and
``state=flagged``), the admin page, and, as the baseline of the same run, the plain list
endpoint ``GET /cfg/tasks/logs/``: p50 and p95 of ``--runs`` warm requests each, with the
ratio to the baseline's p95. Redis: db 11 (``--redis``), emptied of ReArq's keys first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from harness.databases import ensure_database  # noqa: E402

QUEUES = ("default", "critical", "low", "reports")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--dead", type=int, default=50, help="of them, with a stale heartbeat")
    parser.add_argument("--running", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=20_000)
    parser.add_argument("--background", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", default="wk_bench_workers")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    return parser.parse_args()


def heartbeats(client, workers: int, dead: int) -> list[str]:
    """ReArq's heartbeat fields and consumer groups for ``workers`` workers."""
    for key in client.scan_iter("rearq:*"):
        client.delete(key)
    now_ms = int(time.time() * 1000)
    names = []
    pipe = client.pipeline(transaction=False)
    for i in range(workers):
        group, consumer, queue = f"host-{i // 10:03d}", f"w{i:04d}", QUEUES[i % len(QUEUES)]
        stale = dead > 0 and i % max(1, workers // dead) == 0  # spread over the names
        ms = now_ms - (600_000 if stale else 0)
        value = {"queue": f"rearq:queue:{queue}", "is_timer": False, "ms": ms, "group": group,
                 "consumer": consumer}  # fmt: skip
        pipe.hset("rearq:worker", f"{group}-{consumer}", json.dumps(value))
        names.append(f"{group}-{consumer}")
    pipe.execute()
    for i, name in enumerate(names):  # XREADGROUP of one message makes the consumer known
        group, consumer = name.rsplit("-", 1)
        stream = f"rearq:queue:{QUEUES[i % len(QUEUES)]}"
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except Exception:  # BUSYGROUP
            pass
        client.xadd(stream, {"job_id": f"bench-{i}"})
        client.xreadgroup(group, consumer, {stream: ">"}, count=1)
    return names


def seed_rows(names: list[str], running: int, finished: int) -> None:
    from django.utils import timezone

    from rearq_tasks.models import StatusChoices, TaskLog

    now = timezone.now()
    rows = []
    for i in range(running):
        start = now - dt.timedelta(seconds=5 + i % 900)
        rows.append(TaskLog(
            job_id=f"bench-run-{i}", task_name=f"task_{i % 40}", queue_name=QUEUES[i % 4],
            status=StatusChoices.IN_PROGRESS, worker_id=names[i % len(names)],
            enqueue_time=start - dt.timedelta(seconds=2), start_time=start,
        ))  # fmt: skip
    for i in range(finished):
        finish = now - dt.timedelta(seconds=i * 7200 // max(finished, 1))
        bad = i % 10 == 0
        rows.append(TaskLog(
            job_id=f"bench-end-{i}", task_name=f"task_{i % 40}", queue_name=QUEUES[i % 4],
            status=StatusChoices.FAILED if bad else StatusChoices.SUCCESS, success=not bad,
            worker_id=names[i % len(names)], enqueue_time=finish - dt.timedelta(seconds=30),
            start_time=finish - dt.timedelta(seconds=3), finish_time=finish, duration_ms=3000,
        ))  # fmt: skip
    TaskLog.objects.bulk_create(rows, batch_size=5000)


def percentiles(fn, runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def main() -> int:
    args = parse_args()
    ensure_database(args.database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ["REARQ_REDIS_URL"] = args.redis
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from rearq_tasks.models import TaskLog
    from rearq_tasks.queue.connection import redis_client

    call_command("migrate", verbosity=0)
    TaskLog.objects.all().delete()
    if args.background:
        call_command(
            "seed_task_logs", count=str(args.background), days="30", seed="1", truncate=True,
            force=True, verbosity=0,
        )  # fmt: skip
        TaskLog.objects.filter(status="in_progress").delete()  # only the bench's run now
    client_redis = redis_client()
    names = heartbeats(client_redis, args.workers, args.dead)
    seed_rows(names, args.running, args.finished)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_cfg_task_log")
    user, _ = get_user_model().objects.get_or_create(
        username="bench-workers", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    pages = {
        "baseline: GET /cfg/tasks/logs/": "/cfg/tasks/logs/",
        "GET /cfg/tasks/workers/": "/cfg/tasks/workers/",
        "GET /cfg/tasks/workers/?state=flagged": "/cfg/tasks/workers/?state=flagged",
        "GET /cfg/tasks/workers/?page_size=500": "/cfg/tasks/workers/?page_size=500",
        "admin workers page": "/admin/tasks/tasklog/workers/",
    }
    rows, running = TaskLog.objects.count(), TaskLog.objects.running().count()
    print(f"PostgreSQL, {rows:,} TaskLog rows ({running:,} in progress), {len(names):,} "
          f"heartbeats ({args.dead} stale); {args.runs} warm requests each\n")  # fmt: skip
    print(f"{'request':<42}{'p50':>10}{'p95':>10}{'queries':>9}{'x baseline':>12}")
    base = None
    for label, url in pages.items():

        def get(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        p50, p95 = percentiles(get, args.runs)
        with CaptureQueriesContext(connection) as queries:
            get()
        base = base or p95
        print(f"{label:<42}{p50:8.1f}ms{p95:8.1f}ms{len(queries.captured_queries):9d}"
              f"{p95 / base:11.1f}x")  # fmt: skip
    summary = client.get("/cfg/tasks/workers/").json()["summary"]
    print(f"\nsummary: {summary}")
    for key in client_redis.scan_iter("rearq:*"):
        client_redis.delete(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
