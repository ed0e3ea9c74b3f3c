"""Worker side of capture: a bounded in-memory buffer sent to a Redis stream in batches.

Hooks call :meth:`Emitter.emit` in the job path: it only appends a JSON string to a list.
A loop task sends the buffer every ``CAPTURE_FLUSH_INTERVAL_MS`` with one EVALSHA (a Lua
XADD loop), so the worker pays microseconds per event and never waits on the Django DB.
While Redis is unreachable events stay buffered; past ``CAPTURE_BUFFER_SIZE`` they are
dropped and counted (``overflowed``) and ``sync_task_logs`` repairs the rows later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rearq_tasks.capture import stats
from rearq_tasks.capture.events import dumps

logger = logging.getLogger("rearq_tasks.capture")

XADD_MANY = """
local n = 0
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
  n = n + 1
end
return n
"""
SEND_CHUNK = 1000


class Emitter:
    def __init__(
        self, redis: Any, stream: str, maxlen: int, buffer_size: int, interval_ms: int
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.buffer_size = buffer_size
        self.interval = interval_ms / 1000
        self._buffer: list[str] = []
        self._script = redis.register_script(XADD_MANY)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._warned_overflow = False

    def emit(self, event: dict[str, Any]) -> None:
        if len(self._buffer) >= self.buffer_size:
            stats.incr("overflowed")
            if not self._warned_overflow:
                self._warned_overflow = True
                logger.warning(
                    "capture buffer full (%d events): dropping events until Redis accepts "
                    "them again; run sync_task_logs to repair",
                    self.buffer_size,
                )
            return
        self._buffer.append(dumps(event))
        if len(self._buffer) >= SEND_CHUNK:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Send everything buffered; False when Redis refused (events stay buffered)."""
        while self._buffer:
            batch = self._buffer[:SEND_CHUNK]
            try:
                await self._script(keys=[self.stream], args=[self.maxlen, *batch])
            except Exception as exc:  # Redis down or slow: keep the events, try again later
                stats.incr("send_failures")
                stats.set_value("buffered", len(self._buffer))
                logger.warning("capture: could not send %d events to Redis: %s", len(batch), exc)
                return False
            del self._buffer[: len(batch)]
            stats.incr("emitted", len(batch))
            self._warned_overflow = False
        stats.set_value("buffered", 0)
        return True

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._buffer and asyncio.get_running_loop().time() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self._buffer:
            stats.incr("overflowed", len(self._buffer))
            logger.error(
                "capture: %d events could not be sent before shutdown; run sync_task_logs",
                len(self._buffer),
            )
            self._buffer.clear()
