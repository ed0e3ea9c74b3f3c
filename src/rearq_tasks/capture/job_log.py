"""Structured job logs (``JOB_LOG_ENABLED``): one JSON line per transition on the
``rearq_tasks.jobs`` logger, for log aggregation (Loki, Elasticsearch, CloudWatch …).

Written by the collector right after a batch committed, so there is one place that logs
(not the job path, which must stay cheap) and a line stands for a transition that is stored.
The payload fields are the prepared ones (:func:`rearq_tasks.payloads.prepare_record`:
redacted and bounded exactly like the TaskLog row), so a log line shows no more than the
admin does. Delivery is at least once: a batch re-read after a crash between commit and
acknowledgement is logged again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rearq_tasks.capture.events import TIME_FIELDS, iso_from_ms
from rearq_tasks.conf import conf
from rearq_tasks.payloads import dumps, prepare_record

logger = logging.getLogger("rearq_tasks.jobs")

FIELDS: tuple[str, ...] = (
    "job_id", "task_name", "queue_name", "status", "success", "job_retry", "job_retries",
    "enqueue_time", "expire_time", "start_time", "finish_time", "duration_ms", "worker_id",
    "user_id", "args", "kwargs", "result", "error_message",
)  # fmt: skip


def line(event: dict[str, Any]) -> dict[str, Any]:
    """The logged fields of one event: those it carries, payloads prepared, times ISO."""
    record = prepare_record(event)
    data: dict[str, Any] = {"event": "rearq_job_transition"}
    for name in FIELDS:
        value = record.get(name)
        if value is not None:
            data[name] = iso_from_ms(value) if name in TIME_FIELDS else value
    return data


def log_transitions(events: Iterable[dict[str, Any]]) -> int:
    """Log each event of a written batch (when enabled); returns how many lines."""
    if not conf.JOB_LOG_ENABLED or not logger.isEnabledFor(logging.INFO):
        return 0
    count = 0
    for event in events:
        if not event.get("job_id") or not event.get("status"):
            continue
        data = line(event)
        logger.info(dumps(data, separators=(",", ":")), extra={"rearq_job": data})
        count += 1
    return count
