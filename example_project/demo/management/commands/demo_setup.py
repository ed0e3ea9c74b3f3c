"""``manage.py demo_setup``: the demo's superuser and sample rows (idempotent)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from rearq_tasks.models import TaskLog
from rearq_tasks.ops.seeding import seed


class Command(BaseCommand):
    help = "Create the demo superuser (admin/admin) and sample task logs if there are none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")
        parser.add_argument("--rows", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=options["username"],
            defaults={
                "email": f"{options['username']}@example.com",
                "is_staff": True,
                "is_superuser": True,
            },  # fmt: skip
        )
        if created:
            user.set_password(options["password"])
            user.save()
        if not TaskLog.objects.exists() and options["rows"] > 0:
            seed(options["rows"], days=7, seed=42)
        self.stdout.write(
            self.style.SUCCESS(
                f"demo superuser: {options['username']} / "
                f"{options['password'] if created else '(unchanged)'}; "
                f"{TaskLog.objects.count():,} task logs"
            )
        )
