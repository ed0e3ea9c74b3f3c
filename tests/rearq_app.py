"""A tiny ReArq app for the worker-process tests: ``rearq tests.rearq_app:rearq worker``.

Redis and ReArq's Tortoise database come from the environment the test sets.
"""

from __future__ import annotations

import os

from rearq import ReArq
from tortoise import Tortoise

rearq = ReArq(
    redis_url=os.environ.get("REARQ_TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    logs_dir=None,
)


@rearq.on_startup
async def startup() -> None:
    await Tortoise.init(
        db_url=os.environ["RT_WORKER_DB_URL"], modules={"rearq": ["rearq.server.models"]}
    )
    await Tortoise.generate_schemas()


@rearq.on_shutdown
async def shutdown() -> None:
    await Tortoise.close_connections()


@rearq.task()
async def add(a: int, b: int) -> int:
    return a + b
