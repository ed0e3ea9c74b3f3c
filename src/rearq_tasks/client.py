"""The ReArq client of a Django project, and the operations the API and admin perform on jobs.

``get_rearq_client()`` builds one ReArq from ``REARQ_TASKS`` whose startup sets Django up,
initialises Tortoise for ReArq's own tables and whose workers capture every job into
TaskLog. ``enqueue``/``enqueue_sync`` attribute a job to a user; ``retry_job`` and
``cancel_job`` work from a web process where the task functions are not registered.

Sync callers (views, admin actions, commands) run ReArq's async code on one private event
loop thread: Tortoise's and redis-py's connections belong to the loop that opened them, so
a fresh loop per call would break them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import importlib
import importlib.util
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rearq_tasks.conf import conf, redact_url

if TYPE_CHECKING:
    from rearq import ReArq
    from rearq.task import Task

    from rearq_tasks.models import TaskLog

logger = logging.getLogger("rearq_tasks.client")

T = TypeVar("T")
QUEUE_PREFIX = "rearq:queue:"
CHANNEL = "rearq:channel"
TASK_KEY = "rearq:task"
SYNC_TIMEOUT = 15.0
SYNC_TASK_NAME = "rearq_tasks_sync_task_logs"


class ReArqUnavailable(Exception):
    """Redis or ReArq's database cannot be reached (the message never shows a password)."""


_client: ReArq | None = None
_client_lock = threading.RLock()
_ready_loops: set[int] = set()
_ready_lock: asyncio.Lock | None = None


# --- building the client -------------------------------------------------------------------
def get_rearq_client() -> ReArq:
    """The project's ReArq, built once from ``REARQ_TASKS`` and instrumented."""
    global _client
    if _client is not None:
        return _client
    with _client_lock:
        if _client is None:
            _client = _build()
            _register_sync_cron(_client)
            _maybe_load_tasks()
    return _client


def _build() -> ReArq:
    from rearq import ReArq

    from rearq_tasks.capture.runtime import make_redis

    options: dict[str, Any] = {
        "redis_url": conf.REDIS_URL,
        "job_retry": conf.JOB_RETRY,
        "job_retry_after": conf.JOB_RETRY_AFTER,
        "job_timeout": conf.JOB_TIMEOUT,
        "max_jobs": conf.MAX_JOBS,
        "keep_job_days": conf.KEEP_JOB_DAYS,
        "logs_dir": None,
    }
    sentinels = conf.REDIS_SENTINELS
    if sentinels:
        options["sentinels"] = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in sentinels)]
        options["sentinel_master"] = conf.REDIS_SENTINEL_MASTER
    rearq = ReArq(**options)
    # Same server, but a dead host fails in seconds instead of hanging a web request.
    rearq._redis = make_redis(rearq)
    rearq.on_startup(_startup)
    instrument(rearq)
    return rearq


def instrument(rearq: ReArq) -> ReArq:
    """Install lifecycle capture for ``rearq`` (idempotent); returns it for chaining."""
    from rearq_tasks.capture.hooks import install

    install(rearq)
    rearq.__rearq_tasks_instrumented__ = True  # type: ignore[attr-defined]
    return rearq


def load_task_modules() -> list[str]:
    """Import ``TASK_MODULES`` and every installed app's ``tasks`` module (once each)."""
    from django.apps import apps

    names = list(conf.TASK_MODULES)
    for app in apps.get_app_configs():
        candidate = f"{app.name}.tasks"
        if importlib.util.find_spec(app.name) is not None:
            try:
                if importlib.util.find_spec(candidate) is not None:
                    names.append(candidate)
            except (ImportError, ValueError):
                continue
    for name in dict.fromkeys(names):
        importlib.import_module(name)
    return names


def _maybe_load_tasks() -> None:
    from django.apps import apps

    if apps.ready:
        load_task_modules()


async def _startup() -> None:
    await ensure_ready()


async def ensure_ready() -> None:
    """Django set up, Tortoise initialised for ReArq's models in *this* loop (idempotent)."""
    global _ready_lock
    loop = asyncio.get_running_loop()
    if id(loop) in _ready_loops:
        return
    if _ready_lock is None or getattr(_ready_lock, "_rearq_loop", None) is not loop:
        _ready_lock = asyncio.Lock()
        _ready_lock._rearq_loop = loop  # type: ignore[attr-defined]
    async with _ready_lock:
        if id(loop) in _ready_loops:
            return
        from django.apps import apps

        if not apps.ready:
            import django

            django.setup()
            _maybe_load_tasks()
        from tortoise import Tortoise

        await Tortoise.init(db_url=conf.DB_URL, modules={"rearq": ["rearq.server.models"]})
        await _generate_schemas()
        _ready_loops.add(id(loop))


