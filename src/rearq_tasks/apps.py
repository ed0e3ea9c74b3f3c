from __future__ import annotations

import importlib

from django.apps import AppConfig, apps


class TasksConfig(AppConfig):
    name = "rearq_tasks"
    label = "tasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        importlib.import_module("rearq_tasks.conf.checks")
        if apps.is_installed("django.contrib.admin"):
            # The admin is a package (admin/tasklog.py …): autodiscover imports only its
            # empty __init__, so the ModelAdmin module is registered here.
            importlib.import_module("rearq_tasks.admin.tasklog")
            importlib.import_module("rearq_tasks.admin.audit")
