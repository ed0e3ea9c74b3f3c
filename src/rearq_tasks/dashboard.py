"""The admin dashboard: the last 24 hours at a glance.

Figures come from the query vocabulary (one aggregate per panel, computed in the
database); live workers come from ReArq's own heartbeat hash in Redis, where a
heartbeat older than ``ADMIN_WORKER_STALE_SECONDS`` counts as a dead worker.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rearq_tasks.admin_display import format_duration
from rearq_tasks.conf import conf
from rearq_tasks.models import QUEUED, TaskLog

logger = logging.getLogger(__name__)

WORKER_KEY = "rearq:worker"  # rearq.constants.WORKER_KEY
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


def redis_client() -> Any:
    """A short-timeout client for ReArq's Redis (sentinels when configured)."""
    import redis

    options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "decode_responses": True}
    if conf.REDIS_SENTINELS:
        from redis.sentinel import Sentinel

        nodes = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in conf.REDIS_SENTINELS)]
        return Sentinel(nodes, **options).master_for(conf.REDIS_SENTINEL_MASTER, **options)
    return redis.Redis.from_url(conf.REDIS_URL, **options)


def read_workers(now_ms: float | None = None) -> Workers:
    """Workers from ReArq's heartbeat hash; never raises (Redis down → ``error``)."""
    import redis

    now_ms = time.time() * 1000 if now_ms is None else now_ms
    stale_ms = conf.ADMIN_WORKER_STALE_SECONDS * 1000
    try:
        client = redis_client()
        try:
            beats = client.hgetall(WORKER_KEY)
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        return Workers(error=f"{type(exc).__name__}: {exc}")
    live: list[str] = []
    dead = 0
    for name, raw in beats.items():
        try:
            seen = float(json.loads(raw).get("ms", 0))
        except (TypeError, ValueError, AttributeError):
            seen = 0.0
        if now_ms - seen <= stale_ms:
            live.append(name)
        else:
            dead += 1
    return Workers(live=len(live), dead=dead, names=sorted(live))


def dashboard_context(now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard template shows, for the last 24 hours.

    The figures are the API's: ``summary()``, ``timeline()`` and ``by_task()`` of
    :mod:`rearq_tasks.stats` over the same ``since`` window, plus ``stuck()`` and the
    ``QUEUED`` backlog.
    """
    now = now or timezone.now()
    recent = TaskLog.objects.since(now - dt.timedelta(hours=PERIOD_HOURS))
    summary = recent.summary()
    stuck = TaskLog.objects.stuck().count()
    backlog = TaskLog.objects.filter(QUEUED).count()
    workers = read_workers()
    timeline = TaskLog.objects.timeline(PERIOD_HOURS, "hour", now=now)
    # One grouped query for both panels: the rows are per task (a few dozen), not per job.
    tasks = recent.by_task("-failures", limit=None)
    top_failing = [row for row in tasks if row["failures"]][:TOP]
    timed = [row for row in tasks if row["p95_duration_ms"] is not None]
    slowest = sorted(timed, key=lambda row: (-row["p95_duration_ms"], row["task_name"]))[:TOP]
    completed = summary["completed"]
    return {
        "kpis": [
            {"key": "total", "title": _("Jobs"), "value": summary["total"]},
            {
                "key": "success_rate",
                "title": _("Success rate"),
                "value": f"{summary['success_rate']} %" if completed else "–",
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
        ],
        "workers": workers,
        "timeline_chart": json.dumps(_timeline_chart(timeline)),
        "failures_chart": json.dumps(
            {
                "labels": [row["task_name"] for row in top_failing],
                "datasets": [
                    {
                        "label": str(_("Failures")),
                        "data": [row["failures"] for row in top_failing],
                        "backgroundColor": FAILURE_COLOUR,
                    }
                ],
            }
        ),
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
