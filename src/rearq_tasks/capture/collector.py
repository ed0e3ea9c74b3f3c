"""Reads lifecycle events from the Redis stream and upserts them into TaskLog in batches.

Runs as a loop task inside every worker (``CAPTURE_COLLECTOR = "embedded"``) or in
``manage.py rearq_collector``. Collectors share one consumer group, so each event is
written once however many run. Database writes happen in one dedicated thread (Django
connections are per thread) and an event is XACKed only after its batch committed: while
the Django database is down the batch is retried with backoff and the stream holds the
rest. Events left pending by a collector that died are claimed by another after
``CLAIM_IDLE_MS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.exceptions import ResponseError

from rearq_tasks.capture import counters
from rearq_tasks.capture.events import fold, loads

logger = logging.getLogger("rearq_tasks.capture")

GROUP = "rearq_tasks"
CLAIM_IDLE_MS = 30_000
# After a partial batch, wait this long before the next read: each write then carries several
# flushes' worth of events, so the per-batch costs (commit, statements, Redis round trips,
# the hand-off to the writer thread) are shared by more rows. Adds at most this much lag.
LINGER_MS = 200
CLAIM_EVERY_S = 15.0
LOG_EVERY_S = 60.0


def _write(records: list[dict[str, Any]], events: Sequence[dict[str, Any]] = ()) -> int:
    from django.db import IntegrityError, close_old_connections, connection

    from rearq_tasks.capture.job_log import log_transitions

    try:
        try:
            written = _write_batch(records, events)
        except IntegrityError:
            # A user id that names no user (deleted, another database) would fail the batch
            # for ever and hold back every job in it: write those rows without their user.
            written = _write_batch(_without_unknown_users(records), events)
    except Exception:
        # A broken connection must not be reused: the next attempt reconnects.
        try:
            connection.close()
        except Exception:
            pass
        close_old_connections()
        raise
    try:
        log_transitions(events)  # after the commit: a logged transition is a stored one
    except Exception as exc:  # a broken log handler must not re-write the batch
        logger.warning("capture collector: structured job log failed (%s)", exc)
    return written


def _write_batch(records: list[dict[str, Any]], events: Sequence[dict[str, Any]]) -> int:
    from django.db import transaction

    from rearq_tasks.capture.history_writer import write_events
    from rearq_tasks.capture.upsert import upsert_records

    with transaction.atomic():
        written = upsert_records(records)
        write_events(events)
    return written


def _without_unknown_users(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model

    ids = {r["user_id"] for r in records if r.get("user_id") is not None}
    known = set(get_user_model()._default_manager.filter(pk__in=ids).values_list("pk", flat=True))
    unknown = ids - known
    if not unknown:
        return records
    counters.incr("unknown_users", sum(r.get("user_id") in unknown for r in records))
    logger.warning(
        "capture collector: user id(s) %s do not exist; their jobs are recorded without a user",
        sorted(unknown)[:10],
    )
    return [{**r, "user_id": None} if r.get("user_id") in unknown else r for r in records]


def _connect() -> None:
    """Open the writer thread's database connection before the first batch needs it."""
    from django.db import connection

    import rearq_tasks.capture.upsert  # noqa: F401

    try:
        connection.ensure_connection()
    except Exception as exc:  # the first write retries and reports it
        logger.warning("capture collector: database not reachable yet (%s)", exc)


class Collector:
    def __init__(
        self,
        redis: Any,
        stream: str,
        batch_size: int,
        block_ms: int = 100,
        consumer: str | None = None,
        log_stats: bool = True,
        linger_ms: int = LINGER_MS,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rearq-tasks-collector")
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_claim = 0.0
        self._last_log = time.monotonic()
        self.log_stats = log_stats
        self.linger = linger_ms / 1000
        self._next_read = 0.0
        # Set once the group exists and the database connection was tried: it reads now.
        self.ready = asyncio.Event()

    async def ensure_group(self) -> None:
        try:
            # From the start of the stream: events sent before any collector existed count.
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, _connect)
        backoff = 0.5
        while not self._stopping:
            try:
                await self.ensure_group()
                self.ready.set()
                break
            except Exception as exc:
                logger.warning("capture collector: Redis unavailable (%s), retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)
        while not self._stopping:
            try:
                await self.step(block=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("capture collector: %s", exc)
                await asyncio.sleep(1)

    async def _claim(self) -> list[tuple[str, dict[str, str]]]:
        self._last_claim = time.monotonic()
        try:
            result = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, CLAIM_IDLE_MS, "0-0", count=self.batch_size
            )
        except ResponseError:
            return []
        messages = result[1] if len(result) > 1 else []
        messages = [m for m in messages if m and m[1]]
        if messages:
            counters.incr("claimed", len(messages))
        return messages

    async def step(self, block: bool, own_pending: bool = False) -> int:
        """Read one batch, write it, ack it. Returns the number of events handled."""
        messages: list[tuple[str, dict[str, str]]] = []
        if block and not own_pending:
            pause = self._next_read - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        if not own_pending and time.monotonic() - self._last_claim > CLAIM_EVERY_S:
            messages = await self._claim()
        if not messages:
            response = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: "0" if own_pending else ">"},
                count=self.batch_size,
                block=self.block_ms if block else None,
            )
            for _stream, items in response or []:
                messages.extend(items)
        self._maybe_log()
        if not messages:
            return 0
        full = len(messages) >= self.batch_size
        self._next_read = time.monotonic() + (0.0 if full else self.linger)
        counters.incr("read", len(messages))
        events = []
        for _msg_id, fields in messages:
            raw = fields.get("e") if fields else None
            if raw is None:
                continue
            try:
                events.append(loads(raw))
            except ValueError:
                logger.error("capture collector: dropping malformed event %r", raw[:200])
        records = fold(events)
        await self._write_until_done(records, events)
        await self.redis.xack(self.stream, GROUP, *[m[0] for m in messages])
        return len(messages)

    async def _write_until_done(
        self, records: list[dict[str, Any]], events: Sequence[dict[str, Any]] = ()
    ) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.2
        while True:
            try:
                written = await loop.run_in_executor(self._executor, _write, records, events)
                counters.incr("written", written)
                return
            except Exception as exc:
                counters.incr("retried")
                logger.warning(
                    "capture collector: writing %d rows failed (%s: %s); retrying in %.1fs",
                    len(records),
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _maybe_log(self) -> None:
        if not self.log_stats:
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            logger.info("capture: %s", counters.get_capture_stats())

    async def drain(self, timeout: float = 5.0) -> None:
        """Write what is waiting in the stream now (at shutdown), within ``timeout``."""
        deadline = time.monotonic() + timeout
        own_pending = True
        while time.monotonic() < deadline:
            try:
                handled = await asyncio.wait_for(
                    self.step(block=False, own_pending=own_pending),
                    max(0.1, deadline - time.monotonic()),
                )
            except Exception:
                return
            if not handled:
                if own_pending:
                    own_pending = False
                    continue
                return

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        if self._task is not None:
            # Let the batch in hand commit and ack; cancel only if it hangs (database down).
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self._task.cancel()
                try:
                    await self._task
                except (asyncio.CancelledError, Exception):
                    pass
        await self.drain(timeout)
        self._executor.shutdown(wait=False)
        logger.info("capture: %s", counters.get_capture_stats())
