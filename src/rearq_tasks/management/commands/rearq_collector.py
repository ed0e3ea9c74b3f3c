"""``manage.py rearq_collector``: write capture events to TaskLog in a process of its own.

Needed only with ``CAPTURE_COLLECTOR = "external"`` (workers then only send events), or to
add writing capacity; any number of collectors share the work.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from rearq_tasks.management.commands._rearq import run


class Command(BaseCommand):
    help = "Write ReArq lifecycle events from the capture stream to TaskLog until stopped."

    def handle(self, *args: Any, **options: Any) -> None:
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
            self.stdout.write(f"collecting from {conf.CAPTURE_STREAM} as {collector.consumer}")
            await stop.wait()
            await collector.stop()
            await redis.close()

        run(main)
