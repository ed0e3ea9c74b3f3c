"""Tasks the integration tests' worker processes run (imported through TASK_MODULES)."""

from __future__ import annotations

import asyncio
import hashlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.worker_settings")

from rearq_tasks import get_rearq_client  # noqa: E402

rearq = get_rearq_client()


@rearq.task()
async def add(a: int, b: int) -> int:
    return a + b


@rearq.task(job_retry=2)
async def fail_once(key: str) -> str:
    attempt = await rearq.redis.incr(f"test:fail_once:{key}")
    if attempt == 1:
        raise RuntimeError(f"first attempt of {key} fails")
    return f"ok on attempt {attempt}"


@rearq.task(job_retry=1)
async def always_fail(reason: str = "boom") -> None:
    raise ValueError(reason)


@rearq.task(queue="slowq")
async def sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@rearq.task(job_timeout=2)
async def hang(seconds: float = 30) -> None:
    await asyncio.sleep(seconds)


@rearq.task(cron="* * * * * * *")
async def tick() -> str:
    return "tick"


@rearq.task(run_at_start=(7,))
async def boot(value: int) -> int:
    return value * 2


@rearq.task(job_retry=2)
async def fail_twice(key: str, api_token: str = "") -> str:
    attempt = await rearq.redis.incr(f"test:fail_twice:{key}")
    if attempt <= 2:
        raise RuntimeError(f"attempt {attempt} of {key} fails, api_token={api_token}")
    return f"ok on attempt {attempt}"


@rearq.task(queue="slowq")
async def stubborn(seconds: float) -> str:
    """Swallows ReArq's cancellation: the cancel does not land."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.sleep(1.5)
        return "finished anyway"
    return "finished"


@rearq.task()
async def leak(dsn: str, card: str, password: str = "", bypass_cache: bool = False) -> dict:
    """Returns secrets beside harmless values (tests/integration/test_secrets_e2e.py)."""
    return {"password": password, "dsn": dsn, "fine": 1, "author": "ada", "bypass": bypass_cache}


@rearq.task(job_retry=1)
async def leak_fail(secret: str, passenger_count: int = 3) -> None:
    raise RuntimeError(
        f"login failed password={secret} via redis://:{secret}@cache:6379/0 "
        f"Authorization: Bearer {secret} for {passenger_count} passengers"
    )


@rearq.task(job_retry=0)
async def never_retry(reason: str = "once") -> None:
    raise ValueError(reason)


@rearq.task(job_retry=1, job_retry_after=4)
async def fail_once_slowly(key: str) -> str:
    attempt = await rearq.redis.incr(f"test:fail_once_slowly:{key}")
    if attempt == 1:
        raise RuntimeError(f"first attempt of {key} fails")
    return f"ok on attempt {attempt}"


# The documented cron recipe, at module level: ReArq's CLI imports this module before Django
# is set up. A yearly schedule: the tests run them by enqueueing.
from rearq_tasks.ops.cron import register_cron_tasks  # noqa: E402

register_cron_tasks(rearq, alerts="0 0 1 1 *", cleanup="0 0 1 1 *")


@rearq.task()
async def gated(key: str, data: str = "", password: str = "") -> str:
    """Fails until the test opens its gate; returns a digest of what it received, so the
    test can check the arguments without the secret itself being stored anywhere."""
    if not await rearq.redis.get(f"test:gate:{key}"):
        raise RuntimeError(f"gate {key} is closed")
    return hashlib.sha256(f"{password}|{data}".encode()).hexdigest()
