"""Per-worker figures for the workers page: running jobs and the last hour's outcomes.

Each is one grouped query in the database, never a loop over rows: the running jobs per
worker (and queue) come from ``RUNNING`` (served by the status index), the last hour's
finished and failed jobs from ``COMPLETED`` rows whose ``finish_time`` is in the window
(served by the ``(finish_time, worker_id)`` index). The job links are bounded: at most
``limit`` per worker, for the workers of one page only, in one windowed query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from rearq_tasks.models import COMPLETED, FAILED, RUNNING, TaskLog

# The job links one worker shows (its count is always complete).
JOBS_PER_WORKER = 20
JOB_FIELDS = ("id", "job_id", "task_name", "queue_name", "start_time", "enqueue_time")


@dataclass
class WorkerFigures:
    """What TaskLog says about one worker id."""

    running: int = 0
    running_queues: set[str] = field(default_factory=set)
    finished: int = 0
    failed: int = 0


@dataclass
class Figures:
    """Every worker's figures, and the running jobs no worker has started yet."""

    by_worker: dict[str, WorkerFigures]
    unassigned_running: int = 0


def worker_figures(now: dt.datetime, period: dt.timedelta = dt.timedelta(hours=1)) -> Figures:
    """Running jobs per worker, and jobs each finished (any outcome) and failed in ``period``.

    Two grouped queries. A job in progress without a ``worker_id`` was fetched by some
    worker but has not started: it counts as ``unassigned_running``.
    """
    by_worker: dict[str, WorkerFigures] = {}
    unassigned = 0
    running = (
        TaskLog.objects.filter(RUNNING)
        .order_by()
        .values_list("worker_id", "queue_name")
        .annotate(n=Count("id"))
    )
    for worker, queue, n in running:
        if not worker:
            unassigned += n
            continue
        figures = by_worker.setdefault(worker, WorkerFigures())
        figures.running += n
        if queue:
            figures.running_queues.add(queue)
    ended = (
        TaskLog.objects.filter(COMPLETED, finish_time__gte=now - period, worker_id__isnull=False)
        .order_by()
        .values_list("worker_id")
        .annotate(finished=Count("id"), failed=Count("id", filter=FAILED))
    )
    for worker, finished, failed in ended:
        figures = by_worker.setdefault(worker, WorkerFigures())
        figures.finished, figures.failed = finished, failed
    return Figures(by_worker=by_worker, unassigned_running=unassigned)


def running_jobs(workers: Sequence[str], limit: int = JOBS_PER_WORKER) -> dict[str, list[Any]]:
    """The first ``limit`` running jobs (oldest start first) of each of ``workers``.

    One query: ``ROW_NUMBER()`` per worker keeps the rows bounded whatever a worker runs.
    """
    if not workers or limit <= 0:
        return {}
    rank = Window(
        RowNumber(),
        partition_by=[F("worker_id")],
        order_by=[F("start_time").asc(nulls_last=True), F("id").asc()],
    )
    rows = (
        TaskLog.objects.filter(RUNNING, worker_id__in=list(workers))
        .annotate(rank=rank)
        .filter(rank__lte=limit)
        .values("worker_id", "rank", *JOB_FIELDS)
    )
    jobs: dict[str, list[Any]] = {}
    for row in sorted(rows, key=lambda r: (r["worker_id"], r["rank"])):
        jobs.setdefault(row.pop("worker_id"), []).append(row)
    return jobs
