from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from rearq_tasks.ops.health import HealthView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cfg/tasks/", include("rearq_tasks.urls")),
    path(
        "health/",
        HealthView.as_view(
            checks=[
                "health_check.checks.Database",
                "rearq_tasks.ops.health.TaskQueue",
                "rearq_tasks.ops.health.ReArqWorkers",
                "rearq_tasks.ops.health.ReArqRedis",
            ]
        ),
        name="health",
    ),
]
