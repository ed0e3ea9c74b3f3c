"""``manage.py rearq_worker``: ReArq's own worker, with Django set up and capture installed.

Before ReArq reads its queues, each queue's stream and consumer group is created on its own
(:func:`rearq_tasks.queue.streams.ensure_queue_groups`): ReArq 0.2.9 alone crashes with
``NOGROUP`` when some of the queues it reads have no group yet.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rearq_tasks.management.commands._rearq import client_with_tasks, run


class Command(BaseCommand):
    help = "Run a ReArq worker (optionally with the timer) that records every job in TaskLog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-q",
            "--queue",
            action="extend",
            nargs="+",
            default=[],
            metavar="QUEUE",
            help="Queues to consume: -q a b, or -q a -q b (default: ReArq's default queue).",
        )
        parser.add_argument(
            "-t", "--with-timer", action="store_true", help="Also run the timer in this process."
        )
        parser.add_argument("--group-name", default=None, help="Consumer group (default: host).")
        parser.add_argument("--consumer-name", default=None, help="Consumer (default: pid).")

    def handle(self, *args: Any, **options: Any) -> None:
        from rearq.worker import Worker

        from rearq_tasks.capture.hooks import install_rearq_signal_handlers
        from rearq_tasks.queue.streams import ensure_queue_groups
        from rearq_tasks.queue.timer import run_timer

        rearq = client_with_tasks()
        install_rearq_signal_handlers()
        group = options["group_name"] or socket.gethostname()  # ReArq's own default

        async def main() -> None:
            await rearq.startup()
            await ensure_queue_groups(rearq.redis, options["queue"], group)
            worker = Worker(
                rearq,
                queues=options["queue"] or None,
                group_name=group,
                consumer_name=options["consumer_name"],
            )
            if options["with_timer"]:
                await asyncio.gather(worker.run(), run_timer(rearq, worker))
            else:
                await worker.run()

        run(main)
