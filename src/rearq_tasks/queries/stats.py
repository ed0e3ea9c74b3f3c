"""Aggregates over a TaskLog queryset: summary, overview and per-task figures.

The API, the admin dashboard, health checks and alert rules all call these (usually
through the thin ``TaskLogQuerySet`` methods), so a figure means the same everywhere.
Every count is a ``Count(filter=<named Q>)`` from :mod:`rearq_tasks.models` and every
figure is computed by the database: one aggregate query for :func:`summary` on
PostgreSQL (``percentile_cont ... WITHIN GROUP``); elsewhere the percentiles are read
with two-row ``OFFSET`` look-ups (a few small queries, never all rows in Python).
The timeline lives in :mod:`rearq_tasks.queries.timeseries` (re-exported here).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.db.models import Avg, Case, Count, ExpressionWrapper, F, FloatField, Value, When
from django.db.models.expressions import RawSQL

import rearq_tasks.queries.rollup_figures as rollup_figures
from rearq_tasks.models import (
    ACTIVE,
    COMPLETED,
    FAILED,
    RETRIED,
    SUCCESSFUL,
    WITH_ERROR,
    since_q,
)
from rearq_tasks.queries.expressions import (
    MillisecondsBetween,
    PercentileCont,
    parse_order,
    queue_wait_ms,
    vendor,
)
from rearq_tasks.queries.rollup import Scope, int_or_none, outcome_rate, rate, wait_expression
from rearq_tasks.queries.timeseries import INTERVALS, bucket_starts, timeline

if TYPE_CHECKING:
    from rearq_tasks.models import TaskLogQuerySet

__all__ = [
    "INTERVALS",
    "MillisecondsBetween",
    "PercentileCont",
    "bucket_starts",
    "by_task",
    "overview",
    "queue_wait_ms",
    "summary",
    "timeline",
]

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
# Counts read only columns of the covering index (migration 0002) so PostgreSQL can answer
# from the index alone: COUNT(*) and, with a filter, COUNT of the NOT NULL enqueue_time.


_rate = rate
_int_or_none = int_or_none


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


def summary(qs: Scope | TaskLogQuerySet) -> dict[str, Any]:
    """Counts, rates, average and percentile durations and queue waits of ``qs``.

    Success and failure rates are % of successful + failed (:func:`outcome_rate`), the retry
    rate % of total, 2 decimals (0.0 when there is nothing to divide by); durations and
    waits are whole milliseconds, ``None`` when no row has one (``avg_duration_ms`` is 0).
    A :class:`Scope` is read from the rollups, a queryset from its rows.
    """
    if isinstance(qs, Scope):
        return rollup_figures.summary(qs)
    qs = qs.order_by()
    wait = RawSQL(wait_expression(qs.db), ())
    aggregates: dict[str, Any] = {
        "total": Count("*"),
        "successful": Count("enqueue_time", filter=SUCCESSFUL),
        "failed": Count("enqueue_time", filter=FAILED),
        "in_progress": Count("enqueue_time", filter=ACTIVE),
        "completed": Count("enqueue_time", filter=COMPLETED),
        "retried": Count("enqueue_time", filter=RETRIED),
        "with_duration": Count("duration_ms"),
        "with_wait": Count("start_time"),
        "avg_duration": Avg("duration_ms"),
        "avg_wait": Avg(wait),
    }
    on_postgres = vendor(qs) == "postgresql"
    if on_postgres:
        for label, fraction in PERCENTILES:
            aggregates[f"{label}_duration"] = PercentileCont("duration_ms", fraction)
        aggregates["p95_wait"] = PercentileCont(wait, 0.95)
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
            .annotate(_wait=wait)
            .order_by("_wait")
            .values_list("_wait")
        )
        row["p95_wait"] = _percentile_by_offset(waits, row["with_wait"], 0.95)
    return _summary_figures(row)


def _summary_figures(row: dict[str, Any]) -> dict[str, Any]:
    avg_duration = row["avg_duration"] or 0
    total, completed = row["total"], row["completed"]
    return {
        "total": total,
        "successful": row["successful"],
        "failed": row["failed"],
        "in_progress": row["in_progress"],
        "completed": completed,
        "success_rate": outcome_rate(row["successful"], row["successful"], row["failed"]),
        "failure_rate": outcome_rate(row["failed"], row["successful"], row["failed"]),
        "retry_rate": _rate(row["retried"], total),
        "avg_duration_ms": int(round(avg_duration)),
        "avg_duration_seconds": round(avg_duration / 1000, 2),
        "p50_duration_ms": _int_or_none(row["p50_duration"]),
        "p95_duration_ms": _int_or_none(row["p95_duration"]),
        "p99_duration_ms": _int_or_none(row["p99_duration"]),
        "avg_queue_wait_ms": _int_or_none(row["avg_wait"]),
        "p95_queue_wait_ms": _int_or_none(row["p95_wait"]),
    }


# --- overview and per task ----------------------------------------------------


def overview(qs: Scope | TaskLogQuerySet, recent_hours: int = 24) -> dict[str, Any]:
    """Totals by queue and status over ``qs``; failures and active queues of the recent past.

    "Recent" means enqueued in the last ``recent_hours``; a queue is "active" when it had at
    least one job enqueued in that window. Two GROUP BY queries (``.order_by()`` first, so
    ``Meta.ordering`` cannot leak into the grouping). A :class:`Scope` is read from the
    rollups: its totals include jobs whose rows retention has deleted.
    """
    if isinstance(qs, Scope):
        recent = Scope.period(recent_hours)
        if qs.since is not None and qs.since > recent.since:  # type: ignore[operator]
            recent = recent.narrowed(since=qs.since)
        recent = recent.narrowed(task_name=qs.task_name, queue_name=qs.queue_name)
        return rollup_figures.overview(qs, recent)
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
    qs: Scope | TaskLogQuerySet, order_by: str = "-failures", limit: int | None = 20
) -> list[dict[str, Any]]:
    """One row per task name: count, failures, failure rate, avg/p95 duration, latest error.

    Suited to "top failing tasks" / "slowest tasks" panels and per-task alert rules.
    ``order_by`` is one of ``BY_TASK_ORDERINGS``, optionally prefixed with ``-``. The
    latest error is a correlated subquery served by the ``(task_name, -enqueue_time)``
    index. On PostgreSQL p95 is ``percentile_cont`` in the same query; elsewhere it is read
    per returned task with two-row OFFSET look-ups (and p95 ordering happens after that).
    """
    field, descending = parse_order(order_by, BY_TASK_ORDERINGS)
    if isinstance(qs, Scope):
        rows = rollup_figures.order_rows(rollup_figures.task_rows(qs), field, descending)
        rows = rows[:limit] if limit else rows
        _add_latest_errors(qs.rows(), rows)
        return [{k: v for k, v in row.items() if k != "avg_retries"} for row in rows]
    qs = qs.order_by()
    on_postgres = vendor(qs) == "postgresql"
    grouped = _grouped_by_task(qs, on_postgres)
    if field == "p95_duration_ms" and not on_postgres:
        return _by_task_sorted_by_p95(qs, grouped, descending, limit)
    column = F(_BY_TASK_SQL_ORDER[field])
    grouped = grouped.order_by(
        column.desc(nulls_last=True) if descending else column.asc(nulls_last=True),
        "task_name",
    )
    rows = list(grouped[:limit] if limit else grouped)
    if not on_postgres:
        _add_p95_by_offset(qs, rows)
    _add_latest_errors(qs, rows)
    return [_task_row(row) for row in rows]


# The grouped query's column for each ordering (p95 is one only on PostgreSQL).
_BY_TASK_SQL_ORDER: dict[str, str] = {
    "failures": "failures",
    "failure_rate": "failure_rate_raw",
    "total": "total",
    "avg_duration_ms": "avg_duration",
    "p95_duration_ms": "p95_duration",
    "task_name": "task_name",
}


def _grouped_by_task(qs: TaskLogQuerySet, on_postgres: bool) -> TaskLogQuerySet:
    """The per-task GROUP BY, unordered; p95 in it only where ``percentile_cont`` exists."""
    annotations: dict[str, Any] = {
        "total": Count("*"),
        "failures": Count("enqueue_time", filter=FAILED),
        "successful": Count("enqueue_time", filter=SUCCESSFUL),
        "completed": Count("enqueue_time", filter=COMPLETED),
        "with_duration": Count("duration_ms"),
        "avg_duration": Avg("duration_ms"),
    }
    if on_postgres:
        annotations["p95_duration"] = PercentileCont("duration_ms", 0.95)
    return (
        qs.values("task_name")
        .annotate(**annotations)
        .annotate(
            failure_rate_raw=Case(  # outcome_rate, in SQL
                When(failures=0, then=Value(0.0)),
                default=ExpressionWrapper(
                    F("failures") * 100.0 / (F("successful") + F("failures")),
                    output_field=FloatField(),
                ),
                output_field=FloatField(),
            ),
        )
    )


def _add_p95_by_offset(qs: TaskLogQuerySet, rows: list[dict[str, Any]]) -> None:
    """Set ``p95_duration`` on each grouped row without ``percentile_cont`` (not PostgreSQL)."""
    for row in rows:
        durations = (
            qs.filter(task_name=row["task_name"], duration_ms__isnull=False)
            .order_by("duration_ms")
            .values_list("duration_ms")
        )
        row["p95_duration"] = _percentile_by_offset(durations, row["with_duration"], 0.95)


def _by_task_sorted_by_p95(
    qs: TaskLogQuerySet, grouped: TaskLogQuerySet, descending: bool, limit: int | None
) -> list[dict[str, Any]]:
    """Ordering by p95 off PostgreSQL: every task's p95 is read first, then sorted here.

    Tasks without a duration come last either way; ties go by task name.
    """
    rows = list(grouped)
    _add_p95_by_offset(qs, rows)
    result = [_task_row(row) for row in rows]
    result.sort(key=lambda r: r["task_name"])
    result.sort(
        key=lambda r: (r["p95_duration_ms"] is None, _signed(r["p95_duration_ms"], descending))
    )
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
        "successful": row["successful"],
        "completed": row["completed"],
        "failure_rate": outcome_rate(row["failures"], row["successful"], row["failures"]),
        "avg_duration_ms": _int_or_none(row["avg_duration"]),
        "p95_duration_ms": _int_or_none(row["p95_duration"]),
        "latest_error": row.get("latest_error"),
    }
