"""The ReArq client of a Django project.

``get_rearq_client()`` builds one ReArq from ``REARQ_TASKS`` whose startup sets Django up,
initialises Tortoise for ReArq's own tables and whose workers capture every job into
TaskLog. What is done *with* jobs (enqueue for a user, retry, cancel) is in
:mod:`rearq_tasks.jobs`.

Sync callers (views, admin actions, commands) run ReArq's async code on one private event
loop thread: Tortoise's and redis-py's connections belong to the loop that opened them, so
a fresh loop per call would break them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rearq_tasks.conf import conf, redact_url

if TYPE_CHECKING:
    from rearq import ReArq


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
