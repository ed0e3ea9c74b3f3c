"""Prometheus/OpenMetrics export of TaskLog and ReArq's workers at ``/cfg/tasks/metrics/``.

A fresh ``CollectorRegistry`` per request holds one :class:`TaskCollector`, so nothing leaks
into (or out of) prometheus_client's global registry. Labels stay low-cardinality: task, queue
and status — never job ids or worker processes. Every figure is a grouped aggregate over an
index (the ``METRICS_WINDOW_HOURS`` enqueue window, queued or in-progress rows).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator
from typing import Any

import redis
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from rearq_tasks.access import ConfiguredAccessMixin
from rearq_tasks.conf import conf
from rearq_tasks.queries import ops as ops_queries
from rearq_tasks.queue.liveness import read_workers, redis_client

PREFIX = "rearq_tasks"


def _histogram(name: str, doc: str, label: str, data: dict, bounds) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, (cumulative, total, total_sum) in sorted(data.items()):
        buckets = [(f"{bound:g}", count) for bound, count in zip(bounds, cumulative, strict=True)]
        buckets.append(("+Inf", total))
        family.add_metric([value], buckets, total_sum)
    return family


class TaskCollector:
    """Collects everything in a handful of queries and one Redis round trip."""

    def __init__(self, window_hours: int | None = None, now: dt.datetime | None = None) -> None:
        self.window_hours = window_hours or conf.METRICS_WINDOW_HOURS
        self.now = now or timezone.now()

    def collect(self) -> Iterator[Metric]:
        since = self.now - dt.timedelta(hours=self.window_hours)
        window = f"in the last {self.window_hours} h"

        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs",
            f"Jobs enqueued {window}, by task, queue and current status.",
            labels=["task", "queue", "status"],
        )
        for task, queue, status, count in ops_queries.jobs_by_task_queue_status(since):
            jobs.add_metric([task, queue, status], count)
        yield jobs

        yield _histogram(
            f"{PREFIX}_job_duration_seconds",
            f"Run time of jobs finished {window} (enqueued in the window), by task.",
            "task",
            ops_queries.duration_histogram(since),
            ops_queries.DURATION_BUCKETS,
        )
        yield _histogram(
            f"{PREFIX}_queue_wait_seconds",
            f"Time from enqueue to start of jobs started {window}, by queue.",
            "queue",
            ops_queries.wait_histogram(since),
            ops_queries.WAIT_BUCKETS,
        )

        backlog = GaugeMetricFamily(
            f"{PREFIX}_backlog_jobs",
            "Jobs queued and not yet picked up, by queue.",
            labels=["queue"],
        )
        for queue, count in sorted(ops_queries.backlog_by_queue().items()):
            backlog.add_metric([queue], count)
        yield backlog

        stuck_after = conf.STUCK_AFTER_SECONDS
        stuck = GaugeMetricFamily(
            f"{PREFIX}_stuck_jobs",
            f"Jobs in progress for more than STUCK_AFTER_SECONDS ({stuck_after} s), by queue.",
            labels=["queue"],
        )
        for queue, count in sorted(ops_queries.stuck_by_queue(stuck_after).items()):
            stuck.add_metric([queue], count)
        yield stuck

        yield from self._workers()

    def _workers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_redis_up", "1 when ReArq's Redis answered.")
        workers = GaugeMetricFamily(
            f"{PREFIX}_workers", "Live ReArq workers (fresh heartbeat), by queue.", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            f"{PREFIX}_stale_worker_heartbeats",
            "Heartbeats left behind by workers that stopped without cleaning up (killed).",
        )
        timer = GaugeMetricFamily(f"{PREFIX}_timer_up", "1 when a ReArq timer is alive.")
        client = redis_client()
        try:
            state = read_workers(client, queues=conf.WORKER_QUEUES or ())
            capture = list(_capture(client))
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        finally:
            client.close()
        up.add_metric([], 1)
        by_queue = {queue: 0 for queue in conf.WORKER_QUEUES or ()} | state.live_by_queue()
        for queue, count in sorted(by_queue.items()):
            workers.add_metric([queue], count)
        dead.add_metric([], len(state.dead_workers))
        timer.add_metric([], int(state.timer_alive))
        yield from (up, workers, dead, timer, *capture)


def _capture(client: redis.Redis) -> Iterator[Metric]:
    """The capture's own health: events dropped (repaired only by ``sync_task_logs``) or held
    back because the stream was full, and how many events wait in the stream."""
    from rearq_tasks.capture.emitter import counters_key

    stream = conf.CAPTURE_STREAM
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(counters_key(stream))
    pipe.xlen(stream)
    counters, length = pipe.execute()
    events = CounterMetricFamily(
        f"{PREFIX}_capture_events",
        "Capture events dropped by a full worker buffer (overflowed; run sync_task_logs) or "
        "refused by the full stream and sent later (refused), all processes since Redis began.",
        labels=["outcome"],
    )
    for outcome in ("overflowed", "refused"):
        events.add_metric([outcome], int(counters.get(outcome, 0)))
    yield events
    yield GaugeMetricFamily(
        f"{PREFIX}_capture_stream_length",
        "Events in the capture stream (unwritten ones and not yet trimmed written ones).",
        value=length,
    )


def render(accept: str = "", window_hours: int | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when the scraper asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector(window_hours))  # type: ignore[arg-type]
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class _AnyAccept(BaseContentNegotiation):
    """Scrapers send OpenMetrics Accept headers DRF's renderers do not know: answer anyway."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


class MetricsView(ConfiguredAccessMixin, APIView):
    """Guarded like the API (``API_*`` classes); a ``METRICS_TOKEN`` bearer may read it too."""

    content_negotiation_class = _AnyAccept

    def check_permissions(self, request: Request) -> None:
        if self._has_token(request):
            return
        super().check_permissions(request)

    def _has_token(self, request: Request) -> bool:
        token = conf.METRICS_TOKEN
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not token or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())

    def get(self, request: Request) -> HttpResponse:
        body, content_type = render(request.META.get("HTTP_ACCEPT", ""))
        return HttpResponse(body, content_type=content_type)


metrics_view = MetricsView.as_view()
