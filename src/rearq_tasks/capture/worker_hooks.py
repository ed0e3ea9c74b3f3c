"""The worker side of the capture hooks (installed by :func:`rearq_tasks.capture.hooks.install`).

Each hook only builds a small dict and hands it to this worker's emitter; none touches the
Django database or raises into a job (see docs/capture.md).

* ``Worker.__init__`` -> the task map is wrapped so each task function reports its start
* the task function   -> in_progress at the true start (after the ``max_jobs`` slot)
* ``Worker.run``      -> starts and stops the process's capture runtime
* ``Worker._run_job`` -> success / failed / deferred (retry) / expired / task not found,
                         and canceled when ReArq's cancel or a shutdown interrupts it
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Mapping
from typing import Any

from rearq_tasks.capture import runtime as runtime_mod
from rearq_tasks.capture.events import job_event, now_ms, to_ms
from rearq_tasks.capture.runtime import emit
from rearq_tasks.conf.checks import refuse_bad_settings
from rearq_tasks.lifecycle import duration_ms
from rearq_tasks.payloads import prepare_record
from rearq_tasks.queue.connection import client_mismatch
from rearq_tasks.queue.keys import TASK_NOT_FOUND, job_status

logger = logging.getLogger("rearq_tasks.capture")

TRACEBACK_FRAMES = 30


class _JobContext:
    __slots__ = ("job", "queue", "worker", "emitter", "canceled", "rules", "start_ms",
                 "traceback", "returned", "value", "arguments")  # fmt: skip

    def __init__(self, job: Any, queue: str, worker: str, runtime: Any) -> None:
        self.job = job
        self.queue = queue
        self.worker = worker
        # The runtime's parts, looked up once per job rather than per event.
        self.emitter = runtime.emitter
        self.canceled = runtime.canceled
        self.rules = runtime.rules  # read once per worker: payload_rules() costs ~10 µs
        self.start_ms: float | None = None
        self.traceback: str | None = None
        self.returned = False  # the task function returned (ReArq may still fail to record it)
        self.value: Any = None
        # The job's args and kwargs as prepared for ReArq's "→" line, reused by its events.
        self.arguments: tuple[Any, Any] | None = None

    def event(self, status: str, **fields: Any) -> dict[str, Any]:
        """This job's event, its payload prepared (the arguments once per job)."""
        event = job_event(self.job, status, self.queue, **fields)
        if self.arguments is None:
            return prepare_record(event, self.rules)
        event["args"], event["kwargs"] = self.arguments
        return prepare_record(event, self.rules, arguments_prepared=True)


_running: contextvars.ContextVar[_JobContext | None] = contextvars.ContextVar(
    "rearq_tasks_running_job", default=None
)


def _format_traceback(ctx: _JobContext, exc: BaseException) -> None:
    """Keep the failing attempt's traceback (ReArq keeps only ``"Run job error, exc: …"``):
    the innermost frames, redacted and bounded; never raises into the job."""
    try:
        import traceback

        from rearq_tasks.payloads import prepare_traceback

        text = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))
        ctx.traceback = prepare_traceback(ctx.job.task, text)
    except Exception:
        logger.debug("capture: could not format the traceback of %s", ctx.job.job_id)


# --- the task function: the true start --------------------------------------------------
def _captured_view(task: Any) -> Any:
    """The ReArq Task as ReArq's ``_run_job`` sees it: the same object's attributes (its
    ``__dict__`` is shared, so changes to the task show) but a ``function`` that reports the
    true start of the job. A subclass rather than a proxy: ReArq reads several attributes per
    job and a ``__getattr__`` proxy paid a Python call for each."""
    wrapper = _wrap_function(task.function)
    cls = type(task)
    view_cls = type(f"Captured{cls.__name__}", (cls,), {"function": property(lambda _: wrapper)})
    view = view_cls.__new__(view_cls)
    view.__dict__ = task.__dict__
    return view


def _wrap_function(original: Any) -> Any:
    @functools.wraps(original)
    async def function(*args: Any, **kwargs: Any) -> Any:
        ctx = _running.get()
        if ctx is not None:
            if ctx.job.job_id in ctx.canceled:
                # Cancelled while it waited for a slot: ReArq would still run it.
                raise asyncio.CancelledError()
            # The event itself is built at the emitter's next flush, and only if the job has
            # not ended by then (most have): here it costs a clock read and a dict entry.
            ctx.start_ms = start = now_ms()
            ctx.emitter.started(ctx.job, ctx.queue, ctx.worker, start)
        try:
            value = await original(*args, **kwargs)
        except Exception as exc:
            if ctx is not None:
                _format_traceback(ctx, exc)
            raise
        if ctx is not None:
            ctx.returned, ctx.value = True, value
        return value

    return function


