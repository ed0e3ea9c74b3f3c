"""Reconciliation: make TaskLog agree with ReArq's own tables, the backstop of capture.

Reads ``rearq_job`` in id order (keyset batches) with each job's latest ``rearq_job_results``
row and writes them through the same guarded upsert as the collector, so running it twice,
or while workers write, changes nothing that is already right and never moves a finished
row backwards. It imports history from before installation and repairs what a dropped
event, a database outage or a killed worker left behind.

Jobs ReArq itself lost stay truthful: a job a dead worker fetched but never started is
re-enqueued once (:mod:`rearq_tasks.queue.recovery`, ``RECOVER_UNSTARTED_JOBS``); any other
job still in progress well past its timeout (its worker was killed mid-run; ReArq never runs
it again) becomes ``failed`` with a "lost" error, and is never re-run automatically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rearq_tasks.capture.events import (
    FIELDS,
    ROW_FIELDS,
    TIME_FIELDS,
    from_ms,
    job_event,
    now_ms,
    row_event,
    to_ms,
)
from rearq_tasks.capture.history_writer import insert_rows, rows_from_rearq
from rearq_tasks.conf import conf
from rearq_tasks.lifecycle import TERMINAL_STATUSES, duration_ms, may_replace, start_attempt
from rearq_tasks.payloads import parse_result_text
from rearq_tasks.queue.keys import TASK_NOT_FOUND, job_status
from rearq_tasks.queue.recovery import (
    closing_connections,
    lost_events,
    overdue_q,
    recover_unstarted,
)

Progress = Callable[[int, int], None]


@dataclass
class SyncReport:
    scanned: int = 0
    written: int = 0
    lost: int = 0
    recovered: int = 0

    def __str__(self) -> str:
        # written: rows inserted or changed; a run over rows that are right writes none.
        return (
            f"{self.scanned} jobs scanned, {self.written} rows written, {self.recovered} "
            f"re-enqueued (fetched but never started), {self.lost} lost"
        )


def record_from_rearq(job: Any, latest: Any, queue: str | None) -> dict[str, Any]:
    """The TaskLog row ReArq's tables describe for one job."""
    status = job_status(job)
    fields: dict[str, Any] = {}
    if latest is not None:
        fields["worker_id"] = latest.worker
        fields["start_time"] = to_ms(latest.start_time)
        text = latest.result
        if status == "in_progress" and text == TASK_NOT_FOUND:
            status = "failed"
            fields["error_message"] = (
                f"task {job.task!r} is not registered on worker {latest.worker}: ReArq left "
                "the job in progress and will never run it"
            )
            fields["success"] = False
        elif status == "success":
            # ReArq stored str(value): parse it back so both paths store the same JSON.
            result = parse_result_text(text)
            fields.update(success=True, result=result, finish_time=to_ms(latest.finish_time))
        elif status == "failed":
            fields.update(success=False, error_message=text, finish_time=to_ms(latest.finish_time))
        elif status == "deferred":
            fields["error_message"] = text
        if status in ("success", "failed") and latest.start_time and latest.finish_time:
            fields["duration_ms"] = duration_ms(latest.start_time, latest.finish_time)
        if status in ("queued", "deferred", "in_progress") and "error_message" not in fields:
            # A finished earlier attempt says nothing about the current one's start.
            fields.pop("start_time", None)
            fields.pop("worker_id", None)
    if status == "expired":
        fields["success"] = False
    return job_event(job, status, queue, **fields)


