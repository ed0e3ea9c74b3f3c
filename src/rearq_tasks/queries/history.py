"""Reading a job's history: its events with per-attempt waits, and retry analytics per task.

The events themselves are written by :mod:`rearq_tasks.capture.history_writer` (and the
reconciler); the status words come from :mod:`rearq_tasks.models`. See docs/history.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db.models import Avg, Case, Count, F, IntegerField, When

import rearq_tasks.queries.rollup_figures as rollup_figures
from rearq_tasks.lifecycle import ATTEMPT_END_EVENTS, duration_ms
from rearq_tasks.models import (
    ATTEMPT_ERROR,
    COMPLETED,
    NOT_RUN_YET,
    RECOVERED,
    RETRIED,
    EventType,
    TaskEvent,
    TaskLog,
)
from rearq_tasks.queries.expressions import parse_order
from rearq_tasks.queries.rollup import Scope

if TYPE_CHECKING:
    from rearq_tasks.models import TaskLogQuerySet

RETRY_ORDERINGS: tuple[str, ...] = ("retry_share", "retried", "mean_attempts", "completed")


def with_queue_waits(log: TaskLog, events: Iterable[TaskEvent]) -> list[TaskEvent]:
    """The events in order, each ``started`` one given ``queue_wait_ms``.

    Attempt 1 waited from the job's enqueue time; a retry waited from the end of the
    attempt before it (the retry delay included), which is what a user waited for.
    """
    ordered = list(events)
    ends: dict[int, Any] = {}
    for event in ordered:
        event.queue_wait_ms = None  # type: ignore[attr-defined]
        if event.event in ATTEMPT_END_EVENTS:
            ends.setdefault(event.attempt, event.timestamp)
    for event in ordered:
        if event.event == EventType.STARTED:
            since = log.enqueue_time if event.attempt == 1 else ends.get(event.attempt - 1)
            event.queue_wait_ms = duration_ms(since, event.timestamp)  # type: ignore[attr-defined]
    return ordered


def implicit_events(log: TaskLog, stored: Iterable[TaskEvent]) -> list[TaskEvent]:
    """The unsaved events the TaskLog row stands for (``id`` None), in the order they happened.

    The capture does not store what the row already tells (see
    :func:`rearq_tasks.capture.history_writer.is_implicit`): attempt 1's ``enqueued``
    (unless the job was ``deferred``), and its ``started``/``succeeded`` while it runs or
    once it succeeded.
    A row the database holds is never derived a second time.
    """
    have = {(event.attempt, str(event.event)) for event in stored}
    derived: list[TaskEvent] = []

    def add(kind: str, timestamp: Any, **fields: Any) -> None:
        if timestamp is not None and (1, str(kind)) not in have:
            derived.append(
                TaskEvent(job=log, event=str(kind), attempt=1, timestamp=timestamp, **fields)
            )

    if (1, str(EventType.DEFERRED)) not in have:
        add(EventType.ENQUEUED, log.enqueue_time)
    if (log.job_retries or 0) != 0 or log.attempts != 1:
        return derived  # attempt 1 has not run, or a retry holds the row's columns now
    add(EventType.STARTED, log.start_time, worker_id=log.worker_id)
    if log.is_successful:
        add(
            EventType.SUCCEEDED,
            log.finish_time or log.start_time,
            worker_id=log.worker_id,
            duration_ms=log.duration_ms,
        )
    return derived


def job_history(log: TaskLog) -> list[TaskEvent]:
    """The job's whole history, as stored before implicit rows existed: one query.

    Stored rows and :func:`implicit_events` merged in the stored order (attempt, time; on a
    tie the derived ones first, as they were written first), ``started`` ones with their
    queue wait. Every reader (API events/related, admin timeline) goes through here.
    """
    stored = list(TaskEvent.objects.filter(job_id=log.job_id))
    merged = sorted(
        [*implicit_events(log, stored), *stored],
        key=lambda event: (event.attempt, event.timestamp),
    )
    return with_queue_waits(log, merged)


def attempts_expression() -> Case:
    """Attempts a job made, in SQL (the same rule as ``models.attempts_min_q``)."""
    return Case(
        When(NOT_RUN_YET, then=F("job_retries")),
        default=F("job_retries") + 1,
        output_field=IntegerField(),
    )


def retries_by_task(
    qs: Scope | TaskLogQuerySet,
    limit: int | None = 20,
    errors: int = 3,
    order_by: str = "-retry_share",
) -> list[dict[str, Any]]:
    """Per task, over completed jobs: how many needed a retry, how many of those recovered,
    the mean number of attempts, and the most common errors of first attempts.

    One GROUP BY query (or the rollups, for a :class:`Scope`), then one LIMIT-ed GROUP BY
    on the events per returned task.
    """
    field, descending = parse_order(order_by, RETRY_ORDERINGS)
    if isinstance(qs, Scope):
        rows = rollup_figures.order_rows(rollup_figures.retry_rows(qs), field, descending)
        return _with_errors(qs.rows().order_by().filter(COMPLETED), rows, limit, errors)
    scope = qs.order_by().filter(COMPLETED)
    grouped = (
        scope.values("task_name")
        .annotate(
            completed=Count("*"),
            retried=Count("enqueue_time", filter=RETRIED),
            recovered=Count("enqueue_time", filter=RECOVERED),
            mean_attempts=Avg(attempts_expression()),
        )
        .annotate(retry_share=F("retried") * 100.0 / F("completed"))
    )
    column = F(field)
    ordering = column.desc(nulls_last=True) if descending else column.asc()
    grouped = grouped.order_by(ordering, "task_name")
    return _with_errors(scope, list(grouped), limit, errors)


def _with_errors(
    scope: TaskLogQuerySet, rows: list[dict[str, Any]], limit: int | None, errors: int
) -> list[dict[str, Any]]:
    """The first ``limit`` rows as the API gives them, each with its first-attempt errors."""
    rows = rows[:limit] if limit else rows
    result = []
    for row in rows:
        first_errors = (
            TaskEvent.objects.filter(
                ATTEMPT_ERROR,
                attempt=1,
                job_id__in=scope.filter(task_name=row["task_name"]).values("job_id"),
            )
            .exclude(error_message__isnull=True)
            .values("error_message")
            .annotate(count=Count("*"))
            .order_by("-count", "error_message")[:errors]
        )
        result.append(
            {
                "task_name": row["task_name"],
                "completed": row["completed"],
                "retried": row["retried"],
                "recovered": row["recovered"],
                "retry_share": round(row["retry_share"] or 0.0, 2),
                "mean_attempts": round(float(row["mean_attempts"] or 0), 3),
                "first_attempt_errors": [
                    {"error_message": e["error_message"], "count": e["count"]} for e in first_errors
                ],
            }
        )
    return result
