"""Job history: TaskEvent rows derived from the raw capture events, before ``fold()``.

The collector folds a batch into one TaskLog row per job, which keeps only the latest
state; here every raw event becomes the history row(s) it stands for, inserted in the same
transaction as the TaskLog upsert. The emitter drops a job's start event when the job ends
within one flush interval, so a terminal event that carries ``start_time`` also yields the
attempt's ``started`` row. Rows are keyed by ``(job_id, attempt, event)`` and inserted with
ON CONFLICT DO NOTHING (MySQL: ON DUPLICATE KEY UPDATE of nothing): replays, several
collectors and the reconciler can all write the same event, and only one row stays.

Attempts are numbered from 1. ReArq's ``job_retries`` is the number of failed attempts
before the current one, and a retry's ``deferred`` event already carries the incremented
count, so it closes attempt ``job_retries``; every other event belongs to attempt
``job_retries + 1``.

Nothing the TaskLog row already tells is stored (see :func:`is_implicit`): the first
attempt's ``enqueued`` and, while attempt 1 runs or once it has succeeded, its ``started``
and ``succeeded``. :func:`rearq_tasks.queries.history.job_history` puts them back when the history
is read. Most jobs succeed at once, so most jobs store no history row at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections

from rearq_tasks.capture.events import from_ms, now_ms
from rearq_tasks.lifecycle import TERMINAL_EVENTS, duration_ms
from rearq_tasks.payloads import prepare_text, prepare_traceback
from rearq_tasks.queue.keys import TASK_NOT_FOUND, job_status

TABLE = "django_cfg_task_event"
COLUMNS: tuple[str, ...] = (
    "job_id", "event", "attempt", "timestamp", "worker_id", "duration_ms", "error_message",
    "traceback",
)  # fmt: skip
CHUNK = 1000


def _row(event: dict[str, Any], kind: str, attempt: int, at: float | None, **extra: Any) -> dict:
    return {
        "job_id": event["job_id"],
        "task_name": event.get("task_name") or "",
        "event": kind,
        "attempt": max(1, attempt),
        "timestamp": at if at is not None else now_ms(),
        # The capture prepared (redacted, bounded) the event's texts in the worker already.
        "prepared": event.get("prepared") is True,
        **extra,
    }


def is_implicit(kind: str, attempt: int, outcome: str | None) -> bool:
    """Whether a history row is derived from the TaskLog row on reading instead of stored.

    ``outcome`` is the status that ended the row's attempt (None while it runs).
    ``enqueued`` is ``TaskLog.enqueue_time``; a first attempt that runs or succeeded is
    ``start_time``/``worker_id`` and ``finish_time``/``duration_ms``. A first attempt that
    ended any other way keeps its ``started`` row: a retry overwrites those columns.
    """
    if attempt != 1:
        return False
    if kind == "enqueued":
        return True
    return outcome in (None, "success") and kind in ("started", "succeeded")


def rows_from_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The history rows one capture event stores (none for a skipped disabled task).

    Rows :func:`is_implicit` leaves to the TaskLog row are not returned: a clean first
    attempt stores nothing. The event that ends a first attempt any other way carries its
    start (the emitter sends it with the end), so its ``started`` row is stored then.
    """
    status = event.get("status")
    job_id = event.get("job_id")
    if not job_id or not status:
        return []
    retries = event.get("job_retries") or 0
    if not isinstance(retries, int):
        retries = 0
    worker = event.get("worker_id")
    start = event.get("start_time")
    if status in ("queued", "deferred") and not event.get("error_message"):
        if retries:
            return []  # a retry re-queued: its retry_scheduled row already says so
        kind = "enqueued" if status == "queued" else "deferred"
        return _stored([_row(event, kind, 1, event.get("enqueue_time"))], None)
    if status == "queued":
        return []  # ReArq skipped a disabled task and left the message pending
    if status == "in_progress":
        return _stored([_row(event, "started", retries + 1, start, worker_id=worker)], None)
    rows: list[dict[str, Any]] = []
    attempt = retries if status == "deferred" else retries + 1
    if start is not None and worker:
        rows.append(_row(event, "started", attempt, start, worker_id=worker))
    duration = event.get("duration_ms")
    end = event.get("finish_time") or event.get("event_time")
    if end is None and start is not None and duration is not None:
        end = start + duration
    kind = "retry_scheduled" if status == "deferred" else TERMINAL_EVENTS.get(status)
    if kind is None:
        return _stored(rows, status)
    rows.append(
        _row(
            event,
            kind,
            attempt,
            end,
            worker_id=worker,
            duration_ms=duration,
            error_message=None if status == "success" else event.get("error_message"),
            traceback=event.get("traceback"),
        )  # fmt: skip
    )
    return _stored(rows, status)


