"""``manage.py check_task_alerts [--dry-run] [--json] [--rule NAME ...]`` — run from cron.

Exit status (so the cron line itself can page):

* 0 — nothing is firing;
* 1 — at least one alert is firing (whether or not it was re-sent this run);
* 2 — an error: a channel failed (timeout, HTTP 500, SMTP), no channel is configured while
  something must be sent, or bad options.

``--dry-run`` exits with the code the real run would have, short of a channel failing: a
missing channel is 2 there too.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rearq_tasks.ops.alerts import EXIT_ERROR, RULES, RunResult, run_alerts
from rearq_tasks.ops.channels import plain_text
from rearq_tasks.payloads import dumps


class Command(BaseCommand):
    help = (
        "Evaluate the task alert rules and notify the configured channels. "
        "Exit 0: healthy, 1: alerts firing, 2: errors."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="evaluate and print; send and record nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--rule",
            action="append",
            default=None,
            metavar="NAME",
            help=f"only this rule (repeatable): {', '.join(RULES)}",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rules = options["rule"]
        unknown = [name for name in rules or () if name not in RULES]
        if unknown:
            raise CommandError(
                f"unknown --rule {', '.join(map(repr, unknown))}; choose from {', '.join(RULES)}",
                returncode=EXIT_ERROR,
            )
        result = run_alerts(rules=rules, dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(dumps(result.as_dict(), indent=2))
        else:
            self._print(result)
        if result.exit_code:
            sys.exit(result.exit_code)

    def _print(self, result: RunResult) -> None:
        if not result.firing and not result.notifications:
            self.stdout.write(self.style.SUCCESS("no alerts"))
        for alert in result.firing:
            self.stdout.write(self.style.WARNING(f"FIRING {alert.key}: {alert.message}"))
            for detail in alert.details:
                self.stdout.write(f"    {detail}")
        if result.notifications:
            if result.dry_run:
                verb = "would send"
            else:
                verb = "sent" if result.sent_to else "NOT sent (see the error below)"
            self.stdout.write(f"{verb}:\n" + plain_text(result.notifications).rstrip())
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        if result.suppressed:
            self.stdout.write(f"not re-sent (cooldown): {', '.join(result.suppressed)}")
        if result.sent_to:
            self.stdout.write(f"delivered via {', '.join(result.sent_to)}")
        for error in result.errors:
            self.stderr.write(self.style.ERROR(f"error: {error}"))
