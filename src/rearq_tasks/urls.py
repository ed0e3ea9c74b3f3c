"""Mount with ``path("cfg/tasks/", include("rearq_tasks.urls"))``."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

app_name = "rearq_tasks"

router = DefaultRouter()

urlpatterns = [*router.urls]
