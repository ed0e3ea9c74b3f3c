"""``manage.py demo_jobs --count N``: enqueue a mix of the example project's demo jobs."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rearq_tasks.management.commands._rearq import client_with_tasks

DEMO_TASKS = ("add", "flaky", "always_fails", "slow")


class Command(BaseCommand):
    help = "Enqueue N demo jobs (add, flaky, always_fails, slow), optionally every few seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=20)
        parser.add_argument(
            "--every", type=float, default=0, help="Repeat every SECONDS until interrupted."
        )
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from rearq_tasks.queue.jobs import enqueue_sync
        from rearq_tasks.queue.loop import ReArqUnavailable

        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        if options["every"] < 0:
            raise CommandError("--every must be 0 or more seconds")
        rearq = client_with_tasks()
        missing = [name for name in DEMO_TASKS if name not in rearq.task_map]
        if missing:
            raise CommandError(
                f"demo tasks {', '.join(missing)} are not registered: add "
                "'example_project.tasks' to REARQ_TASKS['TASK_MODULES']"
            )
        rng = random.Random(options["seed"])
        user = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        for round_no in itertools.count(1):
            counts: dict[str, int] = {}
            try:
                for _ in range(options["count"]):
                    name = rng.choices(DEMO_TASKS, weights=(6, 2, 1, 1))[0]
                    counts[name] = counts.get(name, 0) + 1
                    by = user if rng.random() < 0.3 else None
                    if name == "add":
                        enqueue_sync(name, rng.randint(0, 99), rng.randint(0, 99), user=by)
                    elif name == "flaky":
                        enqueue_sync(name, uuid.uuid4().hex, fail_times=1, user=by)
                    elif name == "always_fails":
                        enqueue_sync(name, reason=rng.choice(["boom", "timeout upstream"]), user=by)
                    else:
                        enqueue_sync(name, round(rng.uniform(1, 6), 1), user=by)
            except ReArqUnavailable as exc:
                raise CommandError(str(exc)) from None
            summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
            self.stdout.write(f"round {round_no}: enqueued {summary}")
            if not options["every"]:
                return
            time.sleep(options["every"])
