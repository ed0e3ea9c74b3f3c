"""Real Redis, real ReArq worker processes, the test database shared with them.

``worker_pool`` starts ``manage.py rearq_worker`` (or the plain ``rearq`` CLI) subprocesses
pointed at the test database and stops them quickly (``harness.processes.WorkerPool``:
after a short grace they are killed). Both fixtures leave Redis and the tables empty: what a
worker writes after a test's own cleanup must not reach the next test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from harness.databases import ensure_database_url
from harness.processes import WorkerPool, child_env

WORKER_SETTINGS = "tests.integration.worker_settings"
WORKER_APP = "tests.integration.jobs:rearq"


def _redis_url() -> str:
    return django_settings.REARQ_TASKS["REDIS_URL"]


def worker_rearq_settings() -> dict[str, Any]:
    return {
        **django_settings.REARQ_TASKS,
        "TASK_MODULES": ["tests.integration.jobs"],
        "JOB_RETRY": 2,
        "JOB_RETRY_AFTER": 1,
    }


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(_redis_url(), socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis is not reachable: {exc}")


@pytest.fixture(scope="session")
def rearq_services() -> None:
    _require_redis()
    # Tortoise does not create databases: make ReArq's one if it is missing.
    ensure_database_url(django_settings.REARQ_TASKS["DB_URL"])


@pytest.fixture(scope="session")
def capture_settings() -> Iterator[None]:
    """The test process uses the workers' ReArq settings (retries, task modules)."""
    from django.test import override_settings

    with override_settings(REARQ_TASKS=worker_rearq_settings()):
        import tests.integration.jobs  # noqa: F401  (registers the tasks here too)

        yield


def _redis() -> Any:
    """ReArq's Redis as the current settings name it (by URL or through Sentinel)."""
    from rearq_tasks.queue.connection import redis_client

    return redis_client(timeout=5)


def flush_redis() -> None:
    _redis().flushdb()


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a process that works on the test database like the workers."""
    from django.db import connection

    return child_env(
        WORKER_SETTINGS, REARQ_TASKS_WORKER_DB_NAME=connection.settings_dict["NAME"], **extra
    )


def remove_what_workers_wrote() -> None:
    """Rows and Redis keys the workers wrote after the test's own cleanup: a module's shared
    worker and timer (a cron job every second) outlive each test's flush, and rows left
    behind would change what later tests count."""
    from rearq_tasks.models import TaskEvent, TaskLog
    from rearq_tasks.rollups import TaskStat, TaskStatBin

    TaskEvent.objects.all().delete()
    TaskLog.objects.all().delete()
    # Deleting rows keeps their rollups (as retention does): the counts go too.
    TaskStatBin.objects.all().delete()
    TaskStat.objects.all().delete()
    flush_redis()


def process_logdir() -> Path:
    """Where this run's child processes log: one folder per test database, so cells that run
    at the same time (scripts/test runs them in parallel) keep their logs apart."""
    from django.db import connection

    name = Path(str(connection.settings_dict["NAME"])).stem
    folder = Path(django_settings.VAR_DIR) / "logs" / f"{connection.vendor}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_worker_pool() -> WorkerPool:
    return WorkerPool(_redis, process_logdir(), worker_env(), app=WORKER_APP)


@pytest.fixture
def worker_pool(
    rearq_services: None, capture_settings: None, transactional_db: None
) -> Iterator[WorkerPool]:
    flush_redis()
    pool = new_worker_pool()
    yield pool
    pool.stop_all()
    flush_redis()  # transactional_db flushes the tables next


@pytest.fixture(scope="module")
def shared_worker(
    rearq_services: None, capture_settings: None, django_db_setup: None, django_db_blocker: Any
) -> Iterator[WorkerPool]:
    """One worker + timer for a module's tests (each test uses its own job ids)."""
    flush_redis()
    with django_db_blocker.unblock():
        pool = new_worker_pool()
    pool.start("default", "slowq", with_timer=True)
    yield pool
    pool.stop_all()
    with django_db_blocker.unblock():
        remove_what_workers_wrote()
