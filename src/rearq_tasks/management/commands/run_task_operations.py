"""``manage.py run_task_operations [--once] [--poll-seconds S] [--lease-seconds S]``.

Runs bulk operations (retry/cancel/delete of everything a filter matched) in chunks, for as
long as it lives (see :mod:`rearq_tasks.queue.operations` and docs/operations.md). Several may
run at once: each operation is held by one runner at a time (a lease); a runner that dies is
replaced after its lease expires, from the operation's cursor. SIGTERM/SIGINT stop it after
the current chunk. Exit status: 0 stopped, 1 bad options (CommandError).
"""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

# The API's filter language; the admin's is registered with the admin (apps.ready).
import rearq_tasks.api.bulk  # noqa: F401
from rearq_tasks.management.commands._rearq import client_with_tasks
from rearq_tasks.queue.operations import run_pending, runner_name


class Command(BaseCommand):
    help = "Run bulk task operations (retry/cancel/delete all matching) in resumable chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="exit when nothing is left")
        parser.add_argument("--poll-seconds", type=float, default=1.0)
        parser.add_argument(
            "--lease-seconds", type=int, default=None, help="default OPERATION_LEASE_SECONDS"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["poll_seconds"] <= 0:
            raise CommandError("--poll-seconds must be positive")
        if options["lease_seconds"] is not None and options["lease_seconds"] <= 0:
            raise CommandError("--lease-seconds must be a positive number of seconds")
        client_with_tasks()
        stopping: list[bool] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.append(True))
        owner = runner_name()
        self.stdout.write(f"run_task_operations {owner}: waiting for operations")
        worked = run_pending(
            owner,
            once=options["once"],
            poll_seconds=options["poll_seconds"],
            lease_seconds=options["lease_seconds"],
            stop=lambda: bool(stopping),
        )
        self.stdout.write(self.style.SUCCESS(f"stopped after {worked} operation run(s)"))
