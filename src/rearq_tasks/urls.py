"""Mount with ``path("cfg/tasks/", include("rearq_tasks.urls"))``."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from rearq_tasks.api.views import SchemaView, TaskLogViewSet
from rearq_tasks.ops.metrics import metrics_view

app_name = "rearq_tasks"

router = SimpleRouter()
router.register("logs", TaskLogViewSet, basename="tasklog")

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("metrics/", metrics_view, name="metrics"),
    *router.urls,
]
