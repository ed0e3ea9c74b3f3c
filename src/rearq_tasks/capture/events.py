"""Lifecycle events: what a hook knows about a job at one moment, as a partial TaskLog row.

An event is a plain dict keyed by TaskLog column names (times as epoch milliseconds) so it
is cheap to build in the job path, travels as JSON, and maps 1:1 onto the upsert. This
module must not import Django models at import time: hooks run in processes where Django
may not be set up yet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

QUEUE_PREFIX = "rearq:queue:"

FIELDS: tuple[str, ...] = (
    "job_id",
    "task_name",
    "queue_name",
    "args",
    "kwargs",
    "status",
    "job_retry",
    "job_retries",
    "job_retry_after",
    "enqueue_time",
    "expire_time",
    "start_time",
    "finish_time",
    "duration_ms",
    "success",
    "result",
    "error_message",
    "worker_id",
    "user_id",
)
TIME_FIELDS = frozenset({"enqueue_time", "expire_time", "start_time", "finish_time"})
# Within one attempt a job moves waiting -> in_progress -> terminal; a retry starts the next
# attempt (job_retries + 1) back at "waiting". Non-terminal events are ordered by this rank.
RANK = {"queued": 0, "deferred": 0, "in_progress": 1}
TERMINAL_RANK = 2


def short_queue(queue: str | None) -> str | None:
    if queue is None:
        return None
    return queue[len(QUEUE_PREFIX) :] if queue.startswith(QUEUE_PREFIX) else queue


def to_ms(value: dt.datetime | None) -> float | None:
    return None if value is None else round(value.timestamp() * 1000, 3)


def from_ms(value: float | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


def now_ms() -> float:
    return round(dt.datetime.now(tz=dt.timezone.utc).timestamp() * 1000, 3)


def job_event(job: Any, status: str, queue: str | None, **fields: Any) -> dict[str, Any]:
    """An event carrying the whole ReArq job (so a row can be created from any event)."""
    retries = fields.pop("job_retries", None)
    if retries is None:
        retries = job.job_retries if isinstance(job.job_retries, int) else 0
    event = {
        "job_id": job.job_id,
        "task_name": job.task,
        "queue_name": short_queue(queue),
        "args": list(job.args or []),
        "kwargs": dict(job.kwargs or {}),
        "status": status,
        "job_retry": job.job_retry,
        "job_retries": retries,
        "job_retry_after": job.job_retry_after,
        "enqueue_time": to_ms(job.enqueue_time),
        "expire_time": to_ms(job.expire_time),
    }
    event.update(fields)
    return event


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def dumps(event: dict[str, Any]) -> str:
    return _encode(event)


def loads(raw: str | bytes) -> dict[str, Any]:
    return json.loads(raw)


def order(status: str, retries: int) -> tuple[int, int]:
    return retries or 0, RANK.get(status, TERMINAL_RANK)


def may_replace(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The guard of the SQL upsert, in Python (used to coalesce a batch per job_id)."""
    from rearq_tasks.models import TERMINAL_STATUSES, can_transition

    if not can_transition(old["status"], new["status"]):
        return False
    if old["status"] in TERMINAL_STATUSES or new["status"] in TERMINAL_STATUSES:
        return True
    return order(new["status"], new.get("job_retries", 0)) >= order(
        old["status"], old.get("job_retries", 0)
    )


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    if not may_replace(old, new):
        if old.get("user_id") is None and new.get("user_id") is not None:
            return {**old, "user_id": new["user_id"]}
        return old
    merged = dict(old)
    for key, value in new.items():
        if value is not None and key != "user_id":
            merged[key] = value
    if merged.get("user_id") is None:
        merged["user_id"] = new.get("user_id")
    return merged


def fold(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Coalesce events per job_id in arrival order: one row write per job per batch."""
    by_job: dict[str, dict[str, Any]] = {}
    for event in events:
        job_id = event.get("job_id")
        if not job_id or not event.get("status"):
            continue
        current = by_job.get(job_id)
        by_job[job_id] = dict(event) if current is None else merge(current, event)
    return list(by_job.values())
