"""Faults the soak (bench/soak.py) found, each reproduced with a real worker process."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from harness.network import FaultProxy
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from tests.integration.test_capture import rearq_state, row, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_job_finished_while_redis_was_away_is_recorded_as_it_ran(worker_pool) -> None:
    """ReArq XACKs before it saves the job: with Redis gone the ack raises, rearq_job stays
    in_progress with no result for ever. TaskLog says what happened: the job succeeded."""
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    url = urlsplit(settings.REARQ_TASKS["REDIS_URL"])
    proxy = FaultProxy(url.hostname, url.port or 6379)
    proxied = url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    try:
        worker_pool.start("slowq", extra_env={"REARQ_TASKS_TEST_REDIS_URL": proxied})
        job_id = enqueue_sync("sleep", 2.0)
        wait_status(job_id, "in_progress", timeout=10)
        proxy.cut()  # the job ends (and ReArq acks) while Redis is unreachable
        time.sleep(2.5)
        proxy.restore()  # the worker's capture sends its buffered events on the way out
        done = wait_status(job_id, "success", timeout=15)
    finally:
        proxy.close()
    assert (done.result, done.success) == ("2.0", True)
    assert done.finish_time > done.start_time
    job, results = rearq_state(job_id)
    assert job.status.value == "in_progress" and results == []
    sync_task_logs(since=done.enqueue_time)
    assert row(job_id).status == "success"  # the reconciler does not move it back


def test_job_that_never_started_is_lost_not_left_waiting(worker_pool) -> None:
    """Redis lost while a fetched job waited for its slot: ReArq never runs it; TaskLog fails
    it as lost at once instead of keeping the stale queued status."""
    from rearq_tasks.queue.jobs import enqueue_sync

    url = urlsplit(settings.REARQ_TASKS["REDIS_URL"])
    proxy = FaultProxy(url.hostname, url.port or 6379)
    proxied = url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    env = {"REARQ_TASKS_TEST_REDIS_URL": proxied}
    try:
        worker_pool.start("slowq", extra_env=env)
        # ReArq's default max_jobs is 10: the eleventh and twelfth wait for a slot.
        ids = [enqueue_sync("sleep", 2.0) for _ in range(12)]
        wait_for(
            lambda: TaskLog.objects.filter(job_id__in=ids, status="in_progress").count() >= 10, 10
        )
        proxy.cut()
        time.sleep(2.5)
        proxy.restore()
        wait_for(
            lambda: TaskLog.objects.filter(job_id__in=ids).completed().count() == 12, 20,
            "every job to be finished or lost",
        )  # fmt: skip
    finally:
        proxy.close()
    lost = TaskLog.objects.filter(job_id__in=ids, status="failed")
    assert lost.exists()
    for log in lost:
        assert (
            log.error_message.startswith("lost: ") and "will not run it again" in log.error_message
        )
        assert rearq_state(log.job_id)[0].status.value == "in_progress"
