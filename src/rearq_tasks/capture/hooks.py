"""Hooks into ReArq 0.2.9, which has no lifecycle callbacks (see docs/capture.md).

Each hook only builds a small dict and hands it to the emitter (or, outside a worker,
sends it straight to the stream); none touches the Django database or raises into a job.
This module holds the enqueue side and :func:`install`; the worker side (start, outcome,
cancel) is :mod:`rearq_tasks.capture.worker_hooks`.

* ``Task.delay``       -> queued / deferred, with the user of :func:`enqueue` if any; the
                         task's ``job_retry_after`` and an explicit ``job_retry=0`` are kept
* ``ReArq.create_task`` -> ``job_retry=0`` / ``job_retry_after=0`` are kept (ReArq's ``or``)
* ``Job.bulk_create``  -> queued rows of cron and run-at-start jobs (no Tortoise signal)
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from typing import Any

from rearq_tasks.capture import counters
from rearq_tasks.capture import runtime as runtime_mod
from rearq_tasks.capture.events import dumps, job_event
from rearq_tasks.capture.worker_hooks import (
    wrap_args_to_string,
    wrap_run,
    wrap_run_job,
    wrap_worker_init,
)
from rearq_tasks.payloads import prepare_record
from rearq_tasks.queue.keys import job_status
from rearq_tasks.redaction import register_positional

logger = logging.getLogger("rearq_tasks.capture")

# The user an enqueue is done for (set by rearq_tasks.queue.jobs.enqueue / enqueue_sync).
current_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "rearq_tasks_user_id", default=None
)

_installed = False


async def _send(redis: Any, event: dict[str, Any]) -> None:
    """Outside a worker (web process, shell): send one event directly, never raise."""
    if runtime_mod.emit(event):
        return
    from rearq_tasks.capture.emitter import send
    from rearq_tasks.conf import conf

    try:
        # Redacted and bounded before it is encoded: a secret never reaches the stream.
        raw = dumps(prepare_record(event))
        keep_ms = int(conf.STREAM_RESUME_SECONDS * 1000)
        added = await send(
            redis, conf.CAPTURE_STREAM, conf.CAPTURE_STREAM_MAXLEN, [raw], keep_ms=keep_ms
        )
    except Exception as exc:
        added, reason = 0, str(exc)
    else:
        reason = "the stream is full (CAPTURE_STREAM_MAXLEN unwritten events)"
    if added:
        counters.incr("emitted")
        return
    counters.incr("overflowed")
    if reason.startswith("the stream is full"):
        try:
            await send(redis, conf.CAPTURE_STREAM, conf.CAPTURE_STREAM_MAXLEN, [], dropped=1)
        except Exception:
            pass
    logger.warning("capture: could not send the enqueue event of %s: %s", event["job_id"], reason)


# --- ReArq's falsy-zero defaults ---------------------------------------------------------
class _TaskWithRetry:
    """The task as ``Task.delay`` sees it, with the retry count of this call: ReArq stores
    ``job_retry or self.job_retry``, so an explicit 0 would become the task's default."""

    def __init__(self, task: Any, job_retry: int) -> None:
        self._task = task
        self.job_retry = job_retry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def _wrap_create_task(original: Any) -> Any:
    """``@rearq.task(job_retry=0)`` / ``job_retry_after=0`` mean 0, not the client's default."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def create_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = signature.bind(self, *args, **kwargs).arguments
        task = original(self, *args, **kwargs)
        for name in ("job_retry", "job_retry_after"):
            if given.get(name) == 0:
                setattr(task, name, 0)
        register_positional(task.name, task.function, task.bind)
        return task

    create_task.__rearq_tasks_hook__ = True  # type: ignore[attr-defined]
    return create_task


# --- Task.delay -------------------------------------------------------------------------
def _wrap_delay(original: Any) -> Any:
    @functools.wraps(original)
    async def delay(self: Any, *args: Any, **kwargs: Any) -> Any:
        # ReArq stores 60 unless the call passes one: the task's own value is the default.
        kwargs.setdefault("job_retry_after", self.job_retry_after)
        explicit_zero = kwargs.get("job_retry") == 0 and self.job_retry
        job = await original(_TaskWithRetry(self, 0) if explicit_zero else self, *args, **kwargs)
        if job is not None and runtime_mod.capture_enabled():
            try:
                event = job_event(job, job_status(job), self.queue, user_id=current_user_id.get())
                await _send(self.rearq.redis, event)
            except Exception:
                logger.exception("capture: enqueue hook failed (the job was enqueued)")
        return job

    delay.__rearq_tasks_hook__ = True  # type: ignore[attr-defined]
    return delay


# --- Job.bulk_create (cron, run_at_start) -------------------------------------------------
def _wrap_bulk_create(original: Any, rearq: Any) -> Any:
    @functools.wraps(original)
    async def bulk_create(cls: Any, objects: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(objects, *args, **kwargs)
        if runtime_mod.capture_enabled():
            try:
                task_map = rearq.task_map
                for job in objects:
                    task = task_map.get(job.task)
                    event = job_event(job, job_status(job), task.queue if task else None)
                    await _send(rearq.redis, event)
            except Exception:
                logger.exception("capture: bulk_create hook failed (the jobs were created)")
        return result

    bulk_create.__rearq_tasks_hook__ = True  # type: ignore[attr-defined]
    return bulk_create


# --- installing ------------------------------------------------------------------------------
def _import_rearq_worker() -> None:
    """Import ``rearq.worker`` without letting ``rearq.signals`` take over SIGINT/SIGTERM.

    That module installs process-wide handlers that only set worker flags: in a web process
    or a command it would make the process ignore Ctrl-C and SIGTERM (and from any thread but
    the main one the import would fail). Worker commands install ReArq's handlers themselves.
    """
    import signal
    import sys

    if "rearq.worker" in sys.modules:
        return
    original = signal.signal
    signal.signal = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        import rearq.worker  # noqa: F401
    finally:
        signal.signal = original


def install_rearq_signal_handlers() -> None:
    """What ``rearq.signals`` does at import: SIGINT/SIGTERM stop ReArq's workers gracefully."""
    import signal

    from rearq import signals

    signal.signal(signal.SIGINT, signals.handle_sign)
    signal.signal(signal.SIGTERM, signals.handle_sign)


def install(rearq: Any) -> None:
    """Patch ReArq's classes once per process (idempotent)."""
    global _installed
    for task in list(getattr(rearq, "task_map", {}).values()):  # defined before instrument()
        register_positional(task.name, task.function, task.bind)
    if _installed:
        return
    _import_rearq_worker()
    from rearq import ReArq
    from rearq import worker as rearq_worker
    from rearq.server.models import Job
    from rearq.task import Task
    from rearq.worker import Worker

    ReArq.create_task = _wrap_create_task(ReArq.create_task)
    Task.delay = _wrap_delay(Task.delay)
    Job.bulk_create = classmethod(_wrap_bulk_create(Job.bulk_create, rearq))
    Worker.__init__ = wrap_worker_init(Worker.__init__)
    Worker.run = wrap_run(Worker.run)
    Worker._run_job = wrap_run_job(Worker._run_job)
    rearq_worker.args_to_string = wrap_args_to_string(rearq_worker.args_to_string)
    _installed = True
