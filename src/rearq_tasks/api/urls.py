"""The API's routes; ``rearq_tasks.urls`` mounts them with the metrics view."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from rearq_tasks.api.stream import TaskLogStreamView
from rearq_tasks.api.views import OperationViewSet, SchemaView, TaskLogViewSet
from rearq_tasks.api.workers import WorkerViewSet

router = SimpleRouter()
router.register("logs", TaskLogViewSet, basename="tasklog")
router.register("operations", OperationViewSet, basename="operation")
router.register("workers", WorkerViewSet, basename="worker")

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("logs/stream/", TaskLogStreamView.as_view(), name="tasklog-stream"),
    *router.urls,
]
