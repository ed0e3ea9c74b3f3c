"""Bulk retry, cancel and delete over everything a filter matched, in resumable chunks.

An operation (:class:`~rearq_tasks.operation_models.TaskOperation`) is created by a surface
with its filter frozen and its set bounded by the largest TaskLog id at that moment. A
runner (``manage.py run_task_operations``, :func:`run_pending`) holds a lease on it and
walks TaskLog by primary-key ranges from the cursor (keyset, never OFFSET; each statement
reads at most ``OPERATION_SCAN_IDS`` ids). Per chunk it acts on every row, then advances
the cursor, the counters and the audit entry in one transaction, only while it still holds
the lease. A runner that dies mid-chunk leaves the cursor before that chunk; the chunk is
replayed by whoever takes the lease over, and replaying is harmless:

- retry gives each job a new id derived from (operation, job), so a replayed retry finds its
  ``rearq_job`` row and adds no second stream message (:func:`queue.jobs.retry_job`);
- a delete commits in the same transaction as the cursor;
- a cancel of a job already canceled is refused by ReArq's own table and counted as skipped.

Redis or the database going away pauses the operation (state ``paused``, ``message`` says
why); the runner tries again after ``OPERATION_PAUSE_SECONDS`` from the same cursor.

Filters are written in a surface's language (the API's query parameters, the admin's
changelist query string). The surface registers how to turn its filter into a queryset
(:func:`register_scope`), so this floor never imports a surface.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from rearq_tasks import audit
from rearq_tasks.conf import conf
from rearq_tasks.models import COMPLETED, RETRYABLE, TaskEvent, TaskLog
from rearq_tasks.operation_models import (
    ACTIVE_STATES,
    BULK_ACTIONS,
    Action,
    AuditEntry,
    OperationState,
    TaskOperation,
)
from rearq_tasks.queue import jobs
from rearq_tasks.queue.loop import ReArqUnavailable

logger = logging.getLogger("rearq_tasks.operations")

# (stored filter, the user who started the operation) -> the rows it matches
ScopeBuilder = Callable[[dict[str, Any], Any], QuerySet[TaskLog]]
_scopes: dict[str, ScopeBuilder] = {}

# Which rows each action may touch, and what a skipped row is told.
ALLOWED: dict[str, tuple[Q, str]] = {
    Action.RETRY: (RETRYABLE, "not failed, expired or canceled"),
    Action.CANCEL: (~COMPLETED, "already finished"),
    Action.DELETE: (COMPLETED, "still waiting or running"),
}
RETRY_NAMESPACE = uuid.UUID("5b0c7f53-4f0e-4a57-9d3f-6a3b1c1e8a10")
SAMPLE_SIZE = 10


class OperationPaused(Exception):
    """Redis or the database is away: the chunk is not committed, the operation waits."""


def register_scope(name: str, builder: ScopeBuilder) -> None:
    """Teach the runner a filter language: ``builder(filters, user)`` → the matching rows."""
    _scopes[name] = builder


def matching(scope: str, filters: dict[str, Any], user: Any = None) -> QuerySet[TaskLog]:
    """The rows ``filters`` match in ``scope``'s language (unordered)."""
    try:
        builder = _scopes[scope]
    except KeyError:
        raise LookupError(f"no filter language {scope!r} is registered in this process") from None
    return builder(filters, user).order_by().select_related(None)


def retry_job_id(token: str, job_id: str) -> str:
    """The new job id a bulk retry (operation ``token``) gives ``job_id``: the same on every
    replay."""
    return uuid.uuid5(RETRY_NAMESPACE, f"{token}:{job_id}").hex


def preview(action: str, scope: str, filters: dict[str, Any], user: Any = None) -> dict[str, Any]:
    """What an operation would act on now: matched count, how many allowed, a sample."""
    qs = matching(scope, filters, user)
    allowed_q, _reason = ALLOWED[action]
    sample = list(qs.order_by("-id").values("id", "job_id", "task_name", "status")[:SAMPLE_SIZE])
    return {"matched": qs.count(), "allowed": qs.filter(allowed_q).count(), "sample": sample}


