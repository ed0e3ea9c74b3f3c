"""Shared plumbing of the ReArq process commands (worker, timer, server, collector)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.management.base import CommandError

from rearq_tasks.conf import conf, redact_url


def client_with_tasks() -> Any:
    from rearq_tasks.queue.client import get_rearq_client, load_task_modules

    rearq = get_rearq_client()
    try:
        load_task_modules()
    except ImportError as exc:
        raise CommandError(f"cannot import a task module: {exc}") from exc
    return rearq


def run(main: Callable[[], Awaitable[Any]]) -> None:
    """Run ``main`` in a new loop; unreachable services become a CommandError."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        asyncio.run(main())
    except RedisConnectionError as exc:
        raise CommandError(
            f"cannot reach Redis at {redact_url(conf.REDIS_URL)}: {type(exc).__name__}"
        ) from None
    except OSError as exc:
        raise CommandError(f"cannot reach a service: {exc}") from None
    except KeyboardInterrupt:
        pass
