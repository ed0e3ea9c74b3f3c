"""Running a job again: the one way an operator's retry and the recovery of a job ReArq
dropped put a job back on ReArq's queue.

The arguments come from ReArq's own ``rearq_job`` row, which holds them as the caller passed
them. TaskLog's copy is redacted and bounded by design (docs/payloads.md): a re-run from it
would pass ``password='[redacted]'`` or a truncation marker to the task. When ReArq's row
is gone (its ``keep_job_days`` cleanup), the copy is used only if nothing was cut from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rearq_tasks.payloads import is_lossy
from rearq_tasks.queue.keys import TASK_DISABLED, TASK_KEY, queue_key


def queue_for(job_id: str, task_name: str, queue_name: str | None, task_map: Mapping) -> str:
    """The stream key a re-run of ``job_id`` goes to: the task's own queue when registered."""
    task = task_map.get(task_name)
    if task is not None:
        return task.queue
    if not queue_name:
        raise ValueError(
            f"the queue of job {job_id} is unknown (task {task_name!r} is not registered "
            "here): it cannot be re-enqueued"
        )
    return queue_key(queue_name)


async def original_arguments(
    job_id: str, stored_args: Any, stored_kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    """The (args, kwargs) a re-run of ``job_id`` must receive; ValueError when unknowable."""
    from rearq.server.models import Job

    job = await Job.get_or_none(job_id=job_id)
    if job is not None:
        return list(job.args or []), dict(job.kwargs or {})
    if is_lossy(stored_args, stored_kwargs):
        raise ValueError(
            f"ReArq no longer has the arguments of job {job_id} (its rearq_job row was "
            "removed, e.g. by keep_job_days) and the stored copy was redacted or truncated: "
            "re-running it would pass the wrong arguments. Enqueue it again with its real "
            "arguments instead"
        )
    return list(stored_args or []), dict(stored_kwargs or {})


async def enqueue_again(
    redis: Any,
    queue: str,
    job_id: str,
    task_name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    job_retry: int,
    job_retry_after: int,
) -> Any | None:
    """Write the ``rearq_job`` row and add the message, as ``Task.delay`` does; the Job.

    Works without the task function. None when a job ``job_id`` exists already: a re-run
    whose id is derived from the job it replaces is then enqueued exactly once.
    """
    from rearq.enums import JobStatus
    from rearq.server.models import Job
    from tortoise import timezone
    from tortoise.exceptions import IntegrityError

    if await redis.hget(TASK_KEY, task_name) == TASK_DISABLED:
        raise ValueError(f"task {task_name!r} is disabled in ReArq")
    job = Job(
        task=task_name,
        args=args,
        kwargs=kwargs,
        job_retry=job_retry,
        job_retry_after=job_retry_after,
        job_id=job_id,
        enqueue_time=timezone.now(),
        status=JobStatus.queued,
    )
    try:
        await job.save()
    except IntegrityError:
        return None
    await redis.xadd(queue, {"job_id": job_id})
    return job
