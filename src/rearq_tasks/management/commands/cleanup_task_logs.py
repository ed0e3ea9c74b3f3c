"""``manage.py cleanup_task_logs [--days N] [--failed-days N] [--batch-size N] [--dry-run]``.

Deletes TaskLog rows past retention in short batches (see :mod:`rearq_tasks.ops.retention`),
and audit entries older than ``AUDIT_RETENTION_DAYS`` (:func:`rearq_tasks.audit.purge`).
Exit status: 0 done (or nothing to do), 1 bad options (CommandError; nothing deleted).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from rearq_tasks import audit
from rearq_tasks.conf import conf
from rearq_tasks.ops.retention import DEFAULT_BATCH_SIZE, purge, purge_stats

MAX_DAYS = 36_500  # a timedelta holds at most 999,999,999 days; no retention is longer
MAX_BATCH_SIZE = 1_000_000


def _whole_number(
    option: str, value: str | int | None, minimum: int = 1, maximum: int = MAX_DAYS
) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"{option} expects a whole number, got {value!r}") from None
    if number < minimum:
        raise CommandError(f"{option} must be {minimum} or more, got {number}")
    if number > maximum:
        raise CommandError(f"{option} must be at most {maximum:,}, got {str(value)[:20]}…")
    return number


class Command(BaseCommand):
    help = (
        "Delete TaskLog rows enqueued more than --days days ago (failed jobs: --failed-days), "
        "in short batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=str, default=None, help="keep this many days (default RETENTION_DAYS)"
        )
        parser.add_argument(
            "--failed-days",
            type=str,
            default=None,
            help="keep failed jobs this many days (default FAILED_RETENTION_DAYS, else --days)",
        )
        parser.add_argument(
            "--batch-size",
            type=str,
            default=str(DEFAULT_BATCH_SIZE),
            help=f"rows per delete statement (default {DEFAULT_BATCH_SIZE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
        parser.add_argument("--database", default="default", choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        days = _whole_number("--days", options["days"]) or conf.RETENTION_DAYS
        failed_days = _whole_number("--failed-days", options["failed_days"])
        if failed_days is None:
            failed_days = conf.FAILED_RETENTION_DAYS
        if failed_days is not None and failed_days < days:
            raise CommandError(
                f"--failed-days ({failed_days}) must not be shorter than --days ({days})"
            )
        batch_size = _whole_number("--batch-size", options["batch_size"], maximum=MAX_BATCH_SIZE)
        assert batch_size is not None
        verbose = options["verbosity"] >= 1
        started = time.monotonic()
        last_shown = [0.0]

        def progress(deleted: int, matched: int) -> None:
            now = time.monotonic()
            if verbose and (now - last_shown[0] >= 1 or deleted == matched):
                last_shown[0] = now
                self.stdout.write(
                    f"  {deleted:,}/{matched:,} deleted ({100 * deleted / matched:.0f} %)"
                )

        if not options["dry_run"]:
            stats = purge_stats(using=options["database"])
            if verbose:
                self.stdout.write(
                    f"deleted {stats:,} statistics rows older than "
                    f"{conf.STATS_RETENTION_DAYS} days (STATS_RETENTION_DAYS)"
                )
        result = purge(
            days=days,
            failed_days=failed_days,
            batch_size=batch_size,
            dry_run=options["dry_run"],
            progress=progress,
            using=options["database"],
        )
        scope = f"enqueued before {result.cutoff:%Y-%m-%d %H:%M %Z}"
        if result.failed_cutoff != result.cutoff:
            scope += f"; failed jobs before {result.failed_cutoff:%Y-%m-%d %H:%M %Z}"
        audited = audit.purge(batch_size=batch_size, dry_run=result.dry_run)
        audit_scope = f"audit entries older than {conf.AUDIT_RETENTION_DAYS} days"
        if result.dry_run:
            self.stdout.write(f"dry run: {result.matched:,} rows would be deleted ({scope})")
            self.stdout.write(f"dry run: {audited:,} {audit_scope} would be deleted")
            return
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"deleted {result.deleted:,} rows {scope} in {result.batches} batch(es), "
                f"{elapsed:.1f} s"
            )
        )
        self.stdout.write(f"deleted {audited:,} {audit_scope}")
