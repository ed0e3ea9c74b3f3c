"""What a Django process does with ReArq jobs: enqueue on behalf of a user, retry, cancel.

``enqueue``/``enqueue_sync`` attribute a job to a user; ``retry_job`` and ``cancel_job``
work from a web process where the task functions are not registered. Sync callers run on
the client's private loop thread (:func:`rearq_tasks.queue.loop.run_sync`).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rearq_tasks.capture.events import job_event, row_event
from rearq_tasks.capture.history_writer import write_events
from rearq_tasks.capture.hooks import current_user_id
from rearq_tasks.lifecycle import RETRYABLE_STATUSES, TERMINAL_STATUSES, duration_ms
from rearq_tasks.payloads import is_lossy
from rearq_tasks.queue.client import get_rearq_client
from rearq_tasks.queue.keys import (
    CANCEL_TASK,
    CHANNEL,
    ENQUEUED_MARK,
    ENQUEUED_MARK_SECONDS,
    TASK_DISABLED,
    TASK_KEY,
    XADD_ONCE,
    job_status,
    queue_key,
)
from rearq_tasks.queue.loop import run_async, run_sync
from rearq_tasks.queue.reconcile import Progress, SyncReport, reconcile
from rearq_tasks.queue.requeue import enqueue_again, original_arguments, queue_for

if TYPE_CHECKING:
    from rearq.task import Task

    from rearq_tasks.models import TaskLog

logger = logging.getLogger("rearq_tasks.client")


# --- enqueueing on behalf of a user ----------------------------------------------------------
def _resolve_task(task: Task | str) -> Task:
    if not isinstance(task, str):
        return task
    rearq = get_rearq_client()
    found = rearq.task_map.get(task)
    if found is None:
        raise LookupError(
            f"task {task!r} is not registered in this process; add its module to "
            "REARQ_TASKS['TASK_MODULES']"
        )
    return found


def _check_arguments(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """TypeError now, in the caller, for arguments the task function cannot take — rather than
    a job that fails in the worker with the same TypeError (a misspelt keyword, a ReArq
    option given to the wrong function). A function that takes ``**kwargs`` accepts all."""
    function = getattr(task, "function", None)
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # no function here, or a builtin without a signature
        return
    bound = (task, *args) if getattr(task, "bind", False) else args
    try:
        signature.bind(*bound, **kwargs)
    except TypeError as exc:
        name = getattr(function, "__name__", task.name)
        raise TypeError(f"task {task.name!r} cannot be called so: {name}(): {exc}") from None


def _user_id(user: Any) -> int | None:
    if user is None:
        return None
    if isinstance(user, int):
        return user
    if not getattr(user, "is_authenticated", True):
        return None
    return getattr(user, "pk", None)


# ReArq's per-call options of Task.delay: keyword-only here, never passed on to the task.
DELAY_OPTIONS = ("countdown", "eta", "job_id", "expire", "job_retry", "job_retry_after")


async def _delay(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], user_id: int | None,
    options: dict[str, Any],
) -> Any:  # fmt: skip
    token = current_user_id.set(user_id)
    try:
        given = {name: value for name, value in options.items() if value is not None}
        return await task.delay(args=args, kwargs=kwargs, **given)
    finally:
        current_user_id.reset(token)


def _record_enqueued(job: Any, task: Task, user_id: int | None) -> None:
    """Write the row now, so the enqueuer sees it at once (the worker's events follow)."""
    from rearq_tasks.capture.upsert import upsert_records  # models: needs Django set up

    status = job_status(job)
    try:
        upsert_records([job_event(job, status, task.queue, user_id=user_id)])
    except Exception as exc:
        logger.warning("could not write the TaskLog row of %s now (%s); the capture stream "
                       "will deliver it", job.job_id, exc)  # fmt: skip


async def enqueue(
    task: Task | str, *args: Any, user: Any = None,
    countdown: float | dt.timedelta | None = None, eta: dt.datetime | None = None,
    job_id: str | None = None, expire: float | dt.datetime | None = None,
    job_retry: int | None = None, job_retry_after: int | None = None, **kwargs: Any,
) -> str:  # fmt: skip
    """``task.delay(*args, **kwargs)`` recorded for ``user``; returns the job id.

    ``countdown``, ``eta``, ``job_id``, ``expire``, ``job_retry`` and ``job_retry_after`` are
    ReArq's per-call options (as in ``Task.delay``); every other keyword goes to the task.
    """
    from asgiref.sync import sync_to_async

    resolved = _resolve_task(task)
    _check_arguments(resolved, args, kwargs)
    user_id = _user_id(user)
    options = dict(zip(DELAY_OPTIONS, (countdown, eta, job_id, expire, job_retry,
                                       job_retry_after), strict=True))  # fmt: skip
    job = await run_async(lambda: _delay(resolved, args, kwargs, user_id, options))
    await sync_to_async(_record_enqueued, thread_sensitive=True)(job, resolved, user_id)
    return job.job_id


def enqueue_sync(
    task: Task | str, *args: Any, user: Any = None,
    countdown: float | dt.timedelta | None = None, eta: dt.datetime | None = None,
    job_id: str | None = None, expire: float | dt.datetime | None = None,
    job_retry: int | None = None, job_retry_after: int | None = None, **kwargs: Any,
) -> str:  # fmt: skip
    """:func:`enqueue` for sync code (views): ``enqueue_sync(add, 1, 2, user=request.user)``."""
    resolved = _resolve_task(task)
    _check_arguments(resolved, args, kwargs)
    user_id = _user_id(user)
    options = dict(zip(DELAY_OPTIONS, (countdown, eta, job_id, expire, job_retry,
                                       job_retry_after), strict=True))  # fmt: skip
    job = run_sync(lambda: _delay(resolved, args, kwargs, user_id, options))
    _record_enqueued(job, resolved, user_id)
    return job.job_id


# --- retry and cancel from TaskLog -----------------------------------------------------------
def _queue_key(task_log: TaskLog) -> str:
    task_map = get_rearq_client().task_map
    return queue_for(task_log.job_id, task_log.task_name, task_log.queue_name, task_map)


def _retryable_queue(task_log: TaskLog) -> str:
    """The queue key to retry ``task_log`` on; ValueError when it may not be retried."""
    if task_log.status not in RETRYABLE_STATUSES:
        raise ValueError(
            f"job {task_log.job_id} is {task_log.status}: only failed, expired or canceled "
            "jobs can be retried"
        )
    return _queue_key(task_log)


def _new_job(task_log: TaskLog, job_id: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    from rearq.enums import JobStatus
    from rearq.server.models import Job
    from tortoise import timezone

    return Job(
        task=task_log.task_name,
        args=args,
        kwargs=kwargs,
        job_retry=task_log.job_retry,
        job_retry_after=task_log.job_retry_after,
        job_id=job_id,
        enqueue_time=timezone.now(),
        status=JobStatus.queued,
    )


async def _disabled_tasks(names: set[str]) -> set[str]:
    rearq = get_rearq_client()
    ordered = sorted(names)
    states = await rearq.redis.hmget(TASK_KEY, ordered) if ordered else []
    return {name for name, state in zip(ordered, states, strict=True) if state == TASK_DISABLED}


def retry_job(task_log: TaskLog, user: Any = None) -> str:
    """Run the job again with its original arguments, on the same queue; the new job id.

    The arguments are ReArq's own (``rearq_job``), never TaskLog's redacted or truncated
    copy: ValueError when ReArq's row is gone and the copy lost something. The new row's
    ``retry_of`` names this job. Works without the task function.
    """
    queue = _retryable_queue(task_log)
    user_id = _user_id(user)
    new_id = uuid.uuid4().hex

    async def go() -> Any:
        args, kwargs = await original_arguments(task_log.job_id, task_log.args, task_log.kwargs)
        return await enqueue_again(
            get_rearq_client().redis, queue, new_id, task_log.task_name, args, kwargs,
            task_log.job_retry, task_log.job_retry_after,
        )  # fmt: skip

    job = run_sync(go)
    if job is None:  # a fresh uuid4 that ReArq already has: never in practice
        raise ValueError(f"job id {new_id} exists already in ReArq; try again")
    from rearq_tasks.capture.upsert import upsert_records  # models: needs Django set up

    upsert_records([job_event(job, "queued", queue, user_id=user_id, retry_of=task_log.job_id)])
    return new_id


async def _fresh_jobs(
    todo: list[tuple[TaskLog, str, str]], outcome: dict[str, str | ValueError]
) -> list[Any]:
    """The new ``rearq_job`` rows, with ReArq's original arguments (as in ``retry_job``);
    the jobs that cannot be retried get their reason in ``outcome``."""
    from rearq.server.models import Job

    disabled = await _disabled_tasks({log.task_name for log, _id, _q in todo})
    originals = {
        job.job_id: job
        for job in await Job.filter(job_id__in=[log.job_id for log, _id, _q in todo])
    }
    fresh = []
    for log, new_id, _queue in todo:
        original = originals.get(log.job_id)
        if log.task_name in disabled:
            outcome[log.job_id] = ValueError(f"task {log.task_name!r} is disabled in ReArq")
        elif original is not None:
            fresh.append(_new_job(log, new_id, original.args or [], original.kwargs or {}))
        elif is_lossy(log.args, log.kwargs):
            lost = f"ReArq no longer has the arguments of job {log.job_id}"
            outcome[log.job_id] = ValueError(f"{lost} and the stored copy is lossy")
        else:
            fresh.append(_new_job(log, new_id, list(log.args or []), dict(log.kwargs or {})))
    return fresh


def retry_jobs(
    retries: Sequence[tuple[TaskLog, str]], user: Any = None
) -> dict[str, str | ValueError]:
    """Retry many jobs at once, each under the new id given with it; idempotent.

    Called again with the same ids (a bulk operation replaying a chunk) it finds their
    ``rearq_job`` rows and adds no second stream message: each message is added by one Redis
    script only if the job id's mark is new. One ReArq round trip and one TaskLog write for
    the whole batch. Returns, per original job id, the new id or why it was not retried.
    """
    outcome: dict[str, str | ValueError] = {}
    todo: list[tuple[TaskLog, str, str]] = []
    for log, new_id in retries:
        try:
            todo.append((log, new_id, _retryable_queue(log)))
        except ValueError as exc:
            outcome[log.job_id] = exc

    async def go() -> list[Any]:
        from rearq.server.models import Job

        rearq = get_rearq_client()
        fresh = await _fresh_jobs(todo, outcome)
        live = [item for item in todo if item[0].job_id not in outcome]
        ids = [new_id for _log, new_id, _queue in live]
        have = set(await Job.filter(job_id__in=ids).values_list("job_id", flat=True))
        missing = [job for job in fresh if job.job_id not in have]
        if missing:
            await Job.bulk_create(missing)
        pipe = rearq.redis.pipeline(transaction=False)
        for _log, new_id, queue in live:
            mark = ENQUEUED_MARK + new_id
            pipe.eval(XADD_ONCE, 2, queue, mark, new_id, ENQUEUED_MARK_SECONDS)
        await pipe.execute()
        return list(await Job.filter(job_id__in=ids))

    jobs = run_sync(go, timeout=60) if todo else []
    queues = {new_id: queue for _log, new_id, queue in todo}
    user_id = _user_id(user)
    from rearq_tasks.capture.upsert import upsert_records  # models: needs Django set up

    retry_of = {new_id: log.job_id for log, new_id, _queue in todo}
    upsert_records(
        [
            job_event(
                job, "queued", queues[job.job_id], user_id=user_id, retry_of=retry_of[job.job_id]
            )  # fmt: skip
            for job in jobs
        ]
    )
    for log, new_id, _queue in todo:
        outcome.setdefault(log.job_id, new_id)
    return outcome


def cancel_job(task_log: TaskLog) -> None:
    """Cancel through ReArq; mark the row canceled when the job had not started.

    ReArq's cancel only interrupts a job that is already running; a waiting job is also
    taken off the delay set and marked canceled in ``rearq_job`` so no worker runs it, and
    capture stops a job that a worker fetched but had not started yet. A job ReArq has in
    progress keeps its row (and its ``rearq_job`` status) until its worker reports what
    happened: ``canceled`` when the cancel landed, or the real outcome when ReArq could not
    interrupt it (a task that swallows the cancellation, a worker whose cancel subscription
    died with its Redis connection). The row's status is not trusted for this: capture may
    lag behind ReArq.
    """
    if task_log.status in TERMINAL_STATUSES:
        raise ValueError(f"job {task_log.job_id} is already {task_log.status}")
    try:
        queue = _queue_key(task_log)
    except ValueError:
        queue = queue_key(None)
    if run_sync(lambda: _cancel_in_rearq(task_log, queue)):
        if task_log.pk is not None:
            task_log.refresh_from_db()
        return
    _record_canceled(task_log)


async def _cancel_in_rearq(task_log: TaskLog, queue: str) -> bool:
    """Withdraw a waiting job and publish ReArq's cancel; True when a worker is running it.

    Only ReArq's own ``rearq_job`` table says whether the job started (the row may lag).
    """
    import json

    from rearq.enums import JobStatus
    from rearq.server.models import Job

    rearq = get_rearq_client()
    member = f"{queue}:{task_log.job_id}"
    await rearq.redis.zrem(rearq.get_delay_queue(member), member)
    jobs = Job.filter(job_id=task_log.job_id)
    waiting = await jobs.filter(status__in=[JobStatus.queued, JobStatus.deferred]).update(
        status=JobStatus.canceled
    )
    running = False
    if not waiting:
        # Left to its worker: a cancel that does not land (or cannot be published) must
        # not make ReArq's own table claim the job was canceled.
        job = await jobs.first()
        running = job is not None and job.status == JobStatus.in_progress
        if job is not None and not running and job.status != JobStatus.canceled:
            status = job_status(job)
            raise ValueError(f"job {task_log.job_id} is already {status}")
    await rearq.redis.publish(
        CHANNEL,
        json.dumps(
            {"type": CANCEL_TASK, "task_name": task_log.task_name, "job_id": task_log.job_id}
        ),
    )
    return running


def _record_canceled(task_log: TaskLog) -> None:
    """No worker will report a job that never started: write its canceled row and event here."""
    from django.db import transaction
    from django.utils import timezone

    from rearq_tasks.capture.upsert import upsert_records  # models: needs Django set up

    finish = timezone.now()
    record = row_event(
        task_log,
        "canceled",
        finish_time=finish,
        duration_ms=duration_ms(task_log.start_time, finish),
        error_message="canceled by a user",
    )
    with transaction.atomic():
        upsert_records([record])
        write_events([record])
    task_log.refresh_from_db()


def sync_task_logs(
    since: dt.datetime | None = None, batch_size: int = 1000, progress: Progress | None = None
) -> SyncReport:
    """Import ReArq's history and repair lost jobs, from sync code (commands, web code).

    Runs :func:`rearq_tasks.queue.reconcile.reconcile` on the client's private loop.
    """
    rearq = get_rearq_client()
    return run_sync(
        lambda: reconcile(rearq.task_map, since, batch_size, progress, redis=rearq.redis),
        timeout=None,
    )
