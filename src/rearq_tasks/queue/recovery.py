"""Recovery of jobs ReArq drops: fetched by a worker that died before they started.

ReArq marks a whole fetched batch ``in_progress`` at once, before the jobs get a slot. When
that worker is SIGKILLed, the jobs it had not started stay ``in_progress`` in ``rearq_job``
for ever and ReArq never runs them. They never ran, so running them again is safe: each is
re-enqueued once, with ReArq's own (original) arguments and the retries it had left
(:func:`retries_left`), as a new job whose ``retry_of`` names it; the old row becomes
``failed`` and says which job re-runs it.

A job counts as fetched but never started when its TaskLog row is ``in_progress`` with no
``start_time`` (the capture sets it only when the task function is called), ReArq's row is
``in_progress`` with no ``rearq_job_results`` row for the current attempt, and it is long
overdue by the lost-job rule (:func:`overdue_q`) — or no worker is alive at all, so no
process can still hold it. A row already failed as ``lost:`` without a start (ReArq's own
code failed before the job started) is one too. Jobs lost mid-run (``start_time`` set) are
never re-run here.

Exactly once: the re-run's job id is derived from the old one (:func:`recovered_id`) and
``rearq_job.job_id`` is unique, so of two ``sync_task_logs`` running at once only one
creates (and queues) it; the other, or a later run, only writes the bookkeeping again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from rearq_tasks.capture.events import ROW_FIELDS, job_event, row_event
from rearq_tasks.conf import conf
from rearq_tasks.queue.keys import WORKER_KEY, job_status
from rearq_tasks.queue.liveness import parse_heartbeat
from rearq_tasks.queue.requeue import enqueue_again, queue_for

logger = logging.getLogger("rearq_tasks.reconcile")

# ReArq reads up to max(max_jobs * 5, 100) messages at once and marks them all in progress
# before they get a slot: a fetched job may wait several timeouts before it starts.
UNSTARTED_TIMEOUTS = 5
_NAMESPACE = uuid.UUID("6f1c1b52-5d3e-4d4e-9a53-2f0c2b7c9e11")
RECOVERED_MESSAGE = (
    "lost before it started: the worker that fetched it stopped before running it and "
    "ReArq would never run it; re-enqueued as {new_id}"
)


def recovered_id(job_id: str) -> str:
    """The job id of the one re-run of ``job_id``: the same for every ``sync_task_logs``."""
    return uuid.uuid5(_NAMESPACE, f"recover:{job_id}").hex


def retries_left(job: Any) -> int:
    """The re-run's ``job_retry``: the retries the dropped job had left.

    The dropped attempt may be a retry (attempt 1 failed, the worker that fetched attempt 2
    died): its re-run runs only the attempts the job still had, not a fresh budget, so a
    failing job never runs more often than its ``job_retry`` allows. ReArq's worker reads
    the row's ``job_retry``, so 0 there means no retry (unlike ``@task(job_retry=0)``).
    """
    done = job.job_retries if isinstance(job.job_retries, int) else 0
    return max(int(job.job_retry or 0) - done, 0)


def closing_connections(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run in asgiref's worker thread and close that thread's connection afterwards."""

    def run(*args: Any) -> Any:
        from django.db import connections

        try:
            return function(*args)
        finally:
            connections.close_all()

    return run


def overdue_q(task_map: Mapping[str, Any], now: dt.datetime, started: bool | None = None) -> Any:
    """Rows in progress long past their task's timeout (the lost-job rule), as a ``Q``.

    A started job is overdue ``timeout + LOST_JOB_GRACE_SECONDS`` after its start; one not
    started yet ``UNSTARTED_TIMEOUTS`` timeouts (+ grace) after its enqueue. ``started``
    keeps only one kind.
    """
    from django.db.models import Q

    from rearq_tasks.models import stuck_q

    grace = conf.LOST_JOB_GRACE_SECONDS
    default_timeout = conf.JOB_TIMEOUT
    timeouts: dict[str, int | None] = {
        name: getattr(task, "job_timeout", default_timeout) for name, task in task_map.items()
    }

    def overdue(timeout: int) -> Q:
        run = stuck_q(timeout + grace, now) & Q(start_time__isnull=False)
        waiting = stuck_q(UNSTARTED_TIMEOUTS * timeout + grace, now) & Q(start_time__isnull=True)
        return {None: run | waiting, True: run, False: waiting}[started]

    condition = overdue(default_timeout) & ~Q(task_name__in=list(timeouts))
    for name, timeout in timeouts.items():
        if timeout is not None:
            condition |= overdue(timeout) & Q(task_name=name)
    return condition


