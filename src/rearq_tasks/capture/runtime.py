"""The capture machinery of one worker process: emitter, embedded collector, cancel listener.

Started by the first ``Worker.run`` (a worker and a timer in one process share it) and
stopped, flushing and draining, when the last one ends. It uses its own Redis client: ReArq
closes its own at shutdown, before the last events are sent.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rearq_tasks.capture import counters
from rearq_tasks.capture.collector import Collector
from rearq_tasks.capture.emitter import Emitter
from rearq_tasks.capture.log_lines import redact_log_line
from rearq_tasks.capture.supervisor import CollectorProcess, collector_env
from rearq_tasks.conf import conf
from rearq_tasks.payloads import PayloadRules, payload_rules, prepare_record
from rearq_tasks.queue.connection import make_redis
from rearq_tasks.queue.keys import CANCEL_TASK, CHANNEL

logger = logging.getLogger("rearq_tasks.capture")

REMEMBERED_CANCELS = 10_000


class CaptureRuntime:
    def __init__(self, rearq: Any) -> None:
        self.rearq = rearq
        self.loop = asyncio.get_running_loop()
        self.redis = make_redis(rearq)
        self.rules = payload_rules()  # the worker's payload settings, read once
        self.emitter = Emitter(
            self.redis,
            conf.CAPTURE_STREAM,
            conf.CAPTURE_STREAM_MAXLEN,
            conf.CAPTURE_BUFFER_SIZE,
            conf.CAPTURE_FLUSH_INTERVAL_MS,
            prepare=functools.partial(prepare_record, rules=self.rules),
            keep_ms=int(conf.STREAM_RESUME_SECONDS * 1000),
        )
        self.collector: Collector | None = None
        self.collector_process: CollectorProcess | None = None
        if conf.CAPTURE_COLLECTOR == "embedded":
            env = collector_env()
            if env is not None:
                # Off the job loop: a child process the worker starts, restarts and stops.
                self.collector_process = CollectorProcess(env)
            else:  # no settings module to hand a child: the collector shares the loop
                self.collector = Collector(
                    self.redis, conf.CAPTURE_STREAM, conf.CAPTURE_BATCH_SIZE, log_stats=False
                )
        self.canceled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._listener: asyncio.Task[None] | None = None
        self.users = 0
        # Until the embedded collector process reads the stream (see collector_ready).
        self.collector_starting: asyncio.Future[bool] | None = None

    async def collector_ready(self) -> None:
        """Wait for the embedded collector process to read before a job runs: else a job's
        first events would be written only once it has started, seconds later."""
        starting = self.collector_starting
        if starting is not None:
            await asyncio.shield(starting)
            self.collector_starting = None

    def start(self) -> None:
        _ensure_django()
        _ensure_log_handler()
        _redact_rearq_logs(self.rules)
        # Django, ReArq and the task modules are loaded: keep the cyclic GC from scanning
        # them again on every full collection the job path triggers.
        gc.freeze()
        self.emitter.start()
        if self.collector is not None:
            self.collector.start()
        if self.collector_process is not None:
            self.collector_process.start()
        self._listener = asyncio.ensure_future(self._listen_cancels())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        if self.collector_starting is not None:
            self.collector_starting.cancel()
        await self.emitter.stop()
        if self.collector is not None:
            await self.collector.stop()
        else:
            if self.collector_process is not None:
                # After the last flush: the child writes those events before it exits.
                await self.collector_process.stop()
            logger.info("capture: %s", counters.get_capture_stats())
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
                    if data.get("type") == CANCEL_TASK and job_id:
                        self.canceled[job_id] = None
                        while len(self.canceled) > REMEMBERED_CANCELS:
                            self.canceled.popitem(last=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("capture: cancel listener lost Redis (%s), resubscribing", exc)
                await asyncio.sleep(1)


def _ensure_log_handler() -> None:
    """Show capture's counters and warnings next to ReArq's own log lines unless the project
    configured logging for them."""
    log = logging.getLogger("rearq_tasks")
    if log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s | %(levelname)-8s | %(name)s - %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _redact_rearq_logs(rules: PayloadRules) -> None:
    """ReArq logs every call's args and result through loguru (``rearq/worker.py``): pass
    each of its messages through the payload text redaction before any sink writes it."""
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # pragma: no cover - ReArq depends on loguru
        return

    def patch(record: dict[str, Any]) -> None:
        record["message"] = redact_log_line(record["message"], rules.pattern)

    loguru_logger.configure(patcher=patch)


def _ensure_django() -> None:
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()


_runtime: CaptureRuntime | None = None
_last_stop: list[Callable[[], Awaitable[None]]] = []


def on_last_stop(callback: Callable[[], Awaitable[None]]) -> None:
    """Await ``callback`` in the worker's loop after the last worker of the process stopped
    (the ReArq integration closes ReArq's database there)."""
    if callback not in _last_stop:
        _last_stop.append(callback)


def current() -> CaptureRuntime | None:
    """The runtime of the running loop, if this process runs workers."""
    if _runtime is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _runtime if _runtime.loop is loop else None


def emit(event: dict[str, Any]) -> bool:
    """Hand ``event`` to this loop's emitter; False outside a worker (nothing was sent)."""
    runtime = current()
    if runtime is None:
        return False
    runtime.emitter.emit(event)
    return True


def capture_enabled() -> bool:
    """``CAPTURE_ENABLED``; True when the settings cannot be read (a hook must never raise)."""
    try:
        return bool(conf.CAPTURE_ENABLED)
    except Exception:
        return True


async def acquire(rearq: Any) -> CaptureRuntime:
    global _runtime
    if _runtime is None or _runtime.loop is not asyncio.get_running_loop():
        _runtime = CaptureRuntime(rearq)
        _runtime.start()
        if _runtime.collector_process is not None:
            # ReArq starts up meanwhile; the first job waits for the rest (at most 10 s).
            _runtime.collector_starting = asyncio.ensure_future(
                _runtime.collector_process.wait_ready()
            )
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
        for callback in _last_stop:
            try:
                await callback()
            except Exception as exc:
                logger.warning("capture: a shutdown step failed: %s", exc)
