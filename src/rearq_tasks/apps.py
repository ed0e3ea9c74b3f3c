from __future__ import annotations

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "rearq_tasks"
    label = "tasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from rearq_tasks import checks  # noqa: F401