def lost_events(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The history of an attempt whose worker died: its ``lost`` event, with the ``started``
    row when it had started (attempt 1's start was implicit in the row while it ran)."""
    base = {
        "job_id": record["job_id"],
        "task_name": record["task_name"],
        "attempt": (record.get("job_retries") or 0) + 1,
        "worker_id": record.get("worker_id"),
    }
    lost = {
        **base,
        "event": "lost",
        "timestamp": record["finish_time"],
        "duration_ms": record.get("duration_ms"),
        "error_message": record["error_message"],
    }
    if record.get("start_time") is None:
        return [lost]
    return [{**base, "event": "started", "timestamp": record["start_time"]}, lost]


def unstarted_rows(
    task_map: Mapping[str, Any], now: dt.datetime, overdue_only: bool
) -> list[dict[str, Any]]:
    """TaskLog rows in progress that never started: overdue ones, or all when no worker lives."""
    from django.db.models import Q

    from rearq_tasks.models import RUNNING, TaskLog

    condition = (
        overdue_q(task_map, now, started=False)
        if overdue_only
        else RUNNING & Q(start_time__isnull=True)
    )
    # Already failed as lost before they started (by the capture, when ReArq's own code
    # failed before the job's start, or by an earlier sync with recovery off or impossible).
    condition |= Q(status="failed", start_time__isnull=True, error_message__startswith="lost:")
    return list(TaskLog.objects.filter(condition).order_by().values(*ROW_FIELDS))


async def _any_worker_alive(redis: Any, now: dt.datetime) -> bool:
    """Whether a (non-timer) worker heartbeat is fresh: only then may a process hold a job."""
    stale_after = conf.WORKER_STALE_SECONDS
    for name, raw in (await redis.hgetall(WORKER_KEY)).items():
        beat = parse_heartbeat(name, raw, now, stale_after)
        if beat is None or (beat.alive and not beat.is_timer):
            return True  # a heartbeat we cannot read: assume it is alive
    return False


async def _never_started(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ReArq's Job of each row that ReArq shows in progress without a result for its
    current attempt (a job ReArq finished or never fetched is not dropped)."""
    from rearq.enums import JobStatus
    from rearq.server.models import Job, JobResult

    jobs = {j.job_id: j for j in await Job.filter(job_id__in=[r["job_id"] for r in rows])}
    results = Counter(
        await JobResult.filter(job_id__in=[j.id for j in jobs.values()]).values_list(
            "job_id", flat=True
        )
    )
    dropped = {}
    for job_id, job in jobs.items():
        retries = job.job_retries if isinstance(job.job_retries, int) else 0
        if job.status == JobStatus.in_progress and results[job.id] <= retries:
            dropped[job_id] = job
    return dropped


async def recover_unstarted(task_map: Mapping[str, Any], redis: Any, now: dt.datetime) -> int:
    """Re-enqueue, once, each job a dead worker fetched but never started; how many."""
    from asgiref.sync import sync_to_async

    overdue_only = await _any_worker_alive(redis, now)
    read = sync_to_async(closing_connections(unstarted_rows), thread_sensitive=True)
    rows = await read(task_map, now, overdue_only)
    if not rows:
        return 0
    dropped = await _never_started(rows)
    done: list[tuple[dict[str, Any], Any, str]] = []
    for row in rows:
        job = dropped.get(row["job_id"])
        if job is None:
            continue
        new_id = recovered_id(job.job_id)
        try:
            queue = queue_for(job.job_id, job.task, row["queue_name"], task_map)
            new_job = await enqueue_again(
                redis, queue, new_id, job.task, list(job.args or []), dict(job.kwargs or {}),
                retries_left(job), job.job_retry_after,
            )  # fmt: skip
        except ValueError as exc:  # a disabled task, an unknown queue: it stays lost
            logger.warning("reconcile: cannot re-enqueue job %s: %s", job.job_id, exc)
            continue
        if new_job is None:  # another sync_task_logs created it: only the bookkeeping
            from rearq.server.models import Job

            new_job = await Job.get(job_id=new_id)
        done.append((row, new_job, queue))
    if done:
        write = sync_to_async(closing_connections(record_recovered), thread_sensitive=True)
        await write(done, now)
    return len(done)


def record_recovered(done: list[tuple[dict[str, Any], Any, str]], now: dt.datetime) -> None:
    """The old rows fail as lost with the re-run's id, the re-runs' rows name the old job."""
    from django.db import transaction

    from rearq_tasks.capture.history_writer import insert_rows
    from rearq_tasks.capture.upsert import upsert_records

    records, history = [], []
    for row, job, queue in done:
        message = RECOVERED_MESSAGE.format(new_id=job.job_id)
        old = row_event(row, "failed", success=False, finish_time=now, error_message=message)
        records += [old, job_event(job, job_status(job), queue, retry_of=row["job_id"])]
        history += lost_events(old)
    with transaction.atomic():
        upsert_records(records)
        insert_rows(history)
