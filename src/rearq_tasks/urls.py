"""Mount with ``path("cfg/tasks/", include("rearq_tasks.urls"))``: the API and the metrics."""

from __future__ import annotations

from django.urls import path

from rearq_tasks.api.urls import urlpatterns as api_urlpatterns
from rearq_tasks.ops.metrics import metrics_view

app_name = "rearq_tasks"

urlpatterns = [
    path("metrics/", metrics_view, name="metrics"),
    *api_urlpatterns,
]
