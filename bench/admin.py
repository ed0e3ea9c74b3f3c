"""Server-side render time of the TaskLog admin at 1,000,000 rows on PostgreSQL.

    .venv/bin/python bench/admin.py                 # seeds rearq_bench_admin once (~1 min)
    .venv/bin/python bench/admin.py --count 200000 --runs 5

Each page is rendered in-process through the full Django stack (middleware, admin view,
template) by the test client, logged in as a superuser; the figure is the median of
``--runs`` warm renders (the first render, with a cold filter-choice cache, is printed
too). In the same run it times the seed's admin shape on the same data — full COUNT,
``list_filter`` DISTINCTs on task and queue name, ``date_hierarchy`` years + months — and
prints the ratio. Target: every page < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench._common import timed  # noqa: E402
from harness.databases import ensure_database  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--database", default="rearq_bench_admin")
    parser.add_argument("--reseed", action="store_true", help="truncate and seed again")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    ensure_database(args.database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("REARQ_REDIS_URL", "redis://127.0.0.1:6379/13")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from rearq_tasks.models import TaskLog

    call_command("migrate", verbosity=0)
    have = TaskLog.objects.count()
    if args.reseed or have != args.count:
        print(f"seeding {args.count:,} rows over {args.days} days (had {have:,}) ...")
        call_command(
            "seed_task_logs", count=str(args.count), days=str(args.days), seed="1",
            truncate=True, force=True, verbosity=0,  # force: its own database
        )  # fmt: skip
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    job_id = TaskLog.objects.order_by("id").values_list("job_id", flat=True)[args.count // 2]

    pages = {
        "changelist (default)": "/admin/tasks/tasklog/",
        "changelist status=failed": "/admin/tasks/tasklog/?status__exact=failed",
        "changelist quick=failed": "/admin/tasks/tasklog/?quick=failed",
        "changelist search job_id": f"/admin/tasks/tasklog/?q={job_id}",
        "detail page": f"/admin/tasks/tasklog/{TaskLog.objects.failed().latest('id').pk}/change/",
        "dashboard (24 h)": "/admin/tasks/tasklog/dashboard/",
    }

    def baseline() -> None:
        """What a stock ModelAdmin with date_hierarchy and field list_filters runs per view."""
        qs = TaskLog.objects.all()
        qs.count()  # result_count
        qs.count()  # full_result_count (show_full_result_count = True)
        list(qs.order_by().values_list("task_name", flat=True).distinct())
        list(qs.order_by().values_list("queue_name", flat=True).distinct())
        years = list(qs.dates("created_at", "year"))
        list(qs.filter(created_at__year=years[-1].year).dates("created_at", "month"))
        list(qs.order_by("-enqueue_time", "-pk")[:50])

    rows = TaskLog.objects.count()
    print(f"PostgreSQL, {rows:,} TaskLog rows, median of {args.runs} warm runs\n")
    first_base, base = timed(baseline, max(3, args.runs // 3))
    print(f"{'seed-style baseline: COUNT x2 + 2 DISTINCT filters + date_hierarchy':<64}"
          f"{base:8.1f} ms  (first {first_base:.0f} ms)\n")  # fmt: skip
    print(f"{'page':<34}{'first':>10}{'median':>10}{'queries':>9}{'ratio':>9}  verdict")
    worst = 0.0
    for label, url in pages.items():
        cache.clear()

        def render(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        first, median = timed(render, args.runs)
        with CaptureQueriesContext(connection) as queries:
            render()
        worst = max(worst, median)
        verdict = "ok" if median < 300 else "SLOW"
        print(f"{label:<34}{first:9.1f}ms{median:8.1f}ms{len(queries.captured_queries):9d}"
              f"{base / median:8.1f}x  {verdict}")  # fmt: skip
    print(f"\nslowest page {worst:.1f} ms (target < 300 ms)")
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    raise SystemExit(main())
