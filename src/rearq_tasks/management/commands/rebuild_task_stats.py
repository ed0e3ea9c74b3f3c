"""``manage.py rebuild_task_stats [--since YYYY-MM-DD]``: recompute the statistics rollups."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils.dateparse import parse_date, parse_datetime

from rearq_tasks.ops.rebuild import rebuild


def _since(raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    value = parse_datetime(raw)
    if value is None:
        day = parse_date(raw)
        value = dt.datetime(day.year, day.month, day.day) if day else None
    if value is None:
        raise CommandError(f"--since: {raw!r} is not a date (YYYY-MM-DD) or an ISO datetime")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Rebuild the statistics rollups from TaskLog rows, one UTC day per transaction "
        "(resumable: run again with --since the day it reached)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", default=None, help="first day (UTC) to rebuild; default: the oldest row's"
        )
        parser.add_argument("--database", default="default", choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        since = _since(options["since"])
        started = time.monotonic()
        verbose = options["verbosity"] >= 1

        def progress(day: dt.datetime, done: int, total: int) -> None:
            if verbose:
                self.stdout.write(f"  {day:%Y-%m-%d} rebuilt ({done}/{total} days)")

        result = rebuild(since, progress, using=options["database"])
        if not result.days:
            self.stdout.write("no rows: nothing to rebuild")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"rebuilt {result.days} day(s) from {result.first_day:%Y-%m-%d} in "
                f"{time.monotonic() - started:.1f} s"
            )
        )
