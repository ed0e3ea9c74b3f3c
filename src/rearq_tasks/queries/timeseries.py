"""Per-hour or per-day buckets of a TaskLog queryset, every bucket present, in local time.

Rows are grouped by whole hours since the first bucket's start (``date_bin`` on
PostgreSQL, epoch arithmetic elsewhere); days are folded from hours. No per-row time-zone
conversion, so it works on MariaDB without time-zone tables and keeps DST exact.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from django.db.models import (
    Count,
    Sum,
)
from django.utils import timezone

import rearq_tasks.queries.rollup_figures as rollup_figures
from rearq_tasks.models import FAILED, SUCCESSFUL, since_q
from rearq_tasks.queries.expressions import hours_since, vendor
from rearq_tasks.queries.rollup import Scope
from rearq_tasks.rollups import DAY, HOUR, QUARTER

if TYPE_CHECKING:
    from rearq_tasks.models import TaskLogQuerySet

Interval = Literal["hour", "day"]
INTERVALS: tuple[str, ...] = ("hour", "day")


def bucket_starts(
    start: dt.datetime, end: dt.datetime, interval: Interval, tz: dt.tzinfo
) -> list[dt.datetime]:
    """Every bucket start (aware, in ``tz``) from the bucket holding ``start`` to ``end``'s.

    Hours are stepped in absolute time, so a DST change gives 23 or 25 distinct hours;
    days follow the local calendar.
    """
    first = _truncate(start.astimezone(tz), interval)
    buckets: list[dt.datetime] = []
    if interval == "hour":
        current = first.astimezone(dt.UTC)
        while current <= end:
            buckets.append(current.astimezone(tz))
            current += dt.timedelta(hours=1)
    else:
        day = first.date()
        last = end.astimezone(tz).date()
        while day <= last:
            buckets.append(_local_midnight(day, tz))
            day += dt.timedelta(days=1)
    return buckets


def _truncate(local: dt.datetime, interval: str) -> dt.datetime:
    if interval == "hour":
        # An hour boundary is the same instant whatever the offset's whole hours; keep
        # the offset's minutes (India +05:30) by truncating the local wall clock.
        return local.replace(minute=0, second=0, microsecond=0)
    return _local_midnight(local.date(), local.tzinfo)  # type: ignore[arg-type]


def _local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    # A day that starts in a DST gap (rare: e.g. America/Santiago) starts at the first
    # existing instant; round-tripping through UTC normalises it.
    return midnight.astimezone(dt.UTC).astimezone(tz)


def _timeline_tz() -> dt.tzinfo:
    current = timezone.get_current_timezone()
    return current if current is not None else zoneinfo.ZoneInfo("UTC")


def timeline(
    qs: Scope | TaskLogQuerySet,
    period_hours: int | float,
    interval: Interval = "hour",
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Per-bucket totals over the last ``period_hours``, every bucket present (zeros if empty).

    Rows are those enqueued within the period (``since_q``), so the buckets sum to the
    ``summary`` total of the same period; the first and last buckets may be partial.
    Buckets are hours or days in the current time zone (``TIME_ZONE`` unless activated).
    A :class:`Scope` (its task and queue; the period is ``period_hours``) is read from the
    15-minute rollups, which any local hour or day is a union of; a queryset from its rows.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    now = now or timezone.now()
    start = now - dt.timedelta(hours=period_hours)
    tz = _timeline_tz()
    starts = bucket_starts(start, now, interval, tz)
    if isinstance(qs, Scope):
        index_of = _bucket_index(starts, interval, tz)
        counted = rollup_figures.timeline_counts(
            qs.narrowed(since=start), starts[0], index_of, _coarsest_span(starts, interval)
        )
    else:
        counted = _count_buckets(qs.order_by().filter(since_q(start)), starts, interval, tz)
    series = []
    for index, bucket in enumerate(starts):
        total, successful, failed, avg = counted.get(index, (0, 0, 0, None))
        series.append(
            {
                "timestamp": bucket.isoformat(),
                "total": total,
                "successful": successful,
                "failed": failed,
                "avg_duration_ms": int(round(avg)) if avg is not None else 0,
            }
        )
    return series


def _count_buckets(
    rows: TaskLogQuerySet, starts: list[dt.datetime], interval: str, tz: dt.tzinfo
) -> dict[int, tuple[int, int, int, float | None]]:
    """Bucket index → (total, successful, failed, avg duration), from one GROUP BY query.

    Rows are grouped by whole hours since the first bucket start: plain arithmetic on the
    indexed column, no per-row time-zone conversion (MariaDB without time-zone tables
    cannot convert at all) and DST-exact, because every local day or hour boundary of a
    whole-hour-offset zone lies on that grid. Days are folded from their hours here; that
    is at most ``MAX_PERIOD_HOURS`` small group rows, never table rows.
    """
    if not starts:
        return {}
    origin = starts[0]
    grouped = (
        rows.annotate(_hour=hours_since(origin, "enqueue_time", vendor(rows) == "postgresql"))
        .values("_hour")
        .annotate(
            _total=Count("*"),
            _successful=Count("enqueue_time", filter=SUCCESSFUL),
            _failed=Count("enqueue_time", filter=FAILED),
            _timed=Count("duration_ms"),
            _duration=Sum("duration_ms"),
        )
        .order_by()
    )
    index_of = _bucket_index(starts, interval, tz)
    sums: dict[int, list[int]] = {}
    for row in grouped:
        key = row["_hour"]
        if isinstance(key, dt.datetime):
            key = round((key - origin).total_seconds() / 3600)
        index = index_of(int(key))
        if index is None:
            continue
        acc = sums.setdefault(index, [0, 0, 0, 0, 0])
        acc[0] += row["_total"]
        acc[1] += row["_successful"]
        acc[2] += row["_failed"]
        acc[3] += row["_timed"]
        acc[4] += row["_duration"] or 0
    return {
        index: (total, ok, failed, duration / timed if timed else None)
        for index, (total, ok, failed, timed, duration) in sums.items()
    }


def _coarsest_span(starts: list[dt.datetime], interval: str) -> int:
    """The coarsest rollup span each of whose buckets lies inside one timeline bucket.

    Local hours of a zone whose offsets are whole hours are UTC hours, and local days of
    UTC are UTC days: then a timeline reads 4 (or 96) times fewer rollup rows. Anything
    else (+05:30, +05:45, a half-hour daylight-saving shift) is a union of quarters only.
    """
    utc = [start.astimezone(dt.UTC) for start in starts]
    if all(u.minute == u.second == u.microsecond == 0 for u in utc):
        if interval == "day" and all(u.hour == 0 for u in utc):
            return DAY
        return HOUR
    return QUARTER


def _bucket_index(
    starts: list[dt.datetime], interval: str, tz: dt.tzinfo
) -> Callable[[int], int | None]:
    """Hours since the first bucket start → bucket index (None outside the period).

    Hours map one to one; a day bucket collects the hours whose local date is its own.
    """
    if interval == "hour":

        def index_of(hours: int) -> int | None:
            return hours if 0 <= hours < len(starts) else None

        return index_of
    origin = starts[0]
    day_index = {s.date(): i for i, s in enumerate(starts)}

    def day_of(hours: int) -> int | None:
        instant = origin + dt.timedelta(hours=hours)
        return day_index.get(instant.astimezone(tz).date())

    return day_of