def create(
    action: str, scope: str, filters: dict[str, Any], *, source: str, request: Any = None
) -> TaskOperation:
    """Freeze ``filters`` and bound the set at the current largest id; write the audit entry."""
    if action not in BULK_ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}")
    user = getattr(request, "user", None)
    user = user if user is not None and user.is_authenticated else None
    qs = matching(scope, filters, user)
    bound = TaskLog.objects.aggregate(top=Max("id"))["top"] or 0
    with transaction.atomic():
        operation = TaskOperation.objects.create(
            action=action,
            scope=scope,
            filters=filters,
            bound=bound,
            matched=qs.filter(id__lte=bound).count(),
            source=source,
            user=user,
        )
        audit.record(
            action,
            source=source,
            request=request,
            filters=filters,
            operation=operation,
            matched=operation.matched,
        )
    return operation


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim(owner: str, lease_seconds: int | None = None) -> TaskOperation | None:
    """Take the oldest active operation whose lease is free or stale; None when there is none."""
    lease = dt.timedelta(seconds=lease_seconds or conf.OPERATION_LEASE_SECONDS)
    now = timezone.now()
    free = Q(lease_expires__isnull=True) | Q(lease_expires__lt=now) | Q(lease_owner=owner)
    candidates = TaskOperation.objects.filter(free, state__in=ACTIVE_STATES).order_by("id")
    for pk in candidates.values_list("id", flat=True)[:5]:
        taken = (
            TaskOperation.objects.filter(free, pk=pk, state__in=ACTIVE_STATES)
            .update(lease_owner=owner, lease_expires=now + lease, state=OperationState.RUNNING)
        )  # fmt: skip
        if taken:
            return TaskOperation.objects.get(pk=pk)
    return None


def _next_rows(operation: TaskOperation, qs: QuerySet[TaskLog]) -> tuple[list[TaskLog], int]:
    """The next chunk after the cursor, and the id up to which it covers the set."""
    size, scan = conf.OPERATION_CHUNK_SIZE, conf.OPERATION_SCAN_IDS
    low, deadline = operation.cursor, time.monotonic() + 0.5
    while low < operation.bound:
        high = min(low + scan, operation.bound)
        rows = list(qs.filter(id__gt=low, id__lte=high).order_by("id").only(*ROW_FIELDS)[:size])
        if rows:
            return rows, (rows[-1].id if len(rows) == size else high)
        low = high
        if time.monotonic() > deadline:
            break
    return [], low


ROW_FIELDS = (
    "id", "job_id", "task_name", "queue_name", "status", "success", "args", "kwargs",
    "job_retry", "job_retry_after", "start_time", "enqueue_time",
)  # fmt: skip


class _Tally:
    def __init__(self) -> None:
        self.done = 0
        self.skipped: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()


def _act(operation: TaskOperation, rows: list[TaskLog], tally: _Tally) -> None:
    """Retry or cancel each allowed row; infrastructure errors pause (nothing committed)."""
    allowed_q, reason = ALLOWED[operation.action]
    ids = [row.id for row in rows]
    allowed = set(TaskLog.objects.filter(allowed_q, id__in=ids).values_list("id", flat=True))
    tally.skipped[reason] += len(rows) - len(allowed)
    chosen = [row for row in rows if row.id in allowed]
    try:
        if operation.action == Action.RETRY:
            retries = [(row, retry_job_id(operation.token, row.job_id)) for row in chosen]
            outcomes = list(jobs.retry_jobs(retries, user=operation.user_id).values())
        else:
            outcomes = [_cancel(row) for row in chosen]
    except ReArqUnavailable as exc:
        raise OperationPaused(str(exc)) from None  # "ReArq is unavailable: cannot reach …"
    for outcome in outcomes:
        if not isinstance(outcome, ValueError):
            tally.done += 1
        elif "already" in str(outcome):
            tally.skipped["already finished"] += 1
        else:
            tally.failed[str(outcome).split(":")[-1].strip()[:100]] += 1


def _cancel(row: TaskLog) -> str | ValueError:
    try:
        jobs.cancel_job(row)
    except ValueError as exc:
        return exc
    return row.job_id


def _delete(operation: TaskOperation, rows: list[TaskLog], tally: _Tally) -> None:
    """Delete the allowed rows and their history (inside the chunk's transaction)."""
    allowed_q, reason = ALLOWED[Action.DELETE]
    ids = [row.id for row in rows]
    doomed = list(TaskLog.objects.filter(allowed_q, id__in=ids).values_list("id", "job_id"))
    TaskEvent.objects.filter(job_id__in=[job_id for _pk, job_id in doomed]).delete()
    tally.done += TaskLog.objects.filter(id__in=[pk for pk, _job in doomed]).delete()[0]
    tally.skipped[reason] += len(rows) - len(doomed)


def _merge(total: dict[str, int], new: Counter[str]) -> dict[str, int]:
    merged = dict(total or {})
    for key, count in new.items():
        merged[key] = merged.get(key, 0) + count
    return merged


def _ended(operation: TaskOperation, now: dt.datetime | None = None) -> dict[str, Any]:
    """The columns an operation's end sets. Its filters are needed only while it runs: from
    then on the row keeps them redacted, as its audit entry does, so a search for
    ``kwargs={"api_key": …}`` leaves no credential in the table."""
    return {
        "finished_at": now or timezone.now(),
        "lease_owner": "",
        "lease_expires": None,
        "filters": audit.redacted_filters(operation.filters) or {},
    }