async def _generate_schemas(attempts: int = 5) -> None:
    """Create ReArq's tables if missing. Workers started together race on PostgreSQL's
    ``CREATE TABLE IF NOT EXISTS`` (a duplicate ``pg_type`` row): the loser tries again."""
    from tortoise import Tortoise
    from tortoise.exceptions import IntegrityError, OperationalError

    for attempt in range(1, attempts + 1):
        try:
            await Tortoise.generate_schemas(safe=True)
            return
        except (IntegrityError, OperationalError):
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)


def _register_sync_cron(rearq: ReArq) -> None:
    cron = conf.SYNC_TASK_LOGS_CRON
    if not cron or SYNC_TASK_NAME in rearq.task_map:
        return

    async def rearq_tasks_sync_task_logs() -> str:
        from rearq_tasks.reconcile import reconcile

        # In the worker's own loop: Tortoise's connections belong to it.
        return str(await reconcile())

    rearq.task(cron=cron, name=SYNC_TASK_NAME)(rearq_tasks_sync_task_logs)


# --- running async ReArq code from sync code -----------------------------------------------
class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="rearq-tasks-client", daemon=True
        )
        self.thread.start()

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float) -> T:
        async def wrapped() -> T:
            await ensure_ready()
            return await factory()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


_loop_thread: _LoopThread | None = None


def _run_sync(factory: Callable[[], Awaitable[T]], timeout: float = SYNC_TIMEOUT) -> T:
    global _loop_thread
    get_rearq_client()
    with _client_lock:
        if _loop_thread is None:
            _loop_thread = _LoopThread()
    try:
        return _loop_thread.run(factory, timeout)
    except (ValueError, LookupError):
        raise
    except Exception as exc:
        raise _unavailable(exc) from None


async def _run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """In a worker's own loop run directly; elsewhere (ASGI) on the private loop thread."""
    loop = asyncio.get_running_loop()
    try:
        if id(loop) in _ready_loops:
            return await factory()
    except (ValueError, LookupError):
        raise
    except Exception as exc:
        raise _unavailable(exc) from None
    return await asyncio.get_running_loop().run_in_executor(None, _run_sync, factory)


def _unavailable(exc: BaseException) -> ReArqUnavailable:
    if isinstance(exc, ReArqUnavailable):
        return exc
    from redis.exceptions import RedisError

    if isinstance(exc, RedisError) or "redis" in type(exc).__module__:
        where = f"Redis at {_redis_location()}"
    elif isinstance(exc, concurrent.futures.TimeoutError | asyncio.TimeoutError):
        where = f"Redis at {_redis_location()} or ReArq's database at {redact_url(conf.DB_URL)}"
    else:
        where = f"ReArq's database at {redact_url(conf.DB_URL)}"
    return ReArqUnavailable(f"ReArq is unavailable: cannot reach {where} ({type(exc).__name__})")


def _redis_location() -> str:
    if conf.REDIS_SENTINELS:
        return f"sentinels {', '.join(conf.REDIS_SENTINELS)}"
    return str(redact_url(conf.REDIS_URL))


def reset_client() -> None:
    """Forget the client and stop its private loop (tests that change ``REARQ_TASKS``)."""
    global _client, _loop_thread
    with _client_lock:
        if _loop_thread is not None:
            thread = _loop_thread
            _ready_loops.discard(id(thread.loop))
            thread.loop.call_soon_threadsafe(thread.loop.stop)
            thread.thread.join(5)
            _loop_thread = None
        _client = None


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


def _user_id(user: Any) -> int | None:
    if user is None:
        return None
    if isinstance(user, int):
        return user
    if not getattr(user, "is_authenticated", True):
        return None
    return getattr(user, "pk", None)


async def _delay(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], user_id: int | None,
                 countdown: float | dt.timedelta | None, eta: dt.datetime | None,
                 job_id: str | None) -> Any:  # fmt: skip
    from rearq_tasks.capture.hooks import current_user_id

    token = current_user_id.set(user_id)
    try:
        return await task.delay(
            args=args, kwargs=kwargs, job_id=job_id, countdown=countdown or 0, eta=eta
        )
    finally:
        current_user_id.reset(token)


def _record_enqueued(job: Any, task: Task, user_id: int | None) -> None:
    """Write the row now, so the enqueuer sees it at once (the worker's events follow)."""
    from rearq_tasks.capture.events import job_event
    from rearq_tasks.capture.upsert import upsert_records

    status = getattr(job.status, "value", job.status)
    try:
        upsert_records([job_event(job, status, task.queue, user_id=user_id)])
    except Exception as exc:
        logger.warning("could not write the TaskLog row of %s now (%s); the capture stream "
                       "will deliver it", job.job_id, exc)  # fmt: skip


