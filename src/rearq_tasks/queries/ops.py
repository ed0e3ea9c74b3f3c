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

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from rearq_tasks.models import COMPLETED, QUEUED, TaskLog
from rearq_tasks.queries.stats import by_task

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
    """Per task in the window: ``stats.by_task`` figures plus average retries of finished jobs.

    ``by_task`` has no retries figure, so that one is a second grouped query composed here
    (``Avg("job_retries")`` over ``COMPLETED``).
    """
    window = TaskLog.objects.since(since)
    retries = dict(
        window.filter(COMPLETED)
        .order_by()
        .values_list("task_name")
        .annotate(avg=Avg("job_retries"))
    )
    return [
        TaskWindow(
            task_name=row["task_name"],
            completed=row["completed"],
            failed=row["failures"],
            successful=row["successful"],
            failure_rate=row["failure_rate"] if row["successful"] + row["failures"] else None,
            avg_duration_ms=row["avg_duration_ms"],
            avg_retries=None
            if retries.get(row["task_name"]) is None
            else float(retries[row["task_name"]]),
            latest_error=row["latest_error"],
        )
        for row in by_task(window, order_by="task_name", limit=None)
    ]


def jobs_by_task_queue_status(since: dt.datetime) -> list[tuple[str, str, str, int]]:
    rows = (
        TaskLog.objects.since(since)
        .order_by()
        .values_list("task_name", "queue_name", "status")
        .annotate(n=Count("id"))
    )
    return [(task, queue, status, n) for task, queue, status, n in rows]


def _bucket_key(bound: float) -> str:
    return f"le_{str(bound).replace('.', '_')}"


def duration_histogram(
    since: dt.datetime, buckets: Sequence[float] = DURATION_BUCKETS
) -> dict[str, tuple[list[int], int, float]]:
    """Per task: cumulative bucket counts, total count and sum (s) of finished jobs' durations."""
    counts = {
        _bucket_key(bound): Count("id", filter=Q(duration_ms__lte=bound * 1000))
        for bound in buckets
    }
    rows = (
        TaskLog.objects.since(since)
        .filter(COMPLETED, duration_ms__isnull=False)
        .order_by()
        .values("task_name")
        .annotate(total=Count("id"), total_ms=Sum("duration_ms"), **counts)
    )
    return {
        row["task_name"]: (
            [row[_bucket_key(bound)] for bound in buckets],
            row["total"],
            float(row["total_ms"] or 0) / 1000,
        )
        for row in rows
    }


def wait_histogram(
    since: dt.datetime, buckets: Sequence[float] = WAIT_BUCKETS
) -> dict[str, tuple[list[int], int, float]]:
    """Per queue: cumulative bucket counts, count and sum (s) of enqueue→start waits."""
    counts = {
        _bucket_key(bound): Count(
            "id", filter=Q(start_time__lte=F("enqueue_time") + dt.timedelta(seconds=bound))
        )
        for bound in buckets
    }
    wait = ExpressionWrapper(F("start_time") - F("enqueue_time"), output_field=DurationField())
    rows = (
        TaskLog.objects.since(since)
        .filter(start_time__isnull=False)
        .order_by()
        .values("queue_name")
        .annotate(total=Count("id"), total_wait=Sum(wait), **counts)
    )
    return {
        row["queue_name"]: (
            [row[_bucket_key(bound)] for bound in buckets],
            row["total"],
            _as_seconds(row["total_wait"]),
        )
        for row in rows
    }


def _as_seconds(value: dt.timedelta | float | int | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000
