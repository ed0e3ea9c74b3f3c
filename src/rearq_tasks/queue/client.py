"""The ReArq client of a Django project.

``get_rearq_client()`` builds one ReArq from ``REARQ_TASKS`` whose startup sets Django up,
initialises Tortoise for ReArq's own tables (:mod:`rearq_tasks.queue.loop`) and whose
workers capture every job into TaskLog. What is done *with* jobs (enqueue for a user,
retry, cancel, sync) is in :mod:`rearq_tasks.queue.jobs`.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import warnings
from typing import TYPE_CHECKING, Any

from rearq_tasks.capture import runtime
from rearq_tasks.capture.hooks import install
from rearq_tasks.conf import conf
from rearq_tasks.queue import loop
from rearq_tasks.queue.connection import client_mismatch, make_redis
from rearq_tasks.queue.keys import sentinel_nodes
from rearq_tasks.queue.reconcile import reconcile

if TYPE_CHECKING:
    from rearq import ReArq

SYNC_TASK_NAME = "rearq_tasks_sync_task_logs"

_client: ReArq | None = None
_client_lock = threading.RLock()


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
        options["sentinels"] = sentinel_nodes(sentinels)
        options["sentinel_master"] = conf.REDIS_SENTINEL_MASTER
    rearq = ReArq(**options)
    rearq._redis = make_redis(rearq)
    rearq.on_startup(loop.ensure_ready)
    instrument(rearq)
    return rearq


def instrument(rearq: ReArq) -> ReArq:
    """Install lifecycle capture for ``rearq`` (idempotent); returns it for chaining."""
    install(rearq)
    # When the last worker of a process stops, close what ensure_ready() opened for it.
    runtime.on_last_stop(loop.close_running_loop)
    loop.on_django_setup(_maybe_load_tasks)
    _close_releases_everything(rearq)
    try:
        problem = client_mismatch(rearq)
    except Exception:  # unreadable settings: the system checks report them
        problem = None
    if problem:
        warnings.warn(f"rearq_tasks.W002: {problem}", RuntimeWarning, stacklevel=2)
    rearq.__rearq_tasks_instrumented__ = True  # type: ignore[attr-defined]
    return rearq


def _close_releases_everything(rearq: ReArq) -> None:
    """``await rearq.close()`` closes ReArq's Redis only; also close the database our startup
    opened in this loop, whose aiosqlite thread would keep a script alive for ever."""
    original = rearq.close
    if getattr(original, "__rearq_tasks_hook__", False):
        return

    async def close() -> None:
        try:
            await original()
        finally:
            await loop.close_running_loop()

    close.__rearq_tasks_hook__ = True  # type: ignore[attr-defined]
    rearq.close = close  # type: ignore[method-assign]


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


def _register_sync_cron(rearq: ReArq) -> None:
    cron = conf.SYNC_TASK_LOGS_CRON
    if not cron or SYNC_TASK_NAME in rearq.task_map:
        return

    async def rearq_tasks_sync_task_logs() -> str:
        # In the worker's own loop: Tortoise's connections belong to it.
        return str(await reconcile(rearq.task_map, redis=rearq.redis))

    rearq.task(cron=cron, name=SYNC_TASK_NAME)(rearq_tasks_sync_task_logs)


def reset_client() -> None:
    """Forget the client and stop its private loop (tests that change ``REARQ_TASKS``)."""
    global _client
    with _client_lock:
        loop.stop_loop_thread()
        _client = None
