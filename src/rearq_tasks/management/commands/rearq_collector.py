"""``manage.py rearq_collector``: write capture events to TaskLog in a process of its own.

Needed only with ``CAPTURE_COLLECTOR = "external"`` (workers then only send events), or to
add writing capacity; any number of collectors share the work.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rearq_tasks.management.commands._rearq import run


class Command(BaseCommand):
    help = "Write ReArq lifecycle events from the capture stream to TaskLog until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--parent-pid",
            type=int,
            default=None,
            help="Stop when this process is gone (set by a worker running it as its embedded "
            "collector).",
        )
        parser.add_argument(
            "--ready-fd",
            type=int,
            default=None,
            help="Write a byte to this inherited file descriptor once reading (for a worker).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        parent = options.get("parent_pid")
        if parent is not None and parent <= 0:
            raise CommandError("--parent-pid must be a positive process id")
        from rearq_tasks.capture.collector import Collector
        from rearq_tasks.conf import conf
        from rearq_tasks.queue.client import get_rearq_client
        from rearq_tasks.queue.connection import make_redis

        rearq = get_rearq_client()

        async def main() -> None:
            import gc

            gc.freeze()
            redis = make_redis(rearq)
            collector = Collector(redis, conf.CAPTURE_STREAM, conf.CAPTURE_BATCH_SIZE)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            collector.start()
            watch = asyncio.ensure_future(_watch_parent(parent, stop)) if parent else None
            if options.get("ready_fd") is not None:
                await _signal_ready(collector, options["ready_fd"], stop)
            self.stdout.write(f"collecting from {conf.CAPTURE_STREAM} as {collector.consumer}")
            await stop.wait()
            if watch is not None:
                watch.cancel()
            await collector.stop()
            await redis.close()

        run(main)


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """A worker's collector outlives no worker: SIGKILL gives the worker no time to stop it."""
    while os.getppid() == pid:
        await asyncio.sleep(1.0)
    stop.set()


async def _signal_ready(collector: Any, fd: int, stop: asyncio.Event) -> None:
    """Tell the worker the collector reads (or is stopping): it starts its jobs then."""
    waiters = {asyncio.ensure_future(collector.ready.wait()), asyncio.ensure_future(stop.wait())}
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()
    try:
        os.write(fd, b"1")
        os.close(fd)
    except OSError:
        pass
