"""``manage.py rearq_timer``: ReArq's timer (delayed jobs, retries, cron), with capture."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from rearq_tasks.management.commands._rearq import client_with_tasks, run


class Command(BaseCommand):
    help = "Run ReArq's timer: moves due delayed jobs and retries to their queues, runs cron."

    def handle(self, *args: Any, **options: Any) -> None:
        from rearq_tasks.capture.hooks import install_rearq_signal_handlers
        from rearq_tasks.queue.timer import run_standalone

        rearq = client_with_tasks()
        install_rearq_signal_handlers()

        async def main() -> None:
            await rearq.startup()
            # Kept alive through Redis restarts and failovers until SIGTERM (queue/timer.py).
            await run_standalone(rearq)

        run(main)
