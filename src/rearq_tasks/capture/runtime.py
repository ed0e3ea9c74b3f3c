"""The capture machinery of one worker process: emitter, embedded collector, cancel listener.

Started by the first ``Worker.run`` (a worker and a timer in one process share it) and
stopped, flushing and draining, when the last one ends. It uses its own Redis client: ReArq
closes its own at shutdown, before the last events are sent.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Any

from redis.asyncio.client import Redis
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.sentinel import Sentinel

from rearq_tasks.capture.collector import Collector
from rearq_tasks.capture.emitter import Emitter

logger = logging.getLogger("rearq_tasks.capture")

CHANNEL = "rearq:channel"
REMEMBERED_CANCELS = 10_000


def make_redis(rearq: Any) -> Redis:
    """A Redis client to the same server as ``rearq`` (URL or sentinels)."""
    if getattr(rearq, "sentinels", None):
        sentinel = Sentinel(
            [tuple(s.rsplit(":", 1)) if isinstance(s, str) else s for s in rearq.sentinels],
            decode_responses=True,
            socket_connect_timeout=5,
        )
        return sentinel.master_for(rearq.sentinel_master)
    pool = ConnectionPool.from_url(
        rearq.redis_url, decode_responses=True, socket_connect_timeout=5
    )
    return Redis(connection_pool=pool)


class CaptureRuntime:
    def __init__(self, rearq: Any) -> None:
        from rearq_tasks.conf import conf

        self.rearq = rearq
        self.loop = asyncio.get_running_loop()
        self.redis = make_redis(rearq)
        self.emitter = Emitter(
            self.redis,
            conf.CAPTURE_STREAM,
            conf.CAPTURE_STREAM_MAXLEN,
            conf.CAPTURE_BUFFER_SIZE,
            conf.CAPTURE_FLUSH_INTERVAL_MS,
        )
        self.collector: Collector | None = None
        if conf.CAPTURE_COLLECTOR == "embedded":
            self.collector = Collector(self.redis, conf.CAPTURE_STREAM, conf.CAPTURE_BATCH_SIZE)
        self.canceled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._listener: asyncio.Task[None] | None = None
        self.users = 0

    def start(self) -> None:
        _ensure_django()
        self.emitter.start()
        if self.collector is not None:
            self.collector.start()
        self._listener = asyncio.ensure_future(self._listen_cancels())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        await self.emitter.stop()
        if self.collector is not None:
            await self.collector.stop()
        try:
            await self.redis.close()
        except Exception:
            pass

    async def _listen_cancels(self) -> None:
        """Remember cancelled job ids: ReArq only cancels jobs already running."""
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        data = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    job_id = data.get("job_id") if isinstance(data, dict) else None
                    if data.get("type") == "cancel_task" and job_id:
                        self.canceled[job_id] = None
                        while len(self.canceled) > REMEMBERED_CANCELS:
                            self.canceled.popitem(last=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("capture: cancel listener lost Redis (%s), resubscribing", exc)
                await asyncio.sleep(1)


def _ensure_django() -> None:
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()


_runtime: CaptureRuntime | None = None


def current() -> CaptureRuntime | None:
    """The runtime of the running loop, if this process runs workers."""
    if _runtime is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _runtime if _runtime.loop is loop else None


async def acquire(rearq: Any) -> CaptureRuntime:
    global _runtime
    if _runtime is None or _runtime.loop is not asyncio.get_running_loop():
        _runtime = CaptureRuntime(rearq)
        _runtime.start()
    _runtime.users += 1
    return _runtime


async def release() -> None:
    global _runtime
    runtime = current()
    if runtime is None:
        return
    runtime.users -= 1
    if runtime.users <= 0:
        _runtime = None
        await runtime.stop()
        await _close_tortoise()


async def _close_tortoise() -> None:
    """Close ReArq's database if our startup opened it: aiosqlite's thread would keep the
    process alive after the last worker stopped."""
    from rearq_tasks import client

    loop = asyncio.get_running_loop()
    if id(loop) not in client._ready_loops:
        return
    client._ready_loops.discard(id(loop))
    try:
        from tortoise import Tortoise

        await Tortoise.close_connections()
    except Exception as exc:
        logger.warning("capture: closing ReArq's database failed: %s", exc)
