"""The aggregate layer: statistics, timelines, history reading, search, operational figures.

Every function takes a TaskLog queryset (already filtered by the caller's vocabulary) and
computes in the database. The API, the admin dashboard, health checks, alerts and metrics
all read figures through here, so a figure means the same on every surface::

    from rearq_tasks.models import TaskLog
    from rearq_tasks import queries

    queries.summary(TaskLog.objects.since(24))["failure_rate"]   # from rows
    queries.summary(queries.Scope.period(24))["failure_rate"]      # from the rollups
"""

from __future__ import annotations

from rearq_tasks.queries.history import retries_by_task
from rearq_tasks.queries.rollup import Scope
from rearq_tasks.queries.stats import by_task, overview, summary
from rearq_tasks.queries.timeseries import timeline

__all__ = ["Scope", "by_task", "overview", "retries_by_task", "summary", "timeline"]
