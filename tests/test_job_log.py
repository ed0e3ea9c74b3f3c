"""Structured job logs: one redacted JSON line per transition, written by the collector."""

from __future__ import annotations

import json
import logging

import pytest

from rearq_tasks.capture.collector import _write
from rearq_tasks.capture.events import fold
from rearq_tasks.models import TaskLog
from tests.test_history import at, event, fails_twice_then_succeeds

pytestmark = pytest.mark.django_db
LOGGER = "rearq_tasks.jobs"


@pytest.fixture
def enabled(settings):
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "JOB_LOG_ENABLED": True}


def lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_off_by_default(caplog) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    events = fails_twice_then_succeeds()
    _write(fold(events), events)
    assert TaskLog.objects.get().status == "success"
    assert lines(caplog) == []


def test_one_line_per_transition_in_order(enabled, caplog) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    events = fails_twice_then_succeeds()
    _write(fold(events), events)  # one row write for the batch, four transitions logged
    logged = lines(caplog)
    assert [(d["status"], d.get("job_retries")) for d in logged] == [
        ("queued", 0), ("deferred", 1), ("deferred", 2), ("success", 2),
    ]  # fmt: skip
    done = logged[-1]
    assert done["event"] == "rearq_job_transition" and done["job_id"] == "j1"
    assert done["worker_id"] == "w-3" and done["duration_ms"] == 500 and done["result"] == "ok"
    assert done["finish_time"] == "2026-11-01T12:00:30.500000Z"
    assert "Run job error in NO.0" in logged[1]["error_message"]
    record = next(r for r in caplog.records if r.name == LOGGER)
    assert record.rearq_job["job_id"] == "j1", "the fields ride along for JSON formatters"


def test_lines_are_redacted_like_the_row(enabled, caplog) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    leaky = event("j2", "failed", kwargs={"password": "hunter2-secret", "n": 1},
                  args=["postgres://u:pw-secret@db/x"], finish_time=at(5))  # fmt: skip
    _write(fold([leaky]), [leaky])
    (logged,) = lines(caplog)
    text = json.dumps(logged)
    assert "hunter2-secret" not in text and "pw-secret" not in text
    row = TaskLog.objects.get(job_id="j2")
    assert (logged["kwargs"], logged["args"]) == (row.kwargs, row.args)


def test_a_broken_handler_does_not_fail_the_write(enabled, caplog) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("disk full")

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
            raise RuntimeError("disk full")

    logger = logging.getLogger(LOGGER)
    handler = Broken()
    logger.addHandler(handler)
    caplog.set_level(logging.INFO, LOGGER)
    try:
        events = [event("j3", "queued")]
        assert _write(fold(events), events) == 1
    finally:
        logger.removeHandler(handler)
    assert TaskLog.objects.filter(job_id="j3").exists()
    assert "structured job log failed" in caplog.text
