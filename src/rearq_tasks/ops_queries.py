"""Aggregates the operations surfaces (health, alerts, metrics) share.

Each is one query composed from the named ``Q``'s of :mod:`rearq_tasks.models`, grouped in the
database — never a loop over rows — and bounded by an index: status, queue/status or the
enqueue time window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from rearq_tasks.models import COMPLETED, FAILED, QUEUED, RUNNING, TaskLog

DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
WAIT_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)


def failure_counts(queryset: QuerySet[TaskLog]) -> tuple[int, int]:
    """(completed, failed) in one query."""
    row = queryset.order_by().aggregate(
        completed=Count("id", filter=COMPLETED), failed=Count("id", filter=FAILED)
    )
    return row["completed"], row["failed"]


def backlog_by_queue() -> dict[str, int]:
    """Queued jobs per queue (served by the queue/status index)."""
    rows = (
        TaskLog.objects.filter(QUEUED)
        .order_by()
        .values_list("queue_name")
        .annotate(n=Count("id"))
    )
    return {queue: n for queue, n in rows}


def stuck_by_queue(older_than: dt.timedelta | int) -> dict[str, int]:
    rows = (
        TaskLog.objects.stuck(older_than)
        .order_by()
        .values_list("queue_name")
        .annotate(n=Count("id"))
    )
    return {queue: n for queue, n in rows}


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
    """One task's finished jobs in a window."""

    task_name: str
    completed: int
    failed: int
    avg_duration_ms: float | None
    avg_retries: float | None

    @property
    def failure_rate(self) -> float | None:
        return None if not self.completed else 100.0 * self.failed / self.completed


def per_task_window(since: dt.datetime) -> list[TaskWindow]:
    """Per task: completed, failed, average duration and retries of finished jobs — one query."""
    rows = (
        TaskLog.objects.since(since)
        .filter(COMPLETED)
        .order_by()
        .values("task_name")
        .annotate(
            completed=Count("id"),
            failed=Count("id", filter=FAILED),
            avg_duration_ms=Avg("duration_ms"),
            avg_retries=Avg("job_retries"),
        )
    )
    return [
        TaskWindow(
            task_name=row["task_name"],
            completed=row["completed"],
            failed=row["failed"],
            avg_duration_ms=None if row["avg_duration_ms"] is None else float(row["avg_duration_ms"]),
            avg_retries=None if row["avg_retries"] is None else float(row["avg_retries"]),
        )
        for row in rows
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
        _bucket_key(bound): Count("id", filter=Q(duration_ms__lte=bound * 1000)) for bound in buckets
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


def running_count() -> int:
    return TaskLog.objects.filter(RUNNING).count()
