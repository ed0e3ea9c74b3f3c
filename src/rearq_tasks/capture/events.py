"""Lifecycle events: what a hook knows about a job at one moment, as a partial TaskLog row.

An event is a plain dict keyed by TaskLog column names (times as epoch milliseconds) so it
is cheap to build in the job path, travels as JSON, and maps 1:1 onto the upsert. This
module must not import Django models at import time: hooks run in processes where Django
may not be set up yet.
"""

from __future__ import annotations

import datetime as dt
import json
import json.encoder as json_encoder
import time
from collections.abc import Iterable
from typing import Any

from rearq_tasks import lifecycle
from rearq_tasks.payloads import dumps as payloads_dumps
from rearq_tasks.payloads import json_default
from rearq_tasks.queue.keys import short_queue

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
    "retry_of",
)
# Columns filled once and never replaced, whatever the order of events (not lifecycle state).
FILL_ONCE: tuple[str, ...] = ("user_id", "retry_of")
TIME_FIELDS = frozenset({"enqueue_time", "expire_time", "start_time", "finish_time"})


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def to_ms(value: dt.datetime | None) -> float | None:
    """Epoch milliseconds to the microsecond, ``round(value.timestamp() * 1000, 3)`` in value
    but from whole microseconds: ``round(…, 3)`` costs ~1 µs, this ~0.2 (3 calls per job)."""
    if value is None:
        return None
    try:
        return ((value - _EPOCH) // _MICROSECOND) / 1000
    except TypeError:  # naive: local time, as timestamp() reads it
        return round(value.timestamp() * 1000, 3)


def from_ms(value: float | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def iso_from_ms(value: float | None) -> str | None:
    """An event time as ISO 8601 UTC text (``...Z``), for JSON read by people and tools."""
    when = from_ms(value)
    return when.isoformat().replace("+00:00", "Z") if when else None


def now_ms() -> float:
    """Now as epoch milliseconds to the microsecond, from the clock directly (no ``datetime``
    round trip, no ``round(…, 3)``)."""
    return time.time_ns() // 1000 / 1000


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


# The TaskLog columns an event rebuilt from a stored row carries (the rest stay as stored).
ROW_FIELDS: tuple[str, ...] = (
    "job_id", "task_name", "queue_name", "args", "kwargs", "job_retry", "job_retries",
    "job_retry_after", "enqueue_time", "start_time", "worker_id",
)  # fmt: skip


def row_event(row: Any, status: str, **fields: Any) -> dict[str, Any]:
    """An event about a job known only from its TaskLog row (a model instance or ``.values()``
    dict): what cancel and reconcile send through the same upsert as the capture."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    event: dict[str, Any] = {}
    for name in ROW_FIELDS:
        value = get(name)
        event[name] = to_ms(value) if name in TIME_FIELDS else value
    event["status"] = status
    for name, value in fields.items():
        event[name] = to_ms(value) if isinstance(value, dt.datetime) else value
    return event


# Compact, and with the project's one JSON rule (payloads.json_default) for what JSON lacks.
_encode = json.JSONEncoder(separators=(",", ":"), default=json_default).encode
# The same encoder's C core, made once: ``JSONEncoder.encode`` builds it for every call (about
# a third of an end event's encoding). No cycle check: prepared payloads hold no cycle and
# are at most payloads.MAX_DEPTH deep; anything else that loops raises RecursionError, below.
_C_ARGS = (None, json_default, json_encoder.encode_basestring_ascii, None, ":", ",")
_c_make = json_encoder.c_make_encoder
_c_encode = _c_make(*_C_ARGS, False, False, True) if _c_make is not None else None


def dumps(event: dict[str, Any]) -> str:
    """``event`` as compact JSON (what :func:`_encode` gives); never raises."""
    try:
        if _c_encode is not None:
            return "".join(_c_encode(event, 0))
        return _encode(event)
    except (TypeError, ValueError, RecursionError):  # a cycle, a tuple key: never raise
        return payloads_dumps(event, separators=(",", ":"))


def loads(raw: str | bytes) -> dict[str, Any]:
    return json.loads(raw)


def may_replace(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether event ``new`` may replace the values of ``old`` (the upsert's guard)."""
    return lifecycle.may_replace(
        old["status"], old.get("job_retries"), new["status"], new.get("job_retries")
    )


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    if may_replace(old, new):
        if lifecycle.starts_new_attempt(
            old["status"], old.get("job_retries"), new["status"], new.get("job_retries")
        ):
            for key in lifecycle.ATTEMPT_FIELDS:  # an earlier attempt's: never the new one's
                merged[key] = None
        for key, value in new.items():
            if value is not None and key not in FILL_ONCE:
                merged[key] = value
        # Prepared (payloads.prepare_record) only if every payload field in it was.
        merged["prepared"] = old.get("prepared") is True and new.get("prepared") is True
    for key in FILL_ONCE:
        if merged.get(key) is None and new.get(key) is not None:
            merged[key] = new[key]
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
