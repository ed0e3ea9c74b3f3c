"""Where ReArq's async code runs: Tortoise set up per event loop, and one private loop thread.

Tortoise's and redis-py's connections belong to the loop that opened them, so sync callers
(views, admin actions, commands) run ReArq's code on one private event loop thread instead
of a fresh loop per call; a worker's own loop is set up once by the client's startup hook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rearq_tasks.conf import conf, redact_url
from rearq_tasks.conf.checks import refuse_bad_settings
from rearq_tasks.redaction import redact_text

T = TypeVar("T")
SYNC_TIMEOUT = 15.0


class ReArqUnavailable(Exception):
    """Redis or ReArq's database cannot be reached (the message never shows a password)."""


# The loops ensure_ready() set up, held weakly: an id() could be reused by a later loop once
# this one is gone, which would then wrongly count as set up.
_ready_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_ready_lock: asyncio.Lock | None = None
_state_lock = threading.RLock()
# Called in a loop that ensure_ready() set up, the first time it is; the client loads the
# project's task modules here when Django was set up by this loop (a ReArq CLI worker).
_after_django_setup: list[Callable[[], None]] = []


def on_django_setup(callback: Callable[[], None]) -> None:
    """Run ``callback`` right after :func:`ensure_ready` had to set Django up itself."""
    if callback not in _after_django_setup:
        _after_django_setup.append(callback)


def is_ready(loop: asyncio.AbstractEventLoop) -> bool:
    return loop in _ready_loops


async def ensure_ready() -> None:
    """Django set up, Tortoise initialised for ReArq's models in *this* loop (idempotent)."""
    global _ready_lock
    loop = asyncio.get_running_loop()
    if loop in _ready_loops:
        return
    if _ready_lock is None or getattr(_ready_lock, "_rearq_loop", None) is not loop:
        _ready_lock = asyncio.Lock()
        _ready_lock._rearq_loop = loop  # type: ignore[attr-defined]
    async with _ready_lock:
        if loop in _ready_loops:
            return
        from django.apps import apps

        if not apps.ready:
            import django

            django.setup()
            # Not a manage.py process (ReArq's CLI, a script): nothing ran the checks yet.
            refuse_bad_settings("process")
            for callback in _after_django_setup:
                callback()
        from tortoise import Tortoise

        await Tortoise.init(db_url=conf.DB_URL, modules={"rearq": ["rearq.server.models"]})
        await _generate_schemas()
        _ready_loops.add(loop)


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


async def close_running_loop(force: bool = False) -> None:
    """Close ReArq's database if :func:`ensure_ready` opened it in this loop (or, ``force``,
    whoever opened it): aiosqlite's non-daemon thread would otherwise keep the process alive
    after the last worker stopped."""
    loop = asyncio.get_running_loop()
    if loop not in _ready_loops and not force:
        return
    _ready_loops.discard(loop)
    from tortoise import Tortoise

    if Tortoise._inited:  # a bare ReArq client (tests, scripts) never set Tortoise up
        await Tortoise.close_connections()


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="rearq-tasks-client", daemon=True
        )
        self.thread.start()

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float | None) -> T:
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


def run_sync(factory: Callable[[], Awaitable[T]], timeout: float | None = SYNC_TIMEOUT) -> T:
    """Run ReArq code from sync code on the private loop thread; ReArqUnavailable on I/O errors.

    ``ValueError``/``LookupError`` are the caller's own refusals and pass through unchanged.
    """
    global _loop_thread
    with _state_lock:
        if _loop_thread is None:
            _loop_thread = _LoopThread()
    try:
        return _loop_thread.run(factory, timeout)
    except (ValueError, LookupError):
        raise
    except Exception as exc:
        raise unavailable(exc) from None


async def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """In a worker's own loop run directly; elsewhere (ASGI) on the private loop thread."""
    loop = asyncio.get_running_loop()
    try:
        if loop in _ready_loops:
            return await factory()
    except (ValueError, LookupError):
        raise
    except Exception as exc:
        raise unavailable(exc) from None
    return await asyncio.get_running_loop().run_in_executor(None, run_sync, factory)


def unavailable(exc: BaseException) -> ReArqUnavailable:
    """``exc`` as the one error sync callers show: where ReArq could not be reached."""
    if isinstance(exc, ReArqUnavailable):
        return exc
    from redis.exceptions import RedisError

    if isinstance(exc, RedisError) or "redis" in type(exc).__module__:
        where = f"Redis at {_redis_location()}"
    elif isinstance(exc, concurrent.futures.TimeoutError | asyncio.TimeoutError):
        where = f"Redis at {_redis_location()} or ReArq's database at {redact_url(conf.DB_URL)}"
    else:
        where = f"ReArq's database at {redact_url(conf.DB_URL)}"
    # The reason helps an operator; it goes through the text redaction (a driver's message can
    # name a URL with its password).
    reason = redact_text(str(exc), None)[:200]
    detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return ReArqUnavailable(f"ReArq is unavailable: cannot reach {where} ({detail})")


def _redis_location() -> str:
    if conf.REDIS_SENTINELS:
        return f"sentinels {', '.join(conf.REDIS_SENTINELS)}"
    return str(redact_url(conf.REDIS_URL))


def stop_loop_thread() -> None:
    """Stop the private loop (tests that change ``REARQ_TASKS``)."""
    global _loop_thread
    with _state_lock:
        if _loop_thread is not None:
            thread = _loop_thread
            if thread.loop in _ready_loops:
                # Close what ensure_ready() opened in that loop: Tortoise's connections belong to
                # it, and a later loop must not inherit them half-dead.
                try:
                    asyncio.run_coroutine_threadsafe(close_running_loop(), thread.loop).result(5)
                except Exception:
                    pass
            _ready_loops.discard(thread.loop)
            thread.loop.call_soon_threadsafe(thread.loop.stop)
            thread.thread.join(5)
            _loop_thread = None
