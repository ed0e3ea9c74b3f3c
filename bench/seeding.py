"""What the statistics rollups cost ``seed_task_logs`` on PostgreSQL, in one run.

    .venv/bin/python bench/seeding.py [--rows 200000] [--rounds 2] [--database rearq_bench_seeding]

Alternates seeding ``--rows`` rows (truncating first) with the rollup triggers firing on
the COPY (what a non-superuser gets) and with the bulk path (superuser: triggers off for
the transaction, rollups added by one grouped INSERT … SELECT), and once with no rollups
at all (the triggers disabled on this scratch table) as the floor. Prints seconds per
round and the median ratios, with the load average; checks that both paths count every
terminal row once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from harness.databases import ensure_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", default="rearq_bench_seeding")
    args = parser.parse_args()
    ensure_database(args.database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum

    from rearq_tasks.lifecycle import TERMINAL_STATUSES
    from rearq_tasks.models import TaskLog, TaskStat
    from rearq_tasks.ops import seeding
    from rearq_tasks.rollups import DAY

    call_command("migrate", verbosity=0)
    superuser = seeding._is_superuser
    table = "django_cfg_task_log"

    def run(mode: str) -> tuple[float, int]:
        seeding.truncate()
        seeding._is_superuser = (lambda cursor: True) if mode == "bulk" else (lambda cursor: False)
        if mode == "none":
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            started = time.perf_counter()
            seeding.seed(args.rows, 30, seed=1)
            seconds = time.perf_counter() - started
        finally:
            seeding._is_superuser = superuser
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        # Every terminal row counted once in the day buckets (tests compare bucket by bucket).
        counted = TaskStat.objects.filter(span=DAY).aggregate(n=Sum("jobs"))["n"] or 0
        terminal = TaskLog.objects.filter(status__in=TERMINAL_STATUSES).count()
        return seconds, counted - terminal if mode != "none" else 0

    print(f"{args.rows:,} rows per seeding; load {os.getloadavg()}")
    times: dict[str, list[float]] = {"triggers": [], "bulk": [], "none": []}
    for n in range(args.rounds):
        order = ("triggers", "bulk", "none") if n % 2 == 0 else ("none", "bulk", "triggers")
        for mode in order:
            seconds, miscounted = run(mode)
            times[mode].append(seconds)
            print(f"round {n + 1} {mode:8} {seconds:6.1f} s", flush=True)
            assert miscounted == 0, f"{mode}: rollups count {miscounted:+} jobs off the rows"
    base = statistics.median(times["none"])
    for mode in ("triggers", "bulk"):
        med = statistics.median(times[mode])
        print(
            f"{mode:8} median {med:.1f} s = {med / base:.2f}× "
            f"seeding without rollups ({base:.1f} s)"
        )
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
