"""Worker side of capture: a bounded in-memory buffer sent to a Redis stream in batches.

Hooks call :meth:`Emitter.emit` in the job path: it only appends a JSON string to a list.
A loop task sends the buffer every ``CAPTURE_FLUSH_INTERVAL_MS`` with one EVALSHA (a Lua
XADD loop), so the worker pays microseconds per event and never waits on the Django DB.
While Redis is unreachable events stay buffered; past ``CAPTURE_BUFFER_SIZE`` they are
dropped and counted (``overflowed``) and ``sync_task_logs`` repairs the rows later.

The stream is the buffer while the Django database is down, so it is never trimmed below
what a collector group still has to read or acknowledge (a plain ``XADD MAXLEN ~`` would
silently drop unwritten events). Once ``CAPTURE_STREAM_MAXLEN`` events wait, the script
refuses more; they stay in the worker's buffer, then overflow, counted and logged. Dropped
events are also counted in Redis (``<stream>:counters``) for the metrics endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rearq_tasks.capture import counters
from rearq_tasks.capture.events import dumps, job_event

logger = logging.getLogger("rearq_tasks.capture")

# KEYS[1] stream, KEYS[2] counters hash; ARGV[1] cap, ARGV[2] events dropped and ARGV[3]
# events refused since the last send (counted in the hash), ARGV[4] how many ms written
# entries are kept for live feeds to resume from (0: none), ARGV[5] the events joined by
# newlines (compact JSON never holds a raw newline; one argument instead of one per event
# saves the client encoding and framing each of them: it was most of a flush). Trims exactly
# the entries every group has read and acknowledged (approximate trimming would leave up to
# a node of them counted against the cap), except written ones younger than ARGV[4] while
# the stream is under half its cap (so they never take room unwritten events need), adds at
# most ``cap - XLEN`` events and returns how many it added.
XADD_MANY = """
local function before(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
if tonumber(ARGV[2]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'overflowed', ARGV[2])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'refused', ARGV[3])
end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  local floor = nil
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    local need = info['last-delivered-id']
    if info['pending'] > 0 then
      need = redis.call('XPENDING', KEYS[1], info['name'])[2]
    end
    if floor == nil or before(need, floor) then floor = need end
  end
  if floor ~= nil then
    local keep = tonumber(ARGV[4])
    if keep > 0 and redis.call('XLEN', KEYS[1]) < tonumber(ARGV[1]) / 2 then
      local t = redis.call('TIME')
      local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local kept = string.format('%d-0', now_ms - keep)
      if before(kept, floor) then floor = kept end
    end
    redis.call('XTRIM', KEYS[1], 'MINID', floor)
  end
end
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local n, blob, pos = 0, ARGV[5], 1
if blob == '' then return 0 end
while n < room do
  local stop = string.find(blob, '\\n', pos, true)
  redis.call('XADD', KEYS[1], '*', 'e', string.sub(blob, pos, (stop or 0) - 1))
  n = n + 1
  if not stop then break end
  pos = stop + 1
