"""The benchmark's baseline: ReArq alone (no rearq_tasks import in the worker path)."""

from __future__ import annotations

import os

from rearq import ReArq
from tortoise import Tortoise

rearq = ReArq(redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
              job_retry=0, logs_dir=None)  # fmt: skip
DB = os.environ.get("BENCH_DB_NAME", "rt_capture_bench")


@rearq.on_startup
async def startup() -> None:
    await Tortoise.init(
        db_url=f"postgres://postgres@127.0.0.1:5432/{DB}",
        modules={"rearq": ["rearq.server.models"]},
    )


@rearq.task()
async def noop(i: int, **kwargs: object) -> int:
    return i
