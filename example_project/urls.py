from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from health_check.views import HealthCheckView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cfg/tasks/", include("rearq_tasks.urls")),
    path(
        "health/",
        HealthCheckView.as_view(
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
