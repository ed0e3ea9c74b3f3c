"""API benchmark at a million rows on PostgreSQL: ours against the seed's query shapes.

    .venv/bin/python bench/api.py [--rows 1000000] [--runs 15] [--database rearq_bench_api]

Creates (once) a dedicated PostgreSQL database, migrates it, seeds ``--rows`` TaskLog rows
over 30 days with ``seed_task_logs`` (again when the data is more than 2 hours old),
then times every endpoint through Django's test client (middleware, DRF, serialisation
included) and, on the same data, the seed's reference shapes: a separate ``.count()`` per
figure, percentiles by ``count()`` + OFFSET, ``TruncHour`` grouping, plain
``PageNumberPagination`` with a full COUNT and ``icontains``. The reference runs inside a
transaction that drops migrations 0002 and 0005's indexes and is rolled back, so it sees the seed's
schema. Prints p50/p95 per endpoint and the speed-up ratio (reference p50 / ours p50).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.databases import ensure_database  # noqa: E402

GOALS_MS = {
    "list unfiltered": 50,
    "list is_failed + task_name": 50,
    "list search (common: smtp)": 50,
    "list search (rare word)": 50,
    "stats 24h": 100,
    "timeline 7d hourly": 150,
    "overview": 200,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per endpoint (ours)")
    parser.add_argument("--reference-runs", type=int, default=5)
    parser.add_argument("--database", default="rearq_bench_api")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    args = parser.parse_args()
    if args.rows <= 0 or args.runs <= 0 or args.reference_runs <= 0:
        parser.error("--rows, --runs and --reference-runs must be positive")
    return args


def setup_django(args: argparse.Namespace) -> None:
    ensure_database(args.database, host=args.host, user=args.user)
    os.environ["DATABASE_URL"] = f"postgres://{args.user}@{args.host}:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()


def ensure_data(rows: int) -> None:
    """Seed when the row count differs or the data has aged (its "last 24 h" would thin out)."""
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from rearq_tasks.models import TaskLog

    call_command("migrate", verbosity=0)
    count = TaskLog.objects.count()
    newest = (
        TaskLog.objects.order_by("-enqueue_time").values_list("enqueue_time", flat=True).first()
    )
    if count == rows and newest and timezone.now() - newest < dt.timedelta(hours=2):
        return
    print(f"seeding {rows:,} rows over 30 days (found {count:,}, newest {newest}) …", flush=True)
    call_command(  # force: a dedicated database, where the load bench also captures real jobs
        "seed_task_logs", count=str(rows), days="30", seed="1", truncate=True, force=True,
        verbosity=0,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_cfg_task_log")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm the caches and the connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ours(runs: int) -> dict[str, list[float]]:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from rearq_tasks.models import TaskLog

    # Staff with the view permission, as docs/security.md requires (superuser is a shortcut).
    user, _ = get_user_model().objects.update_or_create(
        username="bench_staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = APIClient()
    client.force_authenticate(user)
    some_id = TaskLog.objects.order_by("-enqueue_time").values_list("id", flat=True)[500]
    base = "/cfg/tasks/logs/"
    urls = {
        "list unfiltered": f"{base}",
        "list is_failed + task_name": f"{base}?is_failed=true&task_name=email",
        "list search (common: smtp)": f"{base}?search=smtp",
        "list search (rare word)": f"{base}?search=order_42_key",
        "list deep page (page 200)": f"{base}?page=200",
        "detail": f"{base}{some_id}/",
        "related": f"{base}{some_id}/related/",
        "stats 24h": f"{base}stats/?period_hours=24",
        "stats 7d": f"{base}stats/?period_hours=168",
        "timeline 7d hourly": f"{base}timeline/?period_hours=168&interval=hour",
        "timeline 30d daily": f"{base}timeline/?period_hours=720&interval=day",
        "overview": f"{base}overview/",
        "tasks 24h (top failing)": f"{base}tasks/?period_hours=24",
    }
    results = {}
    for label, url in urls.items():

        def call(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        results[label] = timed(call, runs)
    return results


def reference(runs: int) -> dict[str, list[float]]:
    """The seed's shapes on the seed's schema: 0002 and 0005 indexes dropped, rolled back."""
    from django.core.paginator import Paginator
    from django.db import connection, transaction
    from django.db.models import Avg, Count, Q
    from django.db.models.functions import TruncHour

    from rearq_tasks.models import TaskLog

    def percentiles_by_offset(qs) -> list[int]:
        ordered = qs.filter(duration_ms__isnull=False).order_by("duration_ms")
        n = ordered.count()
        return (
            [
                ordered.values_list("duration_ms", flat=True)[int(f * (n - 1))]
                for f in (0.5, 0.95, 0.99)
            ]
            if n
            else []
        )

    def stats(hours: int) -> None:
        qs = TaskLog.objects.since(hours)
        qs.count(), qs.successful().count(), qs.failed().count(), qs.in_flight().count()
        qs.aggregate(Avg("duration_ms"))
        percentiles_by_offset(qs)

    def timeline() -> None:
        list(
            TaskLog.objects.since(168)
            .annotate(hour=TruncHour("enqueue_time"))
            .values("hour")
            .annotate(total=Count("id"), ok=Count("id", filter=Q(success=True)),
                      failed=Count("id", filter=Q(success=False)), avg=Avg("duration_ms"))
            .order_by("hour")
        )  # fmt: skip

    def overview() -> None:
        qs = TaskLog.objects.all()
        qs.count()
        list(qs.order_by().values_list("queue_name", flat=True).distinct())
        list(qs.order_by().values("queue_name").annotate(n=Count("id")))
        list(qs.order_by().values("status").annotate(n=Count("id")))
        qs.failed().since(24).count()

    def page(qs) -> None:
        paginator = Paginator(qs, 50)
        paginator.count  # noqa: B018 - what PageNumberPagination asks for
        list(paginator.page(1))

    def search(term: str) -> None:
        q = Q()
        for field in ("task_name", "job_id", "queue_name", "error_message", "worker_id"):
            q |= Q(**{f"{field}__icontains": term})
        page(TaskLog.objects.filter(q))

    shapes = {
        "list unfiltered": lambda: page(TaskLog.objects.all()),
        "list is_failed + task_name": lambda: page(
            TaskLog.objects.failed().filter(task_name__icontains="email")
        ),
        "list search (common: smtp)": lambda: search("smtp"),
        "list search (rare word)": lambda: search("order_42_key"),
        "stats 24h": lambda: stats(24),
        "stats 7d": lambda: stats(168),
        "timeline 7d hourly": timeline,
        "overview": overview,
    }
    results = {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'django_cfg_task_log' "
                "AND (indexname LIKE '%%trgm_idx' OR indexname LIKE 'tasklog_failed_%%' "
                "OR indexname = 'tasklog_enq_cover_idx')"
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX {name}")
        for label, fn in shapes.items():
            results[label] = timed(fn, runs)
        transaction.set_rollback(True)
    return results


def main() -> None:
    args = parse_args()
    setup_django(args)
    ensure_data(args.rows)
    load_before = os.getloadavg()
    our = ours(args.runs)
    ref = reference(args.reference_runs)
    load_after = os.getloadavg()
    print(
        f"\n{args.rows:,} rows, PostgreSQL; ours: {args.runs} runs, reference: "
        f"{args.reference_runs} runs; load average {load_before[0]:.2f} → {load_after[0]:.2f} "
        f"on {os.cpu_count()} CPUs\n"
    )
    print("| endpoint | ours p50 | ours p95 | goal | seed's shape p50 | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, samples in our.items():
        goal = f"< {GOALS_MS[label]} ms" if label in GOALS_MS else ""
        ours50 = statistics.median(samples)
        line = f"| {label} | {ours50:.1f} ms | {p95(samples):.1f} ms | {goal} |"
        if label in ref:
            ref50 = statistics.median(ref[label])
            line += f" {ref50:.1f} ms | {ref50 / ours50:.1f}× |"
        else:
            line += " | |"
        print(line)


if __name__ == "__main__":
    main()
