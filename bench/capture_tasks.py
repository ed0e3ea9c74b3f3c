"""The benchmark's captured worker: the same no-op task on the project's client."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.capture_settings")

from rearq_tasks import get_rearq_client  # noqa: E402

rearq = get_rearq_client()


@rearq.task()
async def noop(i: int, **kwargs: object) -> int:
    return i