class _CapturedTaskMap(Mapping):
    def __init__(self, task_map: dict[str, Any]) -> None:
        self._map = task_map
        self._views: dict[str, tuple[Any, Any]] = {}

    def __getitem__(self, name: str) -> Any:
        task = self._map[name]
        cached = self._views.get(name)
        if cached is None or cached[0] is not task:
            cached = (task, _captured_view(task))
            self._views[name] = cached
        return cached[1]

    def __iter__(self) -> Any:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)


# --- Worker --------------------------------------------------------------------------------
def wrap_worker_init(original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if not isinstance(self._task_map, _CapturedTaskMap):
            self._task_map = _CapturedTaskMap(self._task_map)

    return __init__


def wrap_run(original: Any) -> Any:
    @functools.wraps(original)
    async def run(self: Any) -> None:
        # Every worker and timer refuses invalid settings, however it was started.
        from rearq.worker import TimerWorker

        refuse_bad_settings("timer" if isinstance(self, TimerWorker) else "worker")
        problem = client_mismatch(self.rearq)
        if problem:
            logger.warning("rearq_tasks.W002: %s", problem)
        if not runtime_mod.capture_enabled():
            return await original(self)
        await runtime_mod.acquire(self.rearq)
        try:
            await original(self)
        finally:
            # Jobs cancelled by the shutdown report it before the emitter's last flush.
            pending = [t for t in getattr(self, "_tasks", ()) if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=5)
            await runtime_mod.release()

    return run


def _result_text(job_result: Any) -> str | None:
    value = getattr(job_result, "result", None)
    return None if value is None else str(value)


def _returned(ctx: _JobContext, job_result: Any) -> Any:
    """The value the task returned (payloads stores it as JSON, redacted); ReArq's text of it
    (``str(value)``) only when the function's own return was not seen."""
    return ctx.value if ctx.returned else _result_text(job_result)


def _outcome(self: Any, ctx: _JobContext, job: Any, job_result: Any, retries: int) -> None:
    emit = ctx.emitter.emit
    status = job_status(job)
    finish = to_ms(getattr(job_result, "finish_time", None)) or now_ms()
    start = ctx.start_ms or to_ms(getattr(job_result, "start_time", None))
    duration = duration_ms(start, finish)
    common = {"worker_id": ctx.worker, "start_time": start}
    if status == "expired":
        emit(ctx.event("expired", job_retries=retries, success=False,
                       finish_time=finish, error_message="expired before it ran"))  # fmt: skip
    elif status == "success":
        emit(ctx.event("success", job_retries=retries, success=True,
                       result=_returned(ctx, job_result), finish_time=finish,
                       duration_ms=duration, **common))  # fmt: skip
    elif status == "failed":
        emit(ctx.event("failed", job_retries=retries, success=False,
                       error_message=_result_text(job_result), finish_time=finish,
                       duration_ms=duration, traceback=ctx.traceback, **common))  # fmt: skip
    elif status == "deferred":
        # ReArq stored job_retries as F("job_retries") + 1 on the instance: count it here.
        # event_time/traceback are history-only keys (the TaskLog upsert ignores them).
        emit(ctx.event("deferred", job_retries=retries + 1,
                       error_message=_result_text(job_result), duration_ms=duration,
                       event_time=finish, traceback=ctx.traceback, **common))  # fmt: skip
    elif job_result is not None and _result_text(job_result) == TASK_NOT_FOUND:
        message = (
            f"task {job.task!r} is not registered on worker {ctx.worker}: ReArq left the "
            "job in progress and will never run it"
        )
        emit(ctx.event("failed", job_retries=retries, success=False,
                       error_message=message, finish_time=finish,
                       worker_id=ctx.worker))  # fmt: skip
    elif job_result is None:
        emit(ctx.event("queued", job_retries=retries,
                       error_message=f"task {job.task!r} is disabled: ReArq skipped the job "
                       "and left it unacknowledged"))  # fmt: skip


def wrap_run_job(original: Any) -> Any:
    @functools.wraps(original)
    async def _run_job(self: Any, queue: str, msg_id: str, job: Any) -> Any:
        runtime = runtime_mod.current()
        if runtime is None:
            job_result = await original(self, queue, msg_id, job)
            await honour_retry_after(self, queue, job)
            return job_result
        if runtime.collector_starting is not None:
            await runtime.collector_ready()
        retries = job.job_retries if isinstance(job.job_retries, int) else 0
        ctx = _JobContext(job, queue, self.worker_name, runtime)
        token = _running.set(ctx)
        try:
            job_result = await original(self, queue, msg_id, job)
        except asyncio.CancelledError:
            await _canceled(self, ctx, job, retries)
            raise
        except BaseException as exc:
            _safe_interrupted(ctx, job, retries, exc)
            raise
        finally:
            _running.reset(token)
        _safe_outcome(self, ctx, job, job_result, retries)
        if job_status(job) == "deferred":  # most jobs: no coroutine to create and await
            await honour_retry_after(self, queue, job)
        return job_result

    return _run_job


async def honour_retry_after(worker: Any, queue: str, job: Any) -> None:
    """ReArq schedules every retry after the *worker's* ``job_retry_after``; move it to the
    job's own (the task's or the enqueue call's). ``XX``: a retry the timer already took is
    not put back."""
    seconds = getattr(job, "job_retry_after", None)
    if job_status(job) != "deferred" or not isinstance(seconds, int):
        return
    if seconds == worker.job_retry_after:
        return
    try:
        due = now_ms() + seconds * 1000
        member = f"{queue}:{job.job_id}"
        await worker.rearq.redis.zadd(worker.rearq.get_delay_queue(member), {member: due}, xx=True)
        await worker.rearq.pub_delay(due)
    except Exception as exc:
        logger.warning("could not reschedule the retry of %s: %s", job.job_id, exc)


def _safe_outcome(self: Any, ctx: _JobContext, job: Any, job_result: Any, retries: int) -> None:
    try:
        _outcome(self, ctx, job, job_result, retries)
    except Exception:
        logger.exception("capture: outcome hook failed for job %s", job.job_id)


def _safe_interrupted(ctx: _JobContext, job: Any, retries: int, exc: BaseException) -> None:
    """ReArq's ``_run_job`` raised (not the task: ReArq catches the task's errors), e.g. its
    XACK while Redis restarts. It then saved neither the status nor a JobResult, so the job
    stays ``in_progress`` in ``rearq_job`` and its message is dropped unacknowledged: ReArq
    never runs it again. Record what really happened instead of the stale in-memory status."""
    try:
        finish = now_ms()
        start = ctx.start_ms
        duration = duration_ms(start, finish)
        common = {"job_retries": retries, "finish_time": finish, "duration_ms": duration,
                  "start_time": start, "worker_id": ctx.worker}  # fmt: skip
        reason = f"{type(exc).__name__}: {exc}"
        if ctx.returned:
            text = ctx.value
            emit(ctx.event("success", success=True, result=text, **common))
            logger.warning(
                "capture: job %s succeeded but ReArq could not record it (%s); it stays "
                "in_progress in rearq_job",
                job.job_id,
                reason,
            )
            return
        when = "before the job started" if start is None else "while finishing the job"
        message = (
            f"lost: worker {ctx.worker} failed {when} ({reason}); ReArq left the job in "
            "progress and will not run it again"
        )
        emit(ctx.event("failed", success=False, error_message=message, **common))
    except Exception:
        logger.exception("capture: interrupted-job hook failed for job %s", job.job_id)


async def _canceled(self: Any, ctx: _JobContext, job: Any, retries: int) -> None:
    reason = (
        f"worker {ctx.worker} stopped while the job was running (ReArq does not run it again)"
        if getattr(self, "_terminated", False)
        else "canceled"
    )
    finish = now_ms()
    duration = duration_ms(ctx.start_ms, finish)
    try:
        emit(ctx.event("canceled", job_retries=retries, finish_time=finish,
                       duration_ms=duration, worker_id=ctx.worker, error_message=reason,
                       start_time=ctx.start_ms))  # fmt: skip
        # ReArq saved the stale in-memory status (queued): make its own table truthful too.
        from rearq.enums import JobStatus
        from rearq.server.models import Job

        await asyncio.shield(Job.filter(job_id=job.job_id).update(status=JobStatus.canceled))
    except BaseException:
        logger.warning("capture: could not record the cancellation of %s", job.job_id)


def wrap_args_to_string(original: Any) -> Any:
    """ReArq logs every call as ``task(args, kwargs)`` (``rearq.worker.args_to_string``): log
    the payload as TaskLog stores it, so a secret-named argument is hidden there too."""

    @functools.wraps(original)
    def args_to_string(args: Any, kwargs: Any) -> str:
        try:
            ctx = _running.get()
            record = prepare_record({
                "task_name": ctx.job.task if ctx is not None else "",
                "args": list(args or []),
                "kwargs": dict(kwargs or {}),
            }, ctx.rules if ctx is not None else None)  # fmt: skip
            if ctx is not None and args is ctx.job.args and kwargs is ctx.job.kwargs:
                ctx.arguments = (record["args"], record["kwargs"])  # the events' too
            return original(record["args"], record["kwargs"])
        except Exception:  # logging must never fail a job: the text filter still applies
            return original(args, kwargs)

    return args_to_string
