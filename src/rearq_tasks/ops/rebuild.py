"""Rebuild the statistics rollups from TaskLog rows, one UTC day per transaction.

For installations that had rows before the rollups existed, and after manual edits. Each
day is replaced whole (its 15-minute and day buckets deleted, then recomputed from the rows
with the triggers' own SQL), so a run can stop anywhere and be started again from the day it
reached (``since``): memory stays bounded by one day's grouped rows, held in the database.
On PostgreSQL the rollup tables are locked for the length of one day's transaction, so a
collector's trigger waits instead of adding to a day being rebuilt.

A day whose rows retention already deleted in part loses those jobs' statistics: pass
``since`` to rebuild only the days whose rows are whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import Min
from django.utils import timezone

from rearq_tasks.models import TaskLog, TaskStat, TaskStatBin
from rearq_tasks.rollup_sql import BIN_TABLE, STAT_TABLE, add_sql, rows_source, terminal_list
from rearq_tasks.rollups import DAY, SPANS, floor_bucket


@dataclass(frozen=True)
class RebuildResult:
    days: int
    first_day: dt.datetime | None
    last_day: dt.datetime | None


def rebuild(
    since: dt.datetime | None = None,
    progress: Callable[[dt.datetime, int, int], None] | None = None,
    until: dt.datetime | None = None,
    using: str = "default",
) -> RebuildResult:
    """Recompute the rollups of every UTC day from ``since``'s (default: the oldest row's)."""
    if since is None:
        since = TaskLog.objects.using(using).aggregate(first=Min("enqueue_time"))["first"]
        if since is None:
            return RebuildResult(0, None, None)
    first = floor_bucket(since, DAY)
    last = floor_bucket(until or timezone.now(), DAY)
    total = (last - first).days + 1
    day = first
    for n in range(total):
        _rebuild_day(day, using)
        if progress:
            progress(day, n + 1, total)
        day += dt.timedelta(days=1)
    return RebuildResult(total, first, last)


def _rebuild_day(day: dt.datetime, using: str) -> None:
    connection = connections[using]
    end = day + dt.timedelta(days=1)
    adapt = connection.ops.adapt_datetimefield_value
    where = f"t.enqueue_time >= %s AND t.enqueue_time < %s AND t.status IN ({terminal_list()})"
    source = rows_source(connection.vendor, where.replace("%s", "§"))
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {STAT_TABLE}, {BIN_TABLE} IN EXCLUSIVE MODE")
        for model in (TaskStat, TaskStatBin):
            # Every span's buckets of the day, which lie inside it (a day is whole hours
            # and whole quarters).
            model.objects.using(using).filter(
                span__in=SPANS, bucket__gte=day, bucket__lt=end
            ).delete()
        for statement in add_sql(connection.vendor, source):
            sql = statement.replace("%", "%%").replace("§", "%s")
            cursor.execute(sql, [adapt(day), adapt(end)])
