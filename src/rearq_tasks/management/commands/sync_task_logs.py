"""``manage.py sync_task_logs``: reconcile TaskLog with ReArq's own tables (idempotent)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from rearq_tasks.management.commands._rearq import client_with_tasks


def parse_since(value: str) -> dt.datetime:
    """``--since`` as hours ago (``24``, ``1.5``) or an ISO datetime (``2026-11-01T00:00``)."""
    try:
        hours = float(value)
    except ValueError:
        pass
    else:
        if hours <= 0:
            raise CommandError(f"--since must be a positive number of hours, not {value!r}")
        return timezone.now() - dt.timedelta(hours=hours)
    try:
        parsed = parse_datetime(value) or (
            dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
        )
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"--since must be hours (e.g. 24) or an ISO date/datetime, not {value!r}"
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


class Command(BaseCommand):
    help = (
        "Import and repair TaskLog rows from ReArq's rearq_job/rearq_job_results tables, "
        "re-enqueue (once) jobs a dead worker fetched but never started, and fail jobs a "
        "killed worker left in progress mid-run. Safe to run at any time, repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", default=None, help="Only jobs enqueued since: hours ago or ISO datetime."
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        from rearq_tasks.queue.jobs import sync_task_logs
        from rearq_tasks.queue.loop import ReArqUnavailable

        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        since = parse_since(options["since"]) if options["since"] else None
        client_with_tasks()
        verbosity = options["verbosity"]

        def progress(done: int, total: int) -> None:
            if verbosity >= 1:
                self.stdout.write(f"  {done}/{total} jobs")

        try:
            report = sync_task_logs(since, options["batch_size"], progress)
        except ReArqUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"sync_task_logs: {report}"))