end
return n
"""
SEND_CHUNK = 1000
LOG_EVERY_S = 60.0
_scripts: dict[int, Any] = {}


def counters_key(stream: str) -> str:
    """The Redis hash where every process counts the events it had to drop."""
    return f"{stream}:counters"


async def send(
    redis: Any, stream: str, cap: int, events: list[str], dropped: int = 0, refused: int = 0,
    keep_ms: int = 0,
) -> int:  # fmt: skip
    """Append ``events`` to the stream (never past ``cap`` unwritten ones) and add ``dropped``
    and ``refused`` to the Redis counters; written entries younger than ``keep_ms`` stay for
    live feeds (``STREAM_RESUME_SECONDS``). Returns how many events went in."""
    blob = "\n".join(events)
    if blob.count("\n") != max(0, len(events) - 1):
        raise ValueError("an event holds a raw newline: events are compact JSON")
    script = _scripts.get(id(redis))
    if script is None or script.registered_client is not redis:
        script = _scripts[id(redis)] = redis.register_script(XADD_MANY)
    keys = [stream, counters_key(stream)]
    return int(await script(keys=keys, args=[cap, dropped, refused, keep_ms, blob]))


def _start_event(start: Any) -> dict[str, Any]:
    if isinstance(start, dict):
        return start
    job, queue, worker, start_ms = start
    return job_event(job, "in_progress", queue, start_time=start_ms, worker_id=worker)


class Emitter:
    def __init__(
        self,
        redis: Any,
        stream: str,
        maxlen: int,
        buffer_size: int,
        interval_ms: int,
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        keep_ms: int = 0,
    ) -> None:
        self.redis = redis
        self.keep_ms = keep_ms  # written events kept for live feeds (STREAM_RESUME_SECONDS)
        # Payloads are made safe (redacted, bounded) before they are encoded and leave the
        # worker: a secret never reaches the stream. Done at encode time, so the start event
        # of a job that ends within the flush interval is never prepared at all.
        self._encode = (lambda event: dumps(prepare(event))) if prepare else dumps
        self.stream = stream
        self.maxlen = maxlen
        self.buffer_size = buffer_size
        self.interval = interval_ms / 1000
        self._buffer: list[str] = []
        # Starts wait for the next flush as (job, queue, worker, start_ms), or as an event: a
        # job that ends before it is neither built, prepared nor encoded (one event per job).
        self._starts: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._dropped = 0  # dropped, not yet counted in Redis
        self._refused = 0  # refused, not yet counted in Redis
        self._held = 0  # events at the buffer's head already counted as refused
        self._episode_dropped = 0  # dropped since the last successful send (for the log)
        self._stream_full = False

    def started(self, job: Any, queue: str, worker: str, start_ms: float) -> None:
        """The true start of ``job``: its event is built at the next flush, if still needed."""
        self._starts[job.job_id] = (job, queue, worker, start_ms)

    def emit(self, event: dict[str, Any]) -> None:
        if event["status"] == "in_progress":
            self._starts[event["job_id"]] = event
            return
        self._starts.pop(event["job_id"], None)
        if len(self._buffer) >= self.buffer_size:
            self._drop(1)
            return
        self._buffer.append(self._encode(event))
        if len(self._buffer) >= SEND_CHUNK:
            self._wake.set()

    def _drop(self, count: int) -> None:
        counters.incr("overflowed", count)
        self._dropped += count
        self._episode_dropped += count
        if self._episode_dropped == count:
            logger.warning(
                "capture buffer full (%d events, stream %s waiting for its collector or Redis "
                "unreachable): dropping events; run sync_task_logs to repair",
                self.buffer_size,
                self.stream,
            )

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_log = loop.time()
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if loop.time() - last_log >= LOG_EVERY_S:
                last_log = loop.time()
                logger.info("capture: %s", counters.get_capture_stats())

    async def flush(self) -> bool:
        """Send everything buffered; False when Redis refused or the stream is full (the
        events stay buffered)."""
        if self._starts:
            starts, self._starts = self._starts, {}
            self._buffer.extend(self._encode(_start_event(e)) for e in starts.values())
        while self._buffer or self._dropped or self._refused:
            batch = self._buffer[:SEND_CHUNK]
            try:
                added = await send(
                    self.redis, self.stream, self.maxlen, batch, self._dropped, self._refused,
                    self.keep_ms,
                )  # fmt: skip
            except Exception as exc:  # Redis down or slow: keep the events, try again later
                counters.incr("send_failures")
                counters.set_value("buffered", len(self._buffer))
                logger.warning("capture: could not send %d events to Redis: %s", len(batch), exc)
                return False
            self._dropped = self._refused = 0
            del self._buffer[:added]
            counters.incr("emitted", added)
            if added < len(batch):
                # Count each event once, however many flushes the full stream refuses it.
                new = len(batch) - added - max(0, self._held - added)
                self._held = len(batch) - added
                counters.incr("refused", new)
                self._refused += new
                counters.set_value("buffered", len(self._buffer))
                if not self._stream_full:
                    self._stream_full = True
                    logger.warning(
                        "capture: stream %s holds %d unwritten events (CAPTURE_STREAM_MAXLEN): "
                        "keeping %d events in the worker until a collector catches up",
                        self.stream,
                        self.maxlen,
                        len(self._buffer),
                    )
                return False
        self._held = 0
        if self._stream_full:
            self._stream_full = False
            logger.info("capture: stream %s accepts events again", self.stream)
        if self._episode_dropped:
            logger.error(
                "capture: %d events were dropped (buffer full); run sync_task_logs to repair "
                "their rows (%d dropped in this process so far)",
                self._episode_dropped,
                counters.get_capture_stats()["overflowed"],
            )
            self._episode_dropped = 0
        counters.set_value("buffered", 0)
        return True

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._buffer or self._starts) and asyncio.get_running_loop().time() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self._buffer:
            counters.incr("overflowed", len(self._buffer))
            try:
                await send(
                    self.redis, self.stream, self.maxlen, [], self._dropped + len(self._buffer)
                )
            except Exception:
                pass
            logger.error(
                "capture: %d events could not be sent before shutdown; run sync_task_logs",
                len(self._buffer),
            )
            self._buffer.clear()
