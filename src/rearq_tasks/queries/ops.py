"""Aggregates the operations surfaces (health, alerts, metrics) share beyond :mod:`stats`.

Rates, averages and per-task figures come from :mod:`rearq_tasks.queries.stats` (the API's
vocabulary); what it lacks — backlog and stuck counts by queue, histogram buckets, average
retries — is here. Each is one query composed from the named ``Q``'s of
:mod:`rearq_tasks.models`, grouped in the database — never a loop over rows — and bounded
by an index: status, queue/status or the enqueue time window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.db.models.functions import Coalesce

import rearq_tasks.queries.rollup_figures as rollup_figures
from rearq_tasks.models import QUEUED, TaskLog
from rearq_tasks.queries.rollup import Scope, histograms, records
from rearq_tasks.rollups import DURATION, WAIT, bin_value

DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
WAIT_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)


def _count_by_queue(qs: QuerySet[TaskLog]) -> dict[str, int]:
    return dict(qs.order_by().values_list("queue_name").annotate(n=Count("id")))


def backlog_by_queue() -> dict[str, int]:
    """Queued jobs per queue (served by the queue/status index)."""
    return _count_by_queue(TaskLog.objects.filter(QUEUED))


def stuck_by_queue(older_than: dt.timedelta | int) -> dict[str, int]:
    return _count_by_queue(TaskLog.objects.stuck(older_than))


def oldest_stuck(older_than: dt.timedelta | int, limit: int = 10) -> list[dict]:
    """The ``limit`` longest-running stuck jobs, oldest first."""
    return list(
        TaskLog.objects.stuck(older_than)
        .annotate(started=Coalesce("start_time", "enqueue_time"))
        .order_by("started")
        .values("job_id", "task_name", "queue_name", "started", "worker_id")[:limit]
    )


@dataclass(frozen=True)
class TaskWindow:
    """One task's figures in a window, as :func:`rearq_tasks.queries.stats.by_task` defines them."""

    task_name: str
    completed: int
    failed: int
    successful: int
    failure_rate: float | None
    avg_duration_ms: float | None
    avg_retries: float | None
    latest_error: str | None = None


def per_task_window(since: dt.datetime) -> list[TaskWindow]:
    """Per task in the window: ``stats.by_task`` figures plus average retries of finished jobs,
    read from the rollups; the latest error from rows (one index look-up per task)."""
    scope = Scope(since)
    rows = rollup_figures.order_rows(rollup_figures.task_rows(scope), "task_name", False)
    out = []
    for row in rows:
        latest = (
            scope.rows()
            .with_error()
            .filter(task_name=row["task_name"])
            .order_by("-enqueue_time")
            .values_list("error_message", flat=True)
            .first()
        )
        out.append(
            TaskWindow(
                task_name=row["task_name"],
                completed=row["completed"],
                failed=row["failures"],
                successful=row["successful"],
                failure_rate=row["failure_rate"] if row["successful"] + row["failures"] else None,
                avg_duration_ms=row["avg_duration_ms"],
                avg_retries=row["avg_retries"],
                latest_error=latest,
            )
        )
    return out


def jobs_by_task_queue_status(since: dt.datetime) -> list[tuple[str, str, str, int]]:
    rows = records(Scope(since), ("task_name", "queue_name", "status"))
    return [(r["task_name"], r["queue_name"], r["status"], r["jobs"]) for r in rows]


def _bucket_key(bound: float) -> str:
    return f"le_{str(bound).replace('.', '_')}"


def _cumulative(bins: dict[int, int], buckets: Sequence[float]) -> list[int]:
    """Jobs at or below each bound (seconds), a bin counted by the value it stands for."""
    return [
        sum(n for index, n in bins.items() if bin_value(index) <= bound * 1000) for bound in buckets
    ]


def _histogram(
    scope: Scope, dim: str, kind: int, buckets: Sequence[float], terminal_only: bool
) -> dict[str, tuple[list[int], int, float]]:
    count, total = (
        ("duration_count", "duration_sum")
        if kind == DURATION
        else (
            "wait_count",
            "wait_sum",
        )
    )
    sums: dict[str, list[int]] = {}
    for row in records(scope, (dim,), terminal_only=terminal_only):
        acc = sums.setdefault(row[dim], [0, 0])
        acc[0] += row[count]
        acc[1] += row[total]
    bins = histograms(scope, (dim,), (kind,), terminal_only=terminal_only)
    return {
        name: (_cumulative(bins.get((kind, name), {}), buckets), n, ms / 1000)
        for name, (n, ms) in sorted(sums.items())
        if n
    }


def duration_histogram(
    since: dt.datetime, buckets: Sequence[float] = DURATION_BUCKETS
) -> dict[str, tuple[list[int], int, float]]:
    """Per task: cumulative bucket counts, total count and sum (s) of finished jobs' durations.

    Count and sum are exact; a job within 1 % of a bound may be counted on its other side.
    """
    return _histogram(Scope(since), "task_name", DURATION, buckets, terminal_only=True)


def wait_histogram(
    since: dt.datetime, buckets: Sequence[float] = WAIT_BUCKETS
) -> dict[str, tuple[list[int], int, float]]:
    """Per queue: cumulative bucket counts, count and sum (s) of enqueue→start waits."""
    return _histogram(Scope(since), "queue_name", WAIT, buckets, terminal_only=False)


def _as_seconds(value: dt.timedelta | float | int | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000
