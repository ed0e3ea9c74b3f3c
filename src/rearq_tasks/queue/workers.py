"""The workers page, assembled once for the API and the admin: who runs, and the repair.

A worker is a field of ReArq's heartbeat hash (``rearq:worker``) seen within ``seen_hours``,
or a ``worker_id`` that TaskLog shows running jobs. Alive or dead is the health check's
rule (:mod:`rearq_tasks.queue.liveness`: heartbeat age against ``WORKER_STALE_SECONDS``).
Its queues are its heartbeat's plus the queues' consumer groups (``XINFO CONSUMERS``) and
the queues of the jobs it runs. Figures are grouped database queries
(:mod:`rearq_tasks.queries.workers`); job links are fetched only for the page shown.

A dead worker that TaskLog still shows running jobs is *flagged*. Its repair
(:func:`repair_worker`) is the ``sync_task_logs`` rule narrowed to that worker: first its
jobs are read again from ReArq's tables (a finish the capture missed is written), then what
is still in progress is failed as ``lost`` — the stale heartbeat is the proof that its
process is gone. It is refused while the worker's heartbeat is fresh, and audited.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.db.models import Q
from django.utils import timezone

from rearq_tasks import audit
from rearq_tasks.conf import conf
from rearq_tasks.models import RUNNING, TaskLog
from rearq_tasks.queries.workers import JOBS_PER_WORKER, Figures, running_jobs, worker_figures
from rearq_tasks.queue.connection import redis_client
from rearq_tasks.queue.keys import WORKER_KEY
from rearq_tasks.queue.liveness import Heartbeat, parse_heartbeat, read_workers

logger = logging.getLogger("rearq_tasks.workers")

STATES = ("alive", "dead", "flagged")
SEEN_HOURS = 24
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_NAME_LENGTH = 200
PERIOD = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Query:
    """What the page asks: a state, a name fragment, how far back, which page."""

    state: str | None = None
    search: str = ""
    seen_hours: int = SEEN_HOURS
    page: int = 1
    page_size: int = PAGE_SIZE
    jobs_per_worker: int = JOBS_PER_WORKER


def _heartbeats(now: dt.datetime, queues: set[str]) -> tuple[list[Heartbeat], dict, str | None]:
    """Heartbeats and each worker's queues; on a Redis error none, and the error's name."""
    try:
        client = redis_client()
        try:
            state = read_workers(client, now=now, queues=sorted(queues), every_queue=True)
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        logger.warning("workers page: ReArq's Redis is unreachable (%s)", type(exc).__name__)
        return [], {}, f"ReArq's Redis is unreachable ({type(exc).__name__})"
    return list(state.heartbeats), state.queues, None


def _row(
    name: str, beat: Heartbeat | None, queues: set[str], figures: Figures, redis_ok: bool
) -> dict[str, Any]:
    mine = figures.by_worker.get(name)
    running = mine.running if mine else 0
    alive = (beat.alive if beat else False) if redis_ok else None
    return {
        "name": name,
        "group": beat.group if beat else None,
        "consumer": beat.consumer if beat else None,
        "is_timer": bool(beat and beat.is_timer),
        "queues": sorted(queues | (mine.running_queues if mine else set())),
        "last_heartbeat": beat.last_seen if beat else None,
        "heartbeat_age_seconds": round(beat.age_seconds, 1) if beat else None,
        "alive": alive,
        "running": running,
        "finished_last_hour": mine.finished if mine else 0,
        "failed_last_hour": mine.failed if mine else 0,
        "flagged": alive is False and running > 0,
    }


def _order(row: dict[str, Any]) -> tuple:
    """Flagged first, then alive, then the other dead ones; by name within each."""
    rank = 0 if row["flagged"] else 1 if row["alive"] is not False else 2
    return (rank, row["name"])


def _summary(rows: list[dict[str, Any]], figures: Figures, error: str | None) -> dict[str, Any]:
    return {
        "workers": len(rows),
        "alive": sum(1 for row in rows if row["alive"]),
        "dead": sum(1 for row in rows if row["alive"] is False),
        "flagged": sum(1 for row in rows if row["flagged"]),
        "running": sum(row["running"] for row in rows),
        "unassigned_running": figures.unassigned_running,
        "stale_after_seconds": conf.WORKER_STALE_SECONDS,
        "period_minutes": int(PERIOD.total_seconds() // 60),
        "redis_error": error,
    }


def _selected(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    if query.search:
        needle = query.search.lower()
        rows = [row for row in rows if needle in row["name"].lower()]
    if query.state == "alive":
        rows = [row for row in rows if row["alive"]]
    elif query.state == "dead":
        rows = [row for row in rows if row["alive"] is False]
    elif query.state == "flagged":
        rows = [row for row in rows if row["flagged"]]
    return rows


def workers_page(query: Query = Query(), now: dt.datetime | None = None) -> dict[str, Any]:
    """Every worker seen recently, its figures, and one page of them with job links.

    Two grouped queries for the figures of all workers, one Redis round (HGETALL and the
    queues' consumer groups), one windowed query for the page's job links.
    """
    now = now or timezone.now()
    figures = worker_figures(now, PERIOD)
    known_queues = set(conf.WORKER_QUEUES or ())
    for mine in figures.by_worker.values():
        known_queues |= mine.running_queues
    beats, served, error = _heartbeats(now, known_queues)
    by_name = {beat.name: beat for beat in beats}
    seen_after = now - dt.timedelta(hours=query.seen_hours)
    names = {beat.name for beat in beats if beat.last_seen >= seen_after}
    names |= {name for name, mine in figures.by_worker.items() if mine.running}
    names |= {beat.name for beat in beats if beat.alive}
    rows = sorted(
        (
            _row(name, by_name.get(name), served.get(name, set()), figures, error is None)
            for name in names
        ),
        key=_order,
    )
    summary = _summary(rows, figures, error)
    rows = _selected(rows, query)
    pages = max(1, -(-len(rows) // query.page_size))
    page = min(query.page, pages)
    shown = rows[(page - 1) * query.page_size : page * query.page_size]
    jobs = running_jobs([row["name"] for row in shown], query.jobs_per_worker)
    for row in shown:
        row["running_jobs"] = jobs.get(row["name"], [])
    return {
        "count": len(rows),
        "page": page,
        "pages": pages,
        "page_size": query.page_size,
        "summary": summary,
        "results": shown,
        "generated_at": now,
    }


# --- the repair of a dead worker -------------------------------------------------------------
class RepairRefused(ValueError):
    """The worker is alive again, or nothing can prove it dead (Redis unreachable)."""


@dataclass
class RepairReport:
    worker: str
    matched: int = 0
    synced: int = 0
    lost: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "matched": self.matched, "synced": self.synced,
                "lost": self.lost, "skipped": self.skipped}  # fmt: skip

    def __str__(self) -> str:
        return (
            f"worker {self.worker}: {self.matched} job(s) in progress, {self.synced} updated "
            f"from ReArq's tables, {self.lost} marked lost, {self.skipped} left as they were"
        )


def heartbeat_of(name: str, now: dt.datetime | None = None) -> Heartbeat | None:
    """One worker's heartbeat (None when it has none); ``redis.RedisError`` passes through."""
    now = now or timezone.now()
    client = redis_client()
    try:
        raw = client.hget(WORKER_KEY, name)
    finally:
        client.close()
    if raw is None:
        return None
    return parse_heartbeat(name, raw, now, conf.WORKER_STALE_SECONDS)


def _ensure_dead(name: str, now: dt.datetime, running: bool) -> None:
    """RepairRefused while the worker is alive (or Redis cannot tell); LookupError for a
    name with neither a heartbeat nor jobs in progress."""
    try:
        beat = heartbeat_of(name, now)
    except (redis.RedisError, OSError) as exc:
        raise RepairRefused(
            f"ReArq's Redis is unreachable ({type(exc).__name__}): cannot tell whether "
            f"worker {name} is dead"
        ) from None
    if beat is None and not running:
        raise LookupError(f"no worker {name!r}: no heartbeat and no job in progress")
    if beat is not None and beat.alive:
        raise RepairRefused(f"worker {name} is alive (heartbeat {beat.age_seconds:.0f} s ago)")


def repair_worker(
    name: str, *, source: str, request: Any = None, now: dt.datetime | None = None
) -> RepairReport:
    """Repair the jobs a dead worker left in progress; refused (``RepairRefused``) while it
    is alive. One audit entry records who repaired what, with the counts."""
    from rearq_tasks.queue.client import get_rearq_client
    from rearq_tasks.queue.loop import run_sync
    from rearq_tasks.queue.reconcile import LOST_DEAD_WORKER, mark_lost_jobs, sync_job_ids

    if not name or "\x00" in name or len(name) > MAX_NAME_LENGTH:
        raise LookupError("no such worker: not a worker name")  # nothing could match it
    now = now or timezone.now()
    mine = TaskLog.objects.filter(RUNNING, worker_id=name)
    job_ids = list(mine.order_by("id").values_list("job_id", flat=True))
    _ensure_dead(name, now, bool(job_ids))
    report = RepairReport(worker=name, matched=len(job_ids))
    if job_ids:
        rearq = get_rearq_client()
        report.synced = run_sync(lambda: sync_job_ids(rearq.task_map, job_ids), timeout=None)
        report.lost = mark_lost_jobs(
            rearq.task_map, now, condition=Q(worker_id=name), why=LOST_DEAD_WORKER
        )
        report.skipped = mine.filter(job_id__in=job_ids).count()
    audit.record(
        "repair", source=source, request=request, job_ids=job_ids, filters={"worker": name},
        matched=report.matched, done=report.matched - report.skipped, skipped=report.skipped,
    )  # fmt: skip
    return report