async def reconcile(
    task_map: Mapping[str, Any],
    since: dt.datetime | None = None,
    batch_size: int = 1000,
    progress: Progress | None = None,
    redis: Any = None,
) -> SyncReport:
    """Import/repair every ``rearq_job`` row (enqueued at/after ``since``) in this loop.

    ``task_map`` is the client's (``rearq.task_map``): it tells each task's queue and timeout.
    ``redis`` (the client's) is needed to re-enqueue the jobs ReArq dropped; without it they
    are only marked lost.
    """
    from asgiref.sync import sync_to_async
    from rearq.server.models import Job

    base = Job.all()
    if since is not None:
        base = base.filter(enqueue_time__gte=since)
    total = await base.count()
    report = SyncReport()
    last_id = 0
    while True:
        jobs = await base.filter(id__gt=last_id).order_by("id").limit(batch_size)
        if not jobs:
            break
        last_id = jobs[-1].id
        report.written += await sync_jobs(task_map, jobs)
        report.scanned += len(jobs)
        if progress is not None:
            progress(report.scanned, total)
    from django.utils import timezone

    now = timezone.now()
    if redis is not None and conf.RECOVER_UNSTARTED_JOBS:
        report.recovered = await recover_unstarted(task_map, redis, now)
    mark = sync_to_async(closing_connections(mark_lost_jobs), thread_sensitive=True)
    report.lost = await mark(task_map, now)
    return report


async def sync_jobs(task_map: Mapping[str, Any], jobs: list[Any]) -> int:
    """Write what ReArq's tables say about ``jobs`` (``rearq_job`` rows); rows written."""
    from asgiref.sync import sync_to_async
    from rearq.server.models import JobResult

    attempts: dict[int, list[Any]] = {}
    for result in await JobResult.filter(job_id__in=[j.id for j in jobs]).order_by("id"):
        attempts.setdefault(result.job_id, []).append(result)
    records = []
    history_rows: list[dict[str, Any]] = []
    for job in jobs:
        task = task_map.get(job.task)
        results = attempts.get(job.id, [])
        latest = results[-1] if results else None
        records.append(record_from_rearq(job, latest, task.queue if task else None))
        history_rows.extend(rows_from_rearq(job, results))
    write = sync_to_async(closing_connections(write_batch), thread_sensitive=True)
    return int(await write(records, history_rows))


async def sync_job_ids(task_map: Mapping[str, Any], job_ids: list[str]) -> int:
    """:func:`sync_jobs` for the ReArq jobs of ``job_ids`` (in batches of 1000)."""
    from rearq.server.models import Job

    written = 0
    for start in range(0, len(job_ids), 1000):
        jobs = await Job.filter(job_id__in=job_ids[start : start + 1000]).order_by("id")
        if jobs:
            written += await sync_jobs(task_map, list(jobs))
    return written


def write_batch(records: list[dict[str, Any]], history_rows: list[dict[str, Any]]) -> int:
    """Upsert a batch and its history in one transaction.

    A job whose stored row was not finished but which ReArq's tables show finished gets a
    ``repaired`` event: the capture missed its end (dropped event, outage, killed worker).
    """
    from django.db import transaction

    from rearq_tasks.capture.upsert import upsert_records
    from rearq_tasks.models import TaskLog

    # Read before the write transaction: on SQLite a transaction that reads and then
    # writes cannot wait for a concurrent writer (SQLITE_BUSY at once).
    rows = {
        row["job_id"]: row
        for row in TaskLog.objects.filter(job_id__in=[r["job_id"] for r in records])
        .order_by()
        .values(*COMPARED)
    }
    records = real_changes(records, rows)
    stored = {job_id: row["status"] for job_id, row in rows.items()}
    repaired = []
    for record in records:
        before = stored.get(record["job_id"])
        if before is None or before in TERMINAL_STATUSES:
            continue
        if record["status"] in TERMINAL_STATUSES:
            repaired.append(
                {
                    "job_id": record["job_id"],
                    "task_name": record.get("task_name"),
                    "event": "repaired",
                    "attempt": (record.get("job_retries") or 0) + 1,
                    "timestamp": now_ms(),
                    "worker_id": record.get("worker_id"),
                    "error_message": (
                        f"reconcile: {before} -> {record['status']} from ReArq's tables "
                        "(the capture missed the end of this attempt)"
                    ),
                }
            )
    with transaction.atomic():
        if records:
            upsert_records(records)
        insert_rows([*history_rows, *repaired])
    return len(records)


