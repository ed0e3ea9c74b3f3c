"""The admin dashboard: the last 24 hours at a glance.

Figures come from the query vocabulary (one aggregate per panel, computed in the
database); live workers come from ReArq's own heartbeat hash in Redis, where a
heartbeat older than ``WORKER_STALE_SECONDS`` counts as a dead worker (the same rule as
the ``ReArqWorkers`` health check, from :mod:`rearq_tasks.queue.liveness`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rearq_tasks import queries
from rearq_tasks.admin.display import format_duration
from rearq_tasks.models import QUEUED, TaskLog
from rearq_tasks.queue import liveness
from rearq_tasks.queue.connection import redis_client

logger = logging.getLogger(__name__)

PERIOD_HOURS = 24
TOP = 5
SUCCESS_COLOUR = "#22c55e"
FAILURE_COLOUR = "#ef4444"


@dataclass
class Workers:
    live: int | None = None
    dead: int | None = None
    names: list[str] = field(default_factory=list)
    error: str | None = None


def read_workers(now: dt.datetime | None = None) -> Workers:
    """Workers from ReArq's heartbeat hash, judged like the health check; never raises."""
    import redis

    try:
        client = redis_client()
        try:
            state = liveness.read_workers(client, now=now)
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        return Workers(error=f"{type(exc).__name__}: {exc}")
    live = sorted(hb.name for hb in state.live_workers)
    return Workers(live=len(live), dead=len(state.dead_workers), names=live)


def dashboard_context(now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard template shows, for the last 24 hours.

    The figures are the API's: ``summary()``, ``timeline()`` and ``by_task()`` of
    :mod:`rearq_tasks.queries.stats` over the same ``since`` window, plus ``stuck()`` and the
    ``QUEUED`` backlog.
    """
    now = now or timezone.now()
    recent = queries.Scope(now - dt.timedelta(hours=PERIOD_HOURS))
    summary = queries.summary(recent)
    stuck = TaskLog.objects.stuck().count()
    backlog = TaskLog.objects.filter(QUEUED).count()
    workers = read_workers()
    timeline = queries.timeline(queries.Scope(), PERIOD_HOURS, "hour", now=now)
    # One grouped query for both panels: the rows are per task (a few dozen), not per job.
    tasks = queries.by_task(recent, "-failures", limit=None)
    top_failing = [row for row in tasks if row["failures"]][:TOP]
    timed = [row for row in tasks if row["p95_duration_ms"] is not None]
    slowest = sorted(timed, key=lambda row: (-row["p95_duration_ms"], row["task_name"]))[:TOP]
    return {
        "kpis": _kpis(summary, stuck, backlog, workers),
        "workers": workers,
        "timeline_chart": json.dumps(_timeline_chart(timeline)),
        "failures_chart": json.dumps(_failures_chart(top_failing)),
        "top_failing": top_failing,
        "slowest": [
            {
                **row,
                "p95": format_duration(row["p95_duration_ms"]),
                "avg": format_duration(row["avg_duration_ms"]),
            }
            for row in slowest
        ],
        "period_hours": PERIOD_HOURS,
        "generated_at": now,
    }


def _kpis(
    summary: dict[str, Any], stuck: int, backlog: int, workers: Workers
) -> list[dict[str, Any]]:
    """The headline tiles: the window's summary, then what stands now (stuck, backlog, workers)."""
    return [
        {"key": "total", "title": _("Jobs"), "value": summary["total"]},
        {
            "key": "success_rate",
            "title": _("Success rate"),
            "value": f"{summary['success_rate']} %"
            if summary["successful"] + summary["failed"]
            else "–",
        },
        {"key": "failures", "title": _("Failures"), "value": summary["failed"]},
        {
            "key": "p95",
            "title": _("p95 duration"),
            "value": format_duration(summary["p95_duration_ms"]),
        },
        {"key": "stuck", "title": _("Stuck"), "value": stuck},
        {"key": "backlog", "title": _("Backlog (queued)"), "value": backlog},
        {
            "key": "workers",
            "title": _("Live workers"),
            "value": "?" if workers.live is None else workers.live,
            "note": workers.error
            or (_("%(n)s stale heartbeat(s)") % {"n": workers.dead} if workers.dead else ""),
        },
    ]


def _failures_chart(top_failing: list[dict[str, Any]]) -> dict[str, Any]:
    """Chart.js data for the top failing tasks (one bar per task)."""
    return {
        "labels": [row["task_name"] for row in top_failing],
        "datasets": [
            {
                "label": str(_("Failures")),
                "data": [row["failures"] for row in top_failing],
                "backgroundColor": FAILURE_COLOUR,
            }
        ],
    }


def _timeline_chart(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    labels = [
        timezone.localtime(dt.datetime.fromisoformat(b["timestamp"])).strftime("%H:00")
        for b in timeline
    ]
    return {
        "labels": labels,
        "datasets": [
            {
                "label": str(_("Successes")),
                "data": [b["successful"] for b in timeline],
                "backgroundColor": SUCCESS_COLOUR,
            },
            {
                "label": str(_("Failures")),
                "data": [b["failed"] for b in timeline],
                "backgroundColor": FAILURE_COLOUR,
            },
        ],
    }
