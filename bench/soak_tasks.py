"""The soak's tasks (``bench/soakkit.py``): each kind of job the mix needs."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.soak_settings")

from rearq_tasks import get_rearq_client  # noqa: E402

rearq = get_rearq_client()


@rearq.task()
async def add(a: int, b: int) -> int:
    return a + b


@rearq.task(job_retry=2)
async def flaky(key: str) -> str:
    attempt = await rearq.redis.incr(f"soak:flaky:{key}")
    if attempt == 1:
        raise RuntimeError(f"first attempt of {key} fails")
    return f"ok on attempt {attempt}"


@rearq.task(job_retry=1)
async def always_fail(reason: str) -> None:
    raise ValueError(reason)


@rearq.task(job_timeout=5)
async def nap(label: str, seconds: float) -> float:
    # Not ``token``: a positional argument is judged by its parameter's name (redacted), and
    # the soak compares TaskLog's arguments with ReArq's.
    await rearq.redis.set(f"soak:running:{label}", 1, ex=3600)
    await asyncio.sleep(seconds)
    return seconds


@rearq.task(cron="*/2 * * * * * *")
async def tick() -> str:
    return "tick"
