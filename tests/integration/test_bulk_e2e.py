"""Bulk retry through real workers: each job retried exactly once, even when the runner
(``manage.py run_task_operations``) is SIGKILLed mid-way and another takes over its lease;
bulk cancel of waiting, running and finished jobs through a real worker and timer."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from harness.factories import staff_viewer
from harness.processes import ProcessPool, manage_argv
from harness.waiting import wait_for
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.operation_models import AuditEntry, OperationState, TaskOperation
from rearq_tasks.queue.connection import redis_client
from rearq_tasks.queue.loop import run_sync
from rearq_tasks.queue.operations import retry_job_id
from tests.integration.conftest import process_logdir, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FAILED = 1500
SUCCEEDED = 40


def seed() -> list[str]:
    enqueued = timezone.now() - dt.timedelta(minutes=10)
    rows = [
        TaskLog(
            job_id=f"bulk-{i:05d}",
            task_name="add",
            queue_name="default",
            args=[i, 1],
            status=StatusChoices.FAILED,
            success=False,
            error_message="boom",
            enqueue_time=enqueued,
        )  # fmt: skip
        for i in range(FAILED)
    ]
    rows += [
        TaskLog(
            job_id=f"fine-{i:05d}",
            task_name="add",
            queue_name="default",
            args=[i, 2],
            status=StatusChoices.SUCCESS,
            success=True,
            enqueue_time=enqueued,
        )  # fmt: skip
        for i in range(SUCCEEDED)
    ]
    TaskLog.objects.bulk_create(rows, batch_size=500)
    return [f"bulk-{i:05d}" for i in range(FAILED)]


def rearq_runs(job_ids: list[str]) -> dict[str, int]:
    """Per new job id with a ``rearq_job`` row: how many results (runs) it has."""

    async def go() -> dict[str, int]:
        from rearq.server.models import Job, JobResult

        jobs = {job.id: job.job_id for job in await Job.filter(job_id__in=job_ids)}
        runs = dict.fromkeys(jobs.values(), 0)
        for result in await JobResult.filter(job_id__in=list(jobs)):
            runs[jobs[result.job_id]] += 1
        return runs

    return run_sync(go, timeout=60)


def stream_messages(redis) -> Counter[str]:
    """Job ids of every message on the default queue's stream (Redis is flushed per test)."""
    return Counter(fields["job_id"] for _id, fields in redis.xrange("rearq:queue:default"))


def operation() -> TaskOperation:
    return TaskOperation.objects.get()


def test_bulk_retry_runs_each_job_once_across_a_runner_crash(worker_pool) -> None:
    originals = seed()
    client = APIClient()
    user = staff_viewer("retry_tasklog")
    client.force_authenticate(user)
    answer = client.post(
        "/cfg/tasks/logs/bulk/",
        {"action": "retry", "filters": {"task_name_exact": "add"}},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["matched"] == FAILED + SUCCEEDED
    worker_pool.start("default")
    runners = ProcessPool(
        process_logdir(), worker_env(REARQ_TASKS_WORKER_OPERATION_CHUNK_SIZE="50")
    )
    argv = manage_argv("run_task_operations", "--lease-seconds", "3", "--poll-seconds", "0.2")
    try:
        runners.spawn("first", argv)
        wait_for(lambda: operation().done >= 100, 60, "the first runner's first chunks")
        runners.kill("first")
        killed_at = operation()
        assert killed_at.state == OperationState.RUNNING, runners.output()
        assert killed_at.done < FAILED
        runners.spawn("second", argv)
        wait_for(lambda: operation().state == OperationState.DONE, 120, runners.output())
    finally:
        runners.stop_all()
    done = operation()
    assert (done.done, done.skipped, done.failed) == (FAILED, SUCCEEDED, 0)
    assert done.skip_reasons == {"not failed, expired or canceled": SUCCEEDED}
    new_ids = [retry_job_id(done.token, job_id) for job_id in originals]
    wait_for(
        lambda: TaskLog.objects.filter(job_id__in=new_ids, status="success").count() == FAILED,
        120,
        "the worker to run every retry",
    )
    runs = rearq_runs(new_ids)
    assert sorted(runs) == sorted(new_ids)
    messages = stream_messages(redis_client(timeout=5))
    assert sorted(messages) == sorted(new_ids)
    assert set(messages.values()) == {1}  # one message per retry, none replayed
    assert set(runs.values()) == {1}  # each retry ran exactly once
    assert TaskLog.objects.filter(job_id__in=originals, status="failed").count() == FAILED
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.user, entry.operation_id) == ("retry", user, done.pk)
    assert (entry.matched, entry.done, entry.skipped, entry.failed) == (
        FAILED + SUCCEEDED, FAILED, SUCCEEDED, 0,
    )  # fmt: skip


DEFERRED = 30


def test_bulk_cancel_stops_waiting_and_running_jobs_and_skips_finished_ones(worker_pool) -> None:
    """Cancel all matching through a real worker and timer: deferred jobs leave ReArq's delay
    set and never run, a running one is interrupted by its worker, finished ones are skipped
    with their reason; one audit entry counts it all."""
    from rearq_tasks.queue import operations
    from rearq_tasks.queue.jobs import enqueue_sync
    from tests.integration.test_capture import rearq_state, wait_status

    worker_pool.start("default", "slowq", with_timer=True)
    finished = [enqueue_sync("add", i, 1) for i in range(5)]
    for job_id in finished:
        wait_status(job_id, "success")
    running = enqueue_sync("sleep", 30)
    wait_status(running, "in_progress", timeout=15)
    wait_for(lambda: TaskLog.objects.get(job_id=running).start_time is not None, 15, "its start")
    # Due in 6 s: long enough to be canceled first, soon enough to prove they never run.
    waiting = [enqueue_sync("add", i, 2, countdown=6) for i in range(DEFERRED)]
    due = timezone.now() + dt.timedelta(seconds=6)
    wait_for(
        lambda: TaskLog.objects.filter(job_id__in=waiting, status="deferred").count() == DEFERRED,
        15,
        "the deferred rows",
    )
    client = APIClient()
    user = staff_viewer("cancel_tasklog")
    client.force_authenticate(user)
    # The timer's cron and start-up jobs run beside them: the search language picks ours.
    filters = {"search": "task:add task:sleep"}
    answer = client.post(
        "/cfg/tasks/logs/bulk/", {"action": "cancel", "filters": filters}, format="json"
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["matched"] == DEFERRED + 1 + len(finished)
    assert operations.run_pending("cancel-runner", once=True) == 1
    done = operation()
    assert done.state == OperationState.DONE, done.message
    assert (done.done, done.skipped, done.failed) == (DEFERRED + 1, len(finished), 0)
    assert done.skip_reasons == {"already finished": len(finished)}
    assert wait_status(running, "canceled", timeout=20).is_completed
    wait_for(lambda: timezone.now() > due + dt.timedelta(seconds=3), 15, "the jobs' due time")
    for job_id in waiting:
        job, results = rearq_state(job_id)
        assert (job.status.value, results) == ("canceled", [])
    assert TaskLog.objects.filter(job_id__in=waiting, status="canceled").count() == DEFERRED
    assert TaskLog.objects.filter(job_id__in=finished, status="success").count() == len(finished)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.user, entry.operation_id) == ("cancel", user, done.pk)
    assert (entry.done, entry.skipped, entry.failed) == (DEFERRED + 1, len(finished), 0)
