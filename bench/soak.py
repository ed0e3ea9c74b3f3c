"""Fault-injection soak: ``python bench/soak.py --jobs 10000`` (PostgreSQL + redis-server).

Runs the mixed job load of ``bench/soakkit.py`` across two ``manage.py rearq_worker``
processes and a ``rearq_timer`` while it SIGKILLs a worker twice, cuts the Django database
(through the soak's own proxy) and then slows it, and restarts the soak's own Redis. Then one
``sync_task_logs`` and a field-by-field comparison of TaskLog with ReArq's tables. Exits 1
when a job is missing, duplicated or wrong, or left in progress.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.soakkit import SoakConfig, format_report, run_soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=80.0, help="Jobs enqueued per second.")
    parser.add_argument("--db-down", type=float, default=10.0, help="Seconds unreachable.")
    parser.add_argument("--db-slow", type=float, default=10.0, help="Seconds slow after that.")
    parser.add_argument("--db-slow-ms", type=float, default=200.0)
    parser.add_argument("--redis-down", type=float, default=2.0)
    parser.add_argument("--db-name", default="rt_soak", help="Django database (recreated).")
    parser.add_argument("--workdir", type=Path, default=None, help="Logs (default: a temp dir).")
    args = parser.parse_args()
    config = SoakConfig(
        jobs=args.jobs, rate=args.rate, db_down_s=args.db_down, db_slow_s=args.db_slow,
        db_slow_ms=args.db_slow_ms, redis_down_s=args.redis_down, django_db=args.db_name,
        rearq_db=f"{args.db_name}_rearq", workdir=args.workdir,
        log=lambda message: print(message, flush=True),
    )  # fmt: skip
    result = run_soak(config)
    print(format_report(result))
    c = result.comparison
    return 1 if (c.missing or c.duplicated or c.wrong or c.extra or c.left_in_progress) else 0


if __name__ == "__main__":
    sys.exit(main())