def _commit(operation: TaskOperation, owner: str, tally: _Tally, cursor: int) -> bool:
    """Advance cursor, counters and audit entry together, only if ``owner`` holds the lease."""
    skipped, failed = sum(tally.skipped.values()), sum(tally.failed.values())
    finished = cursor >= operation.bound
    now = timezone.now()
    changes: dict[str, Any] = {
        "cursor": cursor,
        "done": F("done") + tally.done,
        "skipped": F("skipped") + skipped,
        "failed": F("failed") + failed,
        "skip_reasons": _merge(operation.skip_reasons, tally.skipped),
        "errors": _merge(operation.errors, tally.failed),
        "lease_expires": now + dt.timedelta(seconds=conf.OPERATION_LEASE_SECONDS),
        "state": OperationState.DONE if finished else OperationState.RUNNING,
        "message": "",
        "updated_at": now,
    }
    if finished:
        changes.update(_ended(operation, now))
    mine = TaskOperation.objects.filter(
        pk=operation.pk, lease_owner=owner, state__in=ACTIVE_STATES
    )  # fmt: skip
    if not mine.update(**changes):
        return False
    AuditEntry.objects.filter(operation_id=operation.pk).update(
        done=F("done") + tally.done, skipped=F("skipped") + skipped, failed=F("failed") + failed
    )
    operation.refresh_from_db()
    return True


def run_chunk(operation: TaskOperation, owner: str, qs: QuerySet[TaskLog] | None = None) -> bool:
    """Handle one chunk; True while there is more to do and the lease is still ours."""
    if qs is None:
        qs = matching(operation.scope, operation.filters, operation.user)
    rows, cursor = _next_rows(operation, qs)
    tally = _Tally()
    if operation.action == Action.DELETE:
        with transaction.atomic():
            _delete(operation, rows, tally)
            if not _commit(operation, owner, tally, cursor):
                transaction.set_rollback(True)
                return False
    else:
        _act(operation, rows, tally)
        with transaction.atomic():
            if not _commit(operation, owner, tally, cursor):
                return False
    return operation.state == OperationState.RUNNING


def _pause(operation: TaskOperation, message: str) -> None:
    """Give the lease back with a clear state; the next try is after OPERATION_PAUSE_SECONDS."""
    retry_at = timezone.now() + dt.timedelta(seconds=conf.OPERATION_PAUSE_SECONDS)
    try:
        TaskOperation.objects.filter(pk=operation.pk, state__in=ACTIVE_STATES).update(
            state=OperationState.PAUSED, message=message[:500], lease_owner="",
            lease_expires=retry_at,
        )  # fmt: skip
    except DatabaseError:
        logger.warning("operation %s paused (%s); its state could not be written", operation.pk,
                       message)  # fmt: skip


def run_operation(
    operation: TaskOperation, owner: str, stop: Callable[[], bool] = lambda: False
) -> None:
    """Chunks until the operation is done, paused, canceled or taken over, or ``stop()``
    (SIGTERM) says so between two chunks: the lease is then given back at once, so another
    runner goes on from the cursor without waiting for it to expire."""
    try:
        qs = matching(operation.scope, operation.filters, operation.user)
        while run_chunk(operation, owner, qs):
            if stop():
                TaskOperation.objects.filter(
                    pk=operation.pk, lease_owner=owner, state__in=ACTIVE_STATES
                ).update(lease_owner="", lease_expires=None)
                return
    except OperationPaused as exc:
        logger.warning("operation %s paused: %s", operation.pk, exc)
        _pause(operation, str(exc))
    except DatabaseError as exc:
        logger.warning("operation %s paused: the database failed (%s)", operation.pk, exc)
        _pause(operation, f"the database failed: {type(exc).__name__}")
    except LookupError as exc:
        TaskOperation.objects.filter(pk=operation.pk).update(
            state=OperationState.FAILED, message=str(exc)[:500], **_ended(operation)
        )


def run_pending(
    owner: str | None = None, *, once: bool = False, poll_seconds: float = 1.0,
    lease_seconds: int | None = None, stop: Callable[[], bool] = lambda: False,
) -> int:  # fmt: skip
    """The runner loop: claim, run, repeat; with ``once`` return when nothing is left to claim.

    Returns how many operations it worked on.
    """
    owner = owner or runner_name()
    worked = 0
    while not stop():
        try:
            operation = claim(owner, lease_seconds)
        except DatabaseError as exc:
            logger.warning("cannot read operations (%s); trying again", type(exc).__name__)
            operation = None
        if operation is None:
            if once:
                return worked
            time.sleep(poll_seconds)
            continue
        worked += 1
        run_operation(operation, owner, stop)
    return worked


def cancel(operation: TaskOperation) -> bool:
    """Stop an active operation where it is (jobs already handled stay handled)."""
    return bool(
        TaskOperation.objects.filter(pk=operation.pk, state__in=ACTIVE_STATES).update(
            state=OperationState.CANCELED, **_ended(operation)
        )
    )
