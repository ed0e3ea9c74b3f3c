"""The demo project's ReArq tasks: one of each kind of job the admin should show.

Run a worker with ``python manage.py rearq_worker --with-timer`` or, equally,
``rearq example_project.tasks:rearq worker -t`` (both capture into TaskLog).
"""

from __future__ import annotations

import asyncio
import os
import random

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from rearq_tasks import get_rearq_client  # noqa: E402

rearq = get_rearq_client()


@rearq.task()
async def add(a: int, b: int) -> int:
    """Succeeds at once."""
    return a + b


@rearq.task(job_retry=2, job_retry_after=1)
async def flaky(key: str, fail_times: int = 1) -> str:
    """Fails ``fail_times`` times for a key, then succeeds on a retry."""
    redis = rearq.redis
    attempt = await redis.incr(f"demo:flaky:{key}")
    await redis.expire(f"demo:flaky:{key}", 3600)
    if attempt <= fail_times:
        raise RuntimeError(f"flaky failure {attempt} of {fail_times}")
    return f"ok after {attempt} attempts"


@rearq.task(job_retry=1, job_retry_after=1)
async def always_fails(reason: str = "boom") -> None:
    """Fails on every attempt, so it ends failed."""
    raise ValueError(reason)


@rearq.task(queue="low")
async def slow(seconds: float = 3.0) -> float:
    """Runs for a while: shows in progress in the admin."""
    await asyncio.sleep(seconds)
    return seconds


@rearq.task(cron="*/30 * * * * * *")
async def heartbeat() -> str:
    """A cron job (every 30 s), created by the timer with bulk_create."""
    return f"tick {random.randint(0, 999)}"
