"""``manage.py seed_task_logs --count N --days D [--seed S]``: realistic rows, fast.

Generated rows carry the ``seed.`` marker in their task name. The command refuses to write
into (or ``--truncate``) a table holding any row without it — real jobs — unless ``--force``.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from rearq_tasks.ops.seeding import SEED_PREFIX, foreign_rows, seed, truncate

MAX_COUNT = 100_000_000
MAX_BATCH_SIZE = 1_000_000
MAX_DAYS = 36_500


def _positive_int(value: str, maximum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"expected a whole number, got {value!r}") from None
    if number <= 0:
        raise CommandError(f"must be greater than 0, got {number}")
    if number > maximum:
        raise CommandError(f"must be at most {maximum:,}, got {value[:20]}…")
    return number


def _positive_float(value: str, maximum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise CommandError(f"expected a number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise CommandError(f"must be a positive number, got {value}")
    if number > maximum:
        raise CommandError(f"must be at most {maximum:,g}, got {value[:20]}…")
    return number


class Command(BaseCommand):
    help = "Write realistic TaskLog rows (all statuses, log-normal durations, retries, errors)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=str, default="1000", help="rows to write")
        parser.add_argument("--days", type=str, default="7", help="spread over the last D days")
        parser.add_argument(
            "--seed", type=str, default="0", help="random seed (same seed, same rows)"
        )
        parser.add_argument("--batch-size", type=str, default="10000")
        parser.add_argument(
            "--truncate", action="store_true", help="delete existing rows and their history first"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="write (or truncate) even though the table holds rows this command did not make",
        )
        parser.add_argument("--database", default="default", choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        count = _positive_int(options["count"], MAX_COUNT)
        days = _positive_float(options["days"], MAX_DAYS)
        batch_size = _positive_int(options["batch_size"], MAX_BATCH_SIZE)
        try:
            seed_value = int(options["seed"])
        except ValueError:
            raise CommandError(f"--seed expects a whole number, got {options['seed']!r}") from None
        using = options["database"]
        if not options["force"] and foreign_rows(using):
            raise CommandError(
                f"the TaskLog table of database {using!r} holds rows seed_task_logs did not "
                f"generate (task names without the {SEED_PREFIX!r} marker): real jobs, "
                "presumably. Generated rows would mix into their figures"
                + (" and --truncate would delete them" if options["truncate"] else "")
                + ". Use a database of its own (--database), or pass --force if that is "
                "really what you want."
            )
        if options["truncate"]:
            self.stdout.write(f"deleted {truncate(using):,} existing rows")
        started = time.monotonic()
        verbosity = options["verbosity"]

        def progress(done: int) -> None:
            if verbosity:
                rate = done / max(time.monotonic() - started, 1e-6)
                self.stdout.write(
                    f"\r{done:>10,}/{count:,} rows ({done / count:6.1%}, {rate:,.0f}/s)", ending=""
                )
                self.stdout.flush()

        written = seed(
            count, days, seed_value, batch_size=batch_size, using=using, progress=progress
        )
        elapsed = time.monotonic() - started
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(f"wrote {written:,} task logs over {days:g} days in {elapsed:.1f}s")
        )