def _stored(rows: list[dict[str, Any]], outcome: str | None) -> list[dict[str, Any]]:
    return [row for row in rows if not is_implicit(row["event"], row["attempt"], outcome)]


def rows_from_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for event in events:
        rows.extend(rows_from_event(event))
    return rows


def rows_from_rearq(job: Any, results: Sequence[Any]) -> list[dict[str, Any]]:
    """A job's history as ReArq's tables tell it: one attempt per ``rearq_job_results`` row,
    less the rows :func:`is_implicit` leaves to the TaskLog row."""
    from rearq_tasks.capture.events import to_ms

    status = job_status(job)
    base = {"job_id": job.job_id, "task_name": job.task}
    first = None if not results else "success" if results[0].success else "failed"
    rows: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        attempt = index + 1
        start, finish = to_ms(result.start_time), to_ms(result.finish_time)
        last = index == len(results) - 1
        rows.append(_row(base, "started", attempt, start, worker_id=result.worker))
        if result.success:
            kind = "succeeded"
        elif result.result == TASK_NOT_FOUND or (last and status == "failed"):
            kind = "failed"
        else:  # ReArq deferred the job for another attempt (whatever happened next)
            kind = "retry_scheduled"
        duration = None
        if start is not None and finish is not None:
            duration = duration_ms(start, finish)
        rows.append(
            _row(
                base,
                kind,
                attempt,
                finish or start,
                worker_id=result.worker,
                duration_ms=duration,
                error_message=None if result.success else result.result,
            )  # fmt: skip
        )
    if status == "expired":
        rows.append(_row(base, "expired", len(results) + 1, None))
    return _stored(rows, first)


def _params(row: dict[str, Any], ops: Any) -> list[Any]:
    error, traceback = row.get("error_message"), row.get("traceback")
    if not row.get("prepared"):  # reconcile's rows: ReArq's own text, redacted here once
        task_name = row.get("task_name") or ""
        error, traceback = prepare_text(task_name, error), prepare_traceback(task_name, traceback)
    return [
        row["job_id"],
        row["event"],
        row["attempt"],
        ops.adapt_datetimefield_value(from_ms(row["timestamp"])),
        row.get("worker_id"),
        row.get("duration_ms"),
        error,
        traceback,
    ]


def build_sql(vendor: str, rows: int) -> str:
    one = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    head = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {', '.join([one] * rows)}"
    if vendor == "mysql":
        return f"{head} ON DUPLICATE KEY UPDATE job_id = job_id"
    return f"{head} ON CONFLICT (job_id, attempt, event) DO NOTHING"


def insert_rows(rows: Sequence[dict[str, Any]], using: str = "default") -> int:
    """Insert history rows; a row whose (job_id, attempt, event) exists is ignored."""
    if not rows:
        return 0
    unique: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        unique.setdefault((row["job_id"], row["attempt"], row["event"]), row)
    connection = connections[using]
    ops = connection.ops
    values = list(unique.values())
    with connection.cursor() as cursor:
        for start in range(0, len(values), CHUNK):
            part = values[start : start + CHUNK]
            params: list[Any] = []
            for row in part:
                params.extend(_params(row, ops))
            cursor.execute(build_sql(connection.vendor, len(part)), params)
    return len(values)


def write_events(events: Iterable[dict[str, Any]], using: str = "default") -> int:
    """The collector's call: the history rows of a batch's raw events."""
    return insert_rows(rows_from_events(events), using)
