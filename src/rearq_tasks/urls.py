"""Mount with ``path("cfg/tasks/", include("rearq_tasks.urls"))``."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from rearq_tasks.metrics import metrics_view

app_name = "rearq_tasks"

router = DefaultRouter()

urlpatterns = [
    path("metrics/", metrics_view, name="metrics"),
    *router.urls,
]
