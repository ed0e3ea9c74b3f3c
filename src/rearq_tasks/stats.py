"""Aggregates over a TaskLog queryset: summary, timeline, overview and per-task figures.

The API, the admin dashboard, health checks and alert rules all call these (usually
through the thin ``TaskLogQuerySet`` methods), so a figure means the same everywhere.
Every count is a ``Count(filter=<named Q>)`` from :mod:`rearq_tasks.models` and every
figure is computed by the database: one aggregate query for :func:`summary` on
PostgreSQL (``percentile_cont ... WITHIN GROUP``); elsewhere the percentiles are read
with two-row ``OFFSET`` look-ups (a few small queries, never all rows in Python).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import TYPE_CHECKING, Any, Literal

from django.db import connections
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Floor
from django.utils import timezone

from rearq_tasks.models import (
    COMPLETED,
    FAILED,
    QUEUED,
    RETRIED,
    RUNNING,
    SUCCESSFUL,
    WITH_ERROR,
    since_q,
)

if TYPE_CHECKING:
    from rearq_tasks.models import TaskLogQuerySet

Interval = Literal["hour", "day"]
INTERVALS: tuple[str, ...] = ("hour", "day")
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
IN_PROGRESS = QUEUED | RUNNING
"""What the stats call "in progress": queued or running (deferred retries are not)."""
# Counts read only columns of the covering index (migration 0002) so PostgreSQL can answer
# from the index alone: COUNT(*) and, with a filter, COUNT of the NOT NULL enqueue_time.


class MillisecondsBetween(Func):
    """``end - start`` in milliseconds as a float, on every supported database."""

    output_field = FloatField()
    # (template, whether the end expression comes first in it)
    templates: dict[str, tuple[str, bool]] = {
        "postgresql": ("(date_part('epoch', {} - {}) * 1000)", True),
        "sqlite": ("((julianday({}) - julianday({})) * 86400000.0)", True),
        "mysql": ("(TIMESTAMPDIFF(MICROSECOND, {}, {}) / 1000.0)", False),
    }

    def __init__(self, start: Any, end: Any, **extra: Any) -> None:
        super().__init__(start, end, **extra)

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        template, end_first = self.templates.get(connection.vendor, ("(({}) - ({}))", True))
        start = compiler.compile(self.source_expressions[0])
        end = compiler.compile(self.source_expressions[1])
        first, second = (end, start) if end_first else (start, end)
        return template.format(first[0], second[0]), (*first[1], *second[1])


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY expr)`` (one sort pass)."""

    function = "percentile_cont"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be within [0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def queue_wait_ms() -> MillisecondsBetween:
    """Start − enqueue of a row in milliseconds (NULL until it starts)."""
    return MillisecondsBetween(F("enqueue_time"), F("start_time"))


def _vendor(qs: TaskLogQuerySet) -> str:
    return connections[qs.db].vendor


def _rate(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0.0


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _percentile_by_offset(values: TaskLogQuerySet, n: int, fraction: float) -> float | None:
    """``percentile_cont`` reproduced with one two-row OFFSET look-up on a sorted column.

    ``values`` is a queryset of one ordered, non-null value; ``n`` its row count.
    """
    if n == 0:
        return None
    position = fraction * (n - 1)
    low = math.floor(position)
    rows = [row[0] for row in values[low : low + 2]]
    if not rows:
        return None
    if len(rows) == 1 or position == low:
        return float(rows[0])
    return float(rows[0]) + (float(rows[1]) - float(rows[0])) * (position - low)


def summary(qs: TaskLogQuerySet) -> dict[str, Any]:
    """Counts, rates, average and percentile durations and queue waits of ``qs``.

    Rates are percentages with 2 decimals (0.0 when nothing completed); durations and
    waits are whole milliseconds, ``None`` when no row has one (``avg_duration_ms`` is 0).
    """
    qs = qs.order_by()
    wait = queue_wait_ms()
    aggregates: dict[str, Any] = {
        "total": Count("*"),
        "successful": Count("enqueue_time", filter=SUCCESSFUL),
        "failed": Count("enqueue_time", filter=FAILED),
        "in_progress": Count("enqueue_time", filter=IN_PROGRESS),
        "completed": Count("enqueue_time", filter=COMPLETED),
        "retried": Count("enqueue_time", filter=RETRIED),
        "with_duration": Count("duration_ms"),
        "with_wait": Count("start_time"),
        "avg_duration": Avg("duration_ms"),
        "avg_wait": Avg(wait),
    }
    on_postgres = _vendor(qs) == "postgresql"
    if on_postgres:
        for label, fraction in PERCENTILES:
            aggregates[f"{label}_duration"] = PercentileCont("duration_ms", fraction)
        aggregates["p95_wait"] = PercentileCont(queue_wait_ms(), 0.95)
    row = qs.aggregate(**aggregates)
    if not on_postgres:
        durations = qs.filter(duration_ms__isnull=False).order_by("duration_ms")
        durations = durations.values_list("duration_ms")
        for label, fraction in PERCENTILES:
            row[f"{label}_duration"] = _percentile_by_offset(
                durations, row["with_duration"], fraction
            )
        waits = (
            qs.filter(start_time__isnull=False)
            .annotate(_wait=queue_wait_ms())
            .order_by("_wait")
            .values_list("_wait")
        )
        row["p95_wait"] = _percentile_by_offset(waits, row["with_wait"], 0.95)
    avg_duration = row["avg_duration"] or 0
    total, completed = row["total"], row["completed"]
    return {
        "total": total,
        "successful": row["successful"],
        "failed": row["failed"],
        "in_progress": row["in_progress"],
        "completed": completed,
        "success_rate": _rate(row["successful"], completed),
        "failure_rate": _rate(row["failed"], completed),
        "retry_rate": _rate(row["retried"], total),
        "avg_duration_ms": int(round(avg_duration)),
        "avg_duration_seconds": round(avg_duration / 1000, 2),
        "p50_duration_ms": _int_or_none(row["p50_duration"]),
        "p95_duration_ms": _int_or_none(row["p95_duration"]),
        "p99_duration_ms": _int_or_none(row["p99_duration"]),
        "avg_queue_wait_ms": _int_or_none(row["avg_wait"]),
        "p95_queue_wait_ms": _int_or_none(row["p95_wait"]),
    }


# --- timeline -----------------------------------------------------------------


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
    qs: TaskLogQuerySet,
    period_hours: int | float,
    interval: Interval = "hour",
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Per-bucket totals over the last ``period_hours``, every bucket present (zeros if empty).

    Rows are those enqueued within the period (``since_q``), so the buckets sum to the
    ``summary`` total of the same period; the first and last buckets may be partial.
    Buckets are hours or days in the current time zone (``TIME_ZONE`` unless activated).
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    now = now or timezone.now()
    start = now - dt.timedelta(hours=period_hours)
    tz = _timeline_tz()
    starts = bucket_starts(start, now, interval, tz)
    rows = qs.order_by().filter(since_q(start))
    counted = _count_buckets(rows, starts, interval, tz)
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
    hour = Floor(
        ExpressionWrapper(
            MillisecondsBetween(Value(origin), F("enqueue_time")) / Value(3_600_000.0),
            output_field=FloatField(),
        ),
        output_field=IntegerField(),
    )
    grouped = (
        rows.annotate(_hour=hour)
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
    if interval == "hour":

        def index_of(hours: int) -> int | None:
            return hours if 0 <= hours < len(starts) else None
    else:
        day_index = {s.date(): i for i, s in enumerate(starts)}

        def index_of(hours: int) -> int | None:
            instant = origin + dt.timedelta(hours=hours)
            return day_index.get(instant.astimezone(tz).date())

    sums: dict[int, list[int]] = {}
    for row in grouped:
        index = index_of(int(row["_hour"]))
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


# --- overview and per task ----------------------------------------------------


def overview(qs: TaskLogQuerySet, recent_hours: int = 24) -> dict[str, Any]:
    """Totals by queue and status over ``qs``; failures and active queues of the recent past.

    "Recent" means enqueued in the last ``recent_hours``; a queue is "active" when it had at
    least one job enqueued in that window. Two GROUP BY queries (``.order_by()`` first, so
    ``Meta.ordering`` cannot leak into the grouping).
    """
    qs = qs.order_by()
    by_queue: dict[str, int] = {}
    by_status: dict[str, int] = {}
    total = 0
    for row in qs.values("queue_name", "status").annotate(n=Count("*")).order_by():
        by_queue[row["queue_name"]] = by_queue.get(row["queue_name"], 0) + row["n"]
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        total += row["n"]
    recent = (
        qs.filter(since_q(recent_hours))
        .values("queue_name")
        .annotate(failures=Count("enqueue_time", filter=FAILED))
        .order_by()
    )
    active: list[str] = []
    recent_failures = 0
    for row in recent:
        active.append(row["queue_name"])
        recent_failures += row["failures"]
    return {
        "total_tasks": total,
        "active_queues": sorted(active),
        "recent_failures": recent_failures,
        "tasks_by_queue": dict(sorted(by_queue.items())),
        "tasks_by_status": dict(sorted(by_status.items())),
    }


BY_TASK_ORDERINGS: tuple[str, ...] = (
    "failures",
    "failure_rate",
    "total",
    "avg_duration_ms",
    "p95_duration_ms",
    "task_name",
)


def by_task(
    qs: TaskLogQuerySet, order_by: str = "-failures", limit: int | None = 20
) -> list[dict[str, Any]]:
    """One row per task name: count, failures, failure rate, avg/p95 duration, latest error.

    Suited to "top failing tasks" / "slowest tasks" panels and per-task alert rules.
    ``order_by`` is one of ``BY_TASK_ORDERINGS``, optionally prefixed with ``-``. The
    latest error is a correlated subquery served by the ``(task_name, -enqueue_time)``
    index. On PostgreSQL p95 is ``percentile_cont`` in the same query; elsewhere it is read
    per returned task with two-row OFFSET look-ups (and p95 ordering happens after that).
    """
    field = order_by.lstrip("-")
    if field not in BY_TASK_ORDERINGS:
        raise ValueError(f"order_by must be one of {', '.join(BY_TASK_ORDERINGS)}")
    descending = order_by.startswith("-")
    qs = qs.order_by()
    on_postgres = _vendor(qs) == "postgresql"
    annotations: dict[str, Any] = {
        "total": Count("*"),
        "failures": Count("enqueue_time", filter=FAILED),
        "completed": Count("enqueue_time", filter=COMPLETED),
        "with_duration": Count("duration_ms"),
        "avg_duration": Avg("duration_ms"),
    }
    if on_postgres:
        annotations["p95_duration"] = PercentileCont("duration_ms", 0.95)
    grouped = (
        qs.values("task_name")
        .annotate(**annotations)
        .annotate(
            failure_rate_raw=Case(
                When(completed=0, then=Value(0.0)),
                default=ExpressionWrapper(
                    F("failures") * 100.0 / F("completed"), output_field=FloatField()
                ),
                output_field=FloatField(),
            ),
        )
    )
    sql_order = {
        "failures": "failures",
        "failure_rate": "failure_rate_raw",
        "total": "total",
        "avg_duration_ms": "avg_duration",
        "p95_duration_ms": "p95_duration" if on_postgres else None,
        "task_name": "task_name",
    }[field]
    if sql_order is not None:
        column = F(sql_order)
        grouped = grouped.order_by(
            column.desc(nulls_last=True) if descending else column.asc(nulls_last=True),
            "task_name",
        )
        rows = list(grouped[:limit] if limit else grouped)
    else:
        rows = list(grouped)
    if not on_postgres:
        for row in rows:
            durations = (
                qs.filter(task_name=row["task_name"], duration_ms__isnull=False)
                .order_by("duration_ms")
                .values_list("duration_ms")
            )
            row["p95_duration"] = _percentile_by_offset(durations, row["with_duration"], 0.95)
    if sql_order is not None:
        _add_latest_errors(qs, rows)
    result = [_task_row(row) for row in rows]
    if sql_order is None:
        result.sort(key=lambda r: r["task_name"])
        result.sort(key=lambda r: (r[field] is None, _signed(r[field], descending)))
        if limit:
            result = result[:limit]
        _add_latest_errors(qs, result)
    return result


def _add_latest_errors(qs: TaskLogQuerySet, rows: list[dict[str, Any]]) -> None:
    """Set ``latest_error`` on each row: one index-served LIMIT 1 look-up per returned task.

    A correlated subquery in the grouped query would be evaluated per table row (Django
    groups by it), which cost seconds at a million rows; these look-ups walk the
    ``(task_name, -enqueue_time)`` index backwards and stop at the first error.
    """
    for row in rows:
        row["latest_error"] = (
            qs.filter(WITH_ERROR, task_name=row["task_name"])
            .order_by("-enqueue_time")
            .values_list("error_message", flat=True)
            .first()
        )


def _signed(value: float | None, descending: bool) -> float:
    if value is None:
        return 0.0
    return -value if descending else value


def _task_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_name": row["task_name"],
        "total": row["total"],
        "failures": row["failures"],
        "completed": row["completed"],
        "failure_rate": _rate(row["failures"], row["completed"]),
        "avg_duration_ms": _int_or_none(row["avg_duration"]),
        "p95_duration_ms": _int_or_none(row["p95_duration"]),
        "latest_error": row.get("latest_error"),
    }
