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

from django.db import connection
from django.db.models import Avg, Count, Max, OuterRef, Subquery
from django.db.models.functions import TruncHour
from django.utils import timezone

from rearq_tasks.conf import conf
from rearq_tasks.models import COMPLETED, FAILED, QUEUED, SUCCESSFUL, WITH_ERROR, TaskLog

logger = logging.getLogger(__name__)

WORKER_KEY = "rearq:worker"  # rearq.constants.WORKER_KEY
PERIOD_HOURS = 24
TOP = 5


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


def p95_duration_ms(queryset: Any) -> float | None:
    """95th percentile of ``duration_ms``: one pass on PostgreSQL, OFFSET elsewhere."""
    rows = queryset.exclude(duration_ms__isnull=True)
    if connection.vendor == "postgresql":
        from django.db.models import Aggregate, FloatField

        class Percentile(Aggregate):
            function = "PERCENTILE_CONT"
            template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"
            output_field = FloatField()

        return rows.aggregate(p=Percentile("duration_ms"))["p"]
    count = rows.count()
    if not count:
        return None
    index = max(0, round(0.95 * (count - 1)))
    return float(rows.order_by("duration_ms").values_list("duration_ms", flat=True)[index])


def dashboard_context(now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard template shows, for the last 24 hours."""
    now = now or timezone.now()
    recent = TaskLog.objects.since(now - dt.timedelta(hours=PERIOD_HOURS))
    totals = recent.aggregate(
        total=Count("id"),
        completed=Count("id", filter=COMPLETED),
        successes=Count("id", filter=SUCCESSFUL),
        failures=Count("id", filter=FAILED),
    )
    completed = totals["completed"]
    success_rate = round(100 * totals["successes"] / completed, 1) if completed else None
    stuck = TaskLog.objects.stuck().count()
    backlog = TaskLog.objects.filter(QUEUED).count()
    workers = read_workers()
    p95 = p95_duration_ms(recent.filter(COMPLETED))

    timeline = _timeline(recent, now)
    top_failing = list(
        recent.filter(FAILED)
        .order_by()
        .values("task_name")
        .annotate(
            failures=Count("id"),
            latest_error=Subquery(
                recent.filter(FAILED & WITH_ERROR, task_name=OuterRef("task_name"))
                .order_by("-enqueue_time")
                .values("error_message")[:1]
            ),
        )
        .order_by("-failures", "task_name")[:TOP]
    )
    slowest = list(
        recent.filter(COMPLETED, duration_ms__isnull=False)
        .order_by()
        .values("task_name")
        .annotate(avg_ms=Avg("duration_ms"), max_ms=Max("duration_ms"), runs=Count("id"))
        .order_by("-avg_ms", "task_name")[:TOP]
    )
    return {
        "kpis": [
            {"key": "total", "title": "Jobs (24 h)", "value": totals["total"]},
            {
                "key": "success_rate",
                "title": "Success rate",
                "value": "–" if success_rate is None else f"{success_rate} %",
            },
            {"key": "failures", "title": "Failures", "value": totals["failures"]},
            {
                "key": "p95",
                "title": "p95 duration",
                "value": "–" if p95 is None else _ms(p95),
            },
            {"key": "stuck", "title": "Stuck", "value": stuck},
            {"key": "backlog", "title": "Backlog (queued)", "value": backlog},
            {
                "key": "workers",
                "title": "Live workers",
                "value": "?" if workers.live is None else workers.live,
                "note": workers.error
                or (f"{workers.dead} stale heartbeat(s)" if workers.dead else ""),
            },
        ],
        "workers": workers,
        "timeline_chart": json.dumps(timeline),
        "failures_chart": json.dumps(
            {
                "labels": [row["task_name"] for row in top_failing],
                "datasets": [
                    {
                        "label": "Failures",
                        "data": [row["failures"] for row in top_failing],
                        "backgroundColor": "#ef4444",
                    }
                ],
            }
        ),
        "top_failing": top_failing,
        "slowest": [{**row, "avg": _ms(row["avg_ms"]), "max": _ms(row["max_ms"])} for row in slowest],
        "period_hours": PERIOD_HOURS,
        "generated_at": now,
    }


def _timeline(recent: Any, now: dt.datetime) -> dict[str, Any]:
    """Hourly successes and failures; hours without jobs are zeros."""
    utc = dt.UTC
    rows = (
        recent.order_by()
        .annotate(hour=TruncHour("enqueue_time", tzinfo=utc))
        .values("hour")
        .annotate(
            successes=Count("id", filter=SUCCESSFUL),
            failures=Count("id", filter=FAILED),
        )
    )
    by_hour = {_as_utc(row["hour"]): row for row in rows}
    start = now.astimezone(utc).replace(minute=0, second=0, microsecond=0) - dt.timedelta(
        hours=PERIOD_HOURS - 1
    )
    hours = [start + dt.timedelta(hours=i) for i in range(PERIOD_HOURS)]
    empty: dict[str, int] = {}
    return {
        "labels": [timezone.localtime(h).strftime("%H:00") for h in hours],
        "datasets": [
            {
                "label": "Successes",
                "data": [by_hour.get(h, empty).get("successes", 0) for h in hours],
                "backgroundColor": "#22c55e",
            },
            {
                "label": "Failures",
                "data": [by_hour.get(h, empty).get("failures", 0) for h in hours],
                "backgroundColor": "#ef4444",
            },
        ],
    }


def _as_utc(value: dt.datetime) -> dt.datetime:
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _ms(value: float | None) -> str:
    from rearq_tasks.admin_display import format_duration

    return format_duration(None if value is None else round(value))