COMPARED = tuple(name for name in FIELDS if name != "user_id")


def real_changes(
    records: list[dict[str, Any]], rows: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The records that would change their row: new jobs, and rows whose stored values
    differ from what ReArq's tables say and that the upsert's guard lets move.

    A start the capture stored for the attempt ReArq's latest result describes (the task
    function's call, after the ``max_jobs`` slot) is kept, with its duration: ReArq's
    ``start_time`` is taken before the slot. A start of an earlier attempt is not (see
    :func:`_captured_start`).
    """
    from rearq_tasks.payloads import payload_rules, prepare_record

    rules = payload_rules()
    changed = []
    for record in records:
        row = rows.get(record["job_id"])
        if row is None:
            changed.append(record)
            continue
        if _captured_start(row, record):
            finish = record.get("finish_time")
            record = {**record, "start_time": None, "worker_id": None}
            # Only a finished row's duration belongs to its start: an in-progress row written
            # before the upsert cleared a new attempt's columns holds the earlier attempt's.
            record["duration_ms"] = (
                duration_ms(row["start_time"], from_ms(finish))
                if finish is not None
                and (row["duration_ms"] is None or row["status"] not in TERMINAL_STATUSES)
                else None
            )
        if not may_replace(row["status"], row["job_retries"], record["status"],
                           record.get("job_retries")):  # fmt: skip
            continue
        prepared = prepare_record(dict(record), rules)
        if any(_differs(name, value, row[name]) for name, value in prepared.items()
               if value is not None and name in row):  # fmt: skip
            changed.append(record)
    return changed


def _captured_start(row: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether the row's start is the capture's start of the attempt ``record`` describes.

    A waiting row (``deferred`` after a failure) holds the previous attempt's start
    (:func:`rearq_tasks.lifecycle.start_attempt`). Only the same attempt's start is kept: a
    row still holding an earlier attempt's start (the capture missed the later attempt's
    events, e.g. lost with a killed worker) would give the final attempt an earlier
    attempt's start and duration.
    """
    return row["start_time"] is not None and start_attempt(
        row["status"], row["job_retries"]
    ) == start_attempt(record["status"], record.get("job_retries"))


def _differs(name: str, new: Any, old: Any) -> bool:
    if name in TIME_FIELDS:
        return old is None or abs((to_ms(old) or 0) - new) >= 1
    if name == "queue_name" and new == "":
        return False  # not known here: the upsert keeps the stored one
    return bool(new != old)


LOST_OVERDUE = "long after its timeout; the worker was stopped or killed"
LOST_DEAD_WORKER = "when an operator repaired its dead worker (stale heartbeat)"


def mark_lost_jobs(
    task_map: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    condition: Any = None,
    why: str = LOST_OVERDUE,
) -> int:
    """Fail rows in progress long past their task's timeout: their worker is gone.

    ``condition`` (a ``Q`` of rows in progress) replaces the timeout rule where something
    else proves the worker gone (the workers page's repair of a dead worker).
    """
    from django.db import transaction
    from django.utils import timezone

    from rearq_tasks.capture.upsert import upsert_records
    from rearq_tasks.models import RUNNING, TaskLog

    now = now or timezone.now()
    condition = overdue_q(task_map or {}, now) if condition is None else RUNNING & condition
    records = []
    rows = TaskLog.objects.filter(condition).values(*ROW_FIELDS).iterator(chunk_size=1000)
    for row in rows:
        where = f"on worker {row['worker_id']}" if row["worker_id"] else "after a worker fetched it"
        records.append(
            row_event(
                row,
                "failed",
                success=False,
                finish_time=now,
                duration_ms=duration_ms(row["start_time"], now),
                error_message=(
                    f"lost: still in progress {where} {why} and ReArq will not run the job again"
                ),
            )
        )
    for start in range(0, len(records), 1000):
        part = records[start : start + 1000]
        with transaction.atomic():
            upsert_records(part)
            insert_rows([row for record in part for row in lost_events(record)])
    return len(records)