async def enqueue(task: Task | str, *args: Any, user: Any = None,
                  countdown: float | dt.timedelta | None = None, eta: dt.datetime | None = None,
                  job_id: str | None = None, **kwargs: Any) -> str:  # fmt: skip
    """``task.delay(*args, **kwargs)`` recorded for ``user``; returns the job id."""
    from asgiref.sync import sync_to_async

    resolved = _resolve_task(task)
    user_id = _user_id(user)
    job = await _run_async(lambda: _delay(resolved, args, kwargs, user_id, countdown, eta, job_id))
    await sync_to_async(_record_enqueued, thread_sensitive=True)(job, resolved, user_id)
    return job.job_id


def enqueue_sync(task: Task | str, *args: Any, user: Any = None,
                 countdown: float | dt.timedelta | None = None, eta: dt.datetime | None = None,
                 job_id: str | None = None, **kwargs: Any) -> str:  # fmt: skip
    """:func:`enqueue` for sync code (views): ``enqueue_sync(add, 1, 2, user=request.user)``."""
    resolved = _resolve_task(task)
    user_id = _user_id(user)
    job = _run_sync(lambda: _delay(resolved, args, kwargs, user_id, countdown, eta, job_id))
    _record_enqueued(job, resolved, user_id)
    return job.job_id


# --- retry and cancel from TaskLog -----------------------------------------------------------
RETRYABLE = frozenset({"failed", "expired", "canceled"})


def _queue_key(task_log: TaskLog) -> str:
    task = get_rearq_client().task_map.get(task_log.task_name)
    if task is not None:
        return task.queue
    if not task_log.queue_name:
        raise ValueError(
            f"the queue of job {task_log.job_id} is unknown (task {task_log.task_name!r} is "
            "not registered here): it cannot be re-enqueued"
        )
    return QUEUE_PREFIX + task_log.queue_name


def retry_job(task_log: TaskLog, user: Any = None) -> str:
    """Enqueue the same task with the same args/kwargs on the same queue; the new job id.

    Works without the task function: it writes the ``rearq_job`` row and adds the message
    to the queue's stream exactly as ``Task.delay`` does.
    """
    if task_log.status not in RETRYABLE:
        raise ValueError(
            f"job {task_log.job_id} is {task_log.status}: only failed, expired or canceled "
            "jobs can be retried"
        )
    queue = _queue_key(task_log)
    user_id = _user_id(user)
    new_id = uuid.uuid4().hex

    async def go() -> Any:
        from rearq.enums import JobStatus
        from rearq.server.models import Job
        from tortoise import timezone

        rearq = get_rearq_client()
        if await rearq.redis.hget(TASK_KEY, task_log.task_name) == "disabled":
            raise ValueError(f"task {task_log.task_name!r} is disabled in ReArq")
        job = Job(
            task=task_log.task_name,
            args=list(task_log.args or []),
            kwargs=dict(task_log.kwargs or {}),
            job_retry=task_log.job_retry,
            job_retry_after=task_log.job_retry_after,
            job_id=new_id,
            enqueue_time=timezone.now(),
            status=JobStatus.queued,
        )
        await job.save()
        await rearq.redis.xadd(queue, {"job_id": new_id})
        return job

    job = _run_sync(go)
    from rearq_tasks.capture.events import job_event
    from rearq_tasks.capture.upsert import upsert_records

    upsert_records([job_event(job, "queued", queue, user_id=user_id)])
    return new_id


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
    from rearq_tasks.models import TERMINAL_STATUSES

    if task_log.status in TERMINAL_STATUSES:
        raise ValueError(f"job {task_log.job_id} is already {task_log.status}")
    try:
        queue = _queue_key(task_log)
    except ValueError:
        queue = QUEUE_PREFIX + "default"

    async def go() -> bool:
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
                status = getattr(job.status, "value", job.status)
                raise ValueError(f"job {task_log.job_id} is already {status}")
        await rearq.redis.publish(
            CHANNEL,
            json.dumps(
                {"type": "cancel_task", "task_name": task_log.task_name, "job_id": task_log.job_id}
            ),
        )
        return running

    if _run_sync(go):
        if task_log.pk is not None:
            task_log.refresh_from_db()
        return
    from django.db import transaction
    from django.utils import timezone

    from rearq_tasks.capture.events import to_ms
    from rearq_tasks.capture.history import write_events
    from rearq_tasks.capture.upsert import upsert_records

    finish = timezone.now()
    duration = None
    if task_log.start_time is not None:
        duration = max(0, round((finish - task_log.start_time).total_seconds() * 1000))
    record = {
        "job_id": task_log.job_id,
        "task_name": task_log.task_name,
        "queue_name": task_log.queue_name,
        "args": task_log.args,
        "kwargs": task_log.kwargs,
        "job_retry": task_log.job_retry,
        "job_retries": task_log.job_retries,
        "job_retry_after": task_log.job_retry_after,
        "enqueue_time": to_ms(task_log.enqueue_time),
        "status": "canceled",
        "finish_time": to_ms(finish),
        "duration_ms": duration,
        "error_message": "canceled by a user",
    }
    with transaction.atomic():
        upsert_records([record])
        write_events([record])
    task_log.refresh_from_db()
