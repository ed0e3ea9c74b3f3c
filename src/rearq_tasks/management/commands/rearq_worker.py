"""``manage.py rearq_worker``: ReArq's own worker, with Django set up and capture installed."""

from __future__ import annotations

import asyncio
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
        from rearq.worker import TimerWorker, Worker

        from rearq_tasks.capture.hooks import install_rearq_signal_handlers

        rearq = client_with_tasks()
        install_rearq_signal_handlers()

        async def main() -> None:
            await rearq.startup()
            worker = Worker(
                rearq,
                queues=options["queue"] or None,
                group_name=options["group_name"],
                consumer_name=options["consumer_name"],
            )
            if options["with_timer"]:
                await asyncio.gather(worker.run(), TimerWorker(rearq).run())
            else:
                await worker.run()

        run(main)
