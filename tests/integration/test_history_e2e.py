"""Job history end to end: real workers, compared with ReArq's rearq_job_results rows."""

from __future__ import annotations

import time
import uuid

import pytest

from harness.factories import UserFactory
from harness.waiting import wait_for
from rearq_tasks.models import TaskEvent, TaskLog
from rearq_tasks.payloads import prepare_text
from rearq_tasks.queries.history import job_history
from tests.integration.test_capture import rearq_state, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def events(job_id: str) -> list[TaskEvent]:
    """The history as the API and the admin show it (stored rows and implied ones)."""
    log = TaskLog.objects.filter(job_id=job_id).first()
    return [] if log is None else job_history(log)


def test_a_clean_first_attempt_stores_no_event_and_shows_three(worker_pool, client) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    worker_pool.start("default")
    job_id = enqueue_sync("add", 2, 3)
    log = wait_status(job_id, "success", timeout=30)
    job, results = rearq_state(job_id)
    assert len(results) == 1 and results[0].success
    history = events(job_id)
    assert [(e.id, e.attempt, e.event) for e in history] == [
        (None, 1, "enqueued"), (None, 1, "started"), (None, 1, "succeeded")
    ]  # fmt: skip
    assert history[0].timestamp == job.enqueue_time
    assert history[1].timestamp >= results[0].start_time  # the true start, after the slot
    assert history[2].timestamp == results[0].finish_time
    assert history[1].worker_id == history[2].worker_id == results[0].worker
    assert not TaskEvent.objects.filter(job_id=job_id).exists()
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    body = client.get(f"/cfg/tasks/logs/{log.pk}/events/").json()
    assert [(e["event"], e["worker_id"]) for e in body] == [(e.event, e.worker_id) for e in history]
    html = client.get(f"/admin/tasks/tasklog/{log.pk}/change/").content.decode()
    assert html.count('data-attempt="') == 1 and results[0].worker in html
    sync_task_logs(since=log.enqueue_time)  # the reconciler stores nothing either
    assert not TaskEvent.objects.filter(job_id=job_id).exists()


def test_failing_twice_then_succeeding_is_three_attempts_matching_rearq(
    worker_pool, client
) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    worker_pool.start("default", with_timer=True)
    job_id = enqueue_sync("fail_twice", uuid.uuid4().hex, api_token="tok-123")
    log = wait_status(job_id, "success", timeout=30)
    wait_for(lambda: len(events(job_id)) >= 7, 10, "seven history rows")
    job, results = rearq_state(job_id)
    assert len(results) == 3 and [r.success for r in results] == [False, False, True]
    history = events(job_id)
    assert [(e.attempt, e.event) for e in history] == [
        (1, "enqueued"), (1, "started"), (1, "retry_scheduled"), (2, "started"),
        (2, "retry_scheduled"), (3, "started"), (3, "succeeded"),
    ]  # fmt: skip
    for attempt, result in enumerate(results, start=1):  # row for row
        started, ended = [e for e in history if e.attempt == attempt and e.event != "enqueued"]
        assert started.worker_id == ended.worker_id == result.worker
        assert started.timestamp >= result.start_time  # the true start, after the slot
        assert ended.timestamp == result.finish_time
        assert ended.duration_ms == round(
            (ended.timestamp - started.timestamp).total_seconds() * 1000
        )
        if result.success:
            assert ended.error_message is None and ended.traceback is None
        else:
            # ReArq's own text of the attempt, as stored: with the secret redacted.
            assert ended.error_message == prepare_text("fail_twice", result.result)
            assert "tok-123" in result.result and "tok-123" not in ended.error_message
            assert ended.traceback.startswith("Traceback (most recent call last):")
            assert f"RuntimeError: attempt {attempt} of" in ended.traceback
            assert "tok-123" not in ended.traceback and "api_token=[redacted]" in ended.traceback
    assert history[0].timestamp == job.enqueue_time

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    body = client.get(f"/cfg/tasks/logs/{log.pk}/events/").json()
    assert [e["event"] for e in body] == [e.event for e in history]
    assert [e["worker_id"] for e in body if e["event"] == "started"] == [r.worker for r in results]
    assert [e["error_message"] for e in body if e["event"] == "retry_scheduled"] == [
        prepare_text("fail_twice", r.result) for r in results[:2]
    ]
    assert all(e["queue_wait_ms"] >= 0 for e in body if e["event"] == "started")
    html = client.get(f"/admin/tasks/tasklog/{log.pk}/change/").content.decode()
    assert html.count('data-attempt="') == 3
    assert html.count('<details class="mt-2">') == 2
    for result in results:
        assert result.worker in html
    assert "RuntimeError: attempt 1 of" in html and "RuntimeError: attempt 2 of" in html

    sync_task_logs(since=log.enqueue_time)  # the reconciler agrees: nothing added
    assert [(e.pk, e.event) for e in events(job_id)] == [(e.pk, e.event) for e in history]


def test_sigkilled_worker_leaves_started_that_reconcile_closes_as_lost(
    worker_pool, settings
) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "LOST_JOB_GRACE_SECONDS": 0}
    proc = worker_pool.start("default")
    job_id = enqueue_sync("hang", 30)
    running = wait_status(job_id, "in_progress", timeout=10)
    wait_for(lambda: [e.event for e in events(job_id)] == ["enqueued", "started"], 10, "started")
    worker_pool.kill(proc)
    wait_for(lambda: time.time() > running.start_time.timestamp() + 2.2, 5)
    assert sync_task_logs(since=running.enqueue_time).lost == 1
    history = events(job_id)
    assert [(e.attempt, e.event) for e in history] == [(1, "enqueued"), (1, "started"), (1, "lost")]
    lost = history[-1]
    assert lost.worker_id == history[1].worker_id == running.worker_id
    assert lost.error_message.startswith("lost:") and lost.duration_ms >= 2000
    sync_task_logs(since=running.enqueue_time)
    assert len(events(job_id)) == 3  # idempotent
    assert TaskLog.objects.get(job_id=job_id).status == "failed"
