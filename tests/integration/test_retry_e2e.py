"""Retry and recovery through real worker processes: the re-run receives the original
arguments (a redacted secret, a truncated large value), and the jobs a SIGKILLed worker
fetched but never started run exactly once after ``sync_task_logs``."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import pytest
from django.forms.models import model_to_dict

from harness.waiting import wait_for
from rearq_tasks.conf import conf
from rearq_tasks.models import TaskEvent, TaskLog
from rearq_tasks.payloads import REDACTED, TRUNCATED_KEY
from rearq_tasks.queue.recovery import recovered_id
from tests.integration.conftest import flush_redis
from tests.integration.test_capture import rearq_state, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def digest(password: str = "", data: str = "") -> str:
    return hashlib.sha256(f"{password}|{data}".encode()).hexdigest()


def stored_text() -> str:
    rows = [model_to_dict(r) for r in TaskLog.objects.all()]
    rows += [model_to_dict(e) for e in TaskEvent.objects.all()]
    return json.dumps(rows, default=str)


def test_a_retried_job_runs_with_its_original_secret_and_large_argument(worker_pool) -> None:
    from rearq_tasks.queue.connection import redis_client
    from rearq_tasks.queue.jobs import enqueue_sync, retry_job

    worker_pool.start("default", with_timer=True)
    key, secret = uuid.uuid4().hex, f"hunter2-{uuid.uuid4().hex}"
    big = "x" * (conf.PAYLOAD_MAX_BYTES + 1000)
    with_secret = enqueue_sync("gated", key, password=secret)
    with_big = enqueue_sync("gated", key, data=big)
    first = wait_status(with_secret, "failed", timeout=30)
    first_big = wait_status(with_big, "failed", timeout=30)
    assert first.kwargs["password"] == REDACTED
    assert TRUNCATED_KEY in first_big.kwargs  # TaskLog's copy could not run the job
    redis_client().set(f"test:gate:{key}", "1", ex=120)
    again = wait_status(retry_job(first), "success", timeout=20)
    again_big = wait_status(retry_job(first_big), "success", timeout=20)
    assert again.result == digest(password=secret)
    assert again_big.result == digest(data=big)
    assert (again.retry_of, again_big.retry_of) == (with_secret, with_big)
    assert secret not in stored_text()


def kill_a_busy_worker(proc: Any, worker_pool: Any) -> tuple[list[str], list[str]]:
    """SIGKILL a ``slowq`` worker running ten long jobs with two more fetched and waiting
    for a slot; return (running, waiting) once its heartbeat is stale (past 11 s)."""
    from rearq_tasks.queue.connection import redis_client
    from rearq_tasks.queue.jobs import enqueue_sync

    # ReArq's default max_jobs is 10: the last two are fetched and wait for a slot.
    running = [enqueue_sync("sleep", 30.0) for _ in range(10)]
    waiting = [enqueue_sync("sleep", 0.2) for _ in range(2)]
    wait_for(
        lambda: TaskLog.objects.filter(job_id__in=running, start_time__isnull=False).count() == 10,
        15, "ten jobs to start",
    )  # fmt: skip
    wait_for(lambda: all(rearq_state(j)[0].status.value == "in_progress" for j in waiting), 10)
    worker_pool.kill(proc)
    beats = redis_client().hgetall("rearq:worker")
    wait_for(
        lambda: all(time.time() - json.loads(v)["ms"] / 1000 > 11.5 for v in beats.values()),
        20, "the killed worker's heartbeat to go stale",
    )  # fmt: skip
    return running, waiting


def test_jobs_a_killed_worker_never_started_run_once_after_sync(worker_pool, settings) -> None:
    from rearq_tasks.queue.jobs import sync_task_logs

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "WORKER_STALE_SECONDS": 11}
    running, waiting = kill_a_busy_worker(worker_pool.start("slowq"), worker_pool)
    since = TaskLog.objects.get(job_id=running[0]).enqueue_time
    report = sync_task_logs(since=since)
    assert (report.recovered, report.lost) == (2, 0)
    assert sync_task_logs(since=since).recovered == 0  # once
    worker_pool.start("slowq")
    for old_id in waiting:
        new = wait_status(recovered_id(old_id), "success", timeout=20)
        assert (new.retry_of, new.args, new.result) == (old_id, [0.2], "0.2")
        old = TaskLog.objects.get(job_id=old_id)
        assert old.status == "failed" and new.job_id in old.error_message
        assert len(rearq_state(new.job_id)[1]) == 1  # ran exactly once
        assert rearq_state(old_id)[1] == []  # the dropped job itself never ran
    # Jobs killed mid-run are never re-run automatically.
    assert not TaskLog.objects.filter(retry_of__in=running).exists()
    assert TaskLog.objects.filter(job_id__in=running, status="in_progress").count() == 10
    flush_redis()
