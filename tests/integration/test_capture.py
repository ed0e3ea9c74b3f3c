"""Every ReArq transition lands in TaskLog, compared with ReArq's own rearq_job/_results rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from harness.factories import TaskLogFactory  # noqa: F401
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def rearq_state(job_id: str) -> tuple[Any, list[Any]]:
    from rearq_tasks.queue.loop import run_sync

    async def go() -> tuple[Any, list[Any]]:
        from rearq.server.models import Job, JobResult

        job = await Job.get_or_none(job_id=job_id)
        results = list(await JobResult.filter(job_id=job.id).order_by("id")) if job else []
        return job, results

    return run_sync(go)


def row(job_id: str) -> TaskLog | None:
    return TaskLog.objects.filter(job_id=job_id).first()


def wait_status(job_id: str, *statuses: str, timeout: float = 30) -> TaskLog:
    return wait_for(
        lambda: (r := row(job_id)) is not None and r.status in statuses and r,
        timeout,
        f"{job_id} to be {statuses} (now {getattr(row(job_id), 'status', None)})",
    )


def assert_matches_rearq(log: TaskLog) -> None:
    """The row agrees with ReArq's job and its latest result."""
    job, results = rearq_state(log.job_id)
    assert job is not None
    assert log.status == job.status.value
    assert log.task_name == job.task
    assert log.args == list(job.args or [])
    assert log.kwargs == dict(job.kwargs or {})
    assert log.job_retry == job.job_retry
    assert log.job_retries == job.job_retries
    assert log.enqueue_time == job.enqueue_time
    if results and log.status in ("success", "failed"):
        latest = results[-1]
        assert log.worker_id == latest.worker
        assert log.finish_time == latest.finish_time
        assert log.success is latest.success
        if log.status == "success":
            assert log.result == latest.result
        else:
            assert log.error_message == latest.result
        assert log.start_time >= latest.start_time
        assert log.duration_ms == round((log.finish_time - log.start_time).total_seconds() * 1000)


def test_enqueue_rows_queued_and_deferred_with_user(shared_worker, django_user_model) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    user = django_user_model.objects.create_user("alice")
    now_id = enqueue_sync("add", 1, 2, user=user)
    later_id = enqueue_sync("sleep", 0.1, countdown=60)
    eta_id = enqueue_sync("add", 3, 4, eta=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    later = row(later_id)
    assert (later.status, later.queue_name, later.args) == ("deferred", "slowq", [0.1])
    assert row(eta_id).status == "deferred"
    job, _ = rearq_state(later_id)
    assert later.job_retry == job.job_retry and later.job_retry_after == job.job_retry_after
    done = wait_status(now_id, "success")
    assert (done.user_id, done.queue_name, done.result) == (user.pk, "default", "3")
    assert_matches_rearq(done)


def test_in_progress_while_running_then_success(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("sleep", 2)
    running = wait_status(job_id, "in_progress", timeout=10)
    assert running.start_time is not None and running.worker_id.startswith("tests-")
    job, results = rearq_state(job_id)
    assert job.status.value == "in_progress" and results == []
    done = wait_status(job_id, "success")
    assert done.result == "2" and done.duration_ms >= 1900
    assert_matches_rearq(done)


def test_retry_keeps_one_row_and_counts_attempts(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("fail_once", uuid.uuid4().hex)
    deferred = wait_status(job_id, "deferred", "success", timeout=10)
    if deferred.status == "deferred":
        assert deferred.job_retries == 1 and "first attempt" in deferred.error_message
        assert deferred.success is None
    done = wait_status(job_id, "success", timeout=15)
    assert done.job_retries == 1 and done.result == "ok on attempt 2"
    assert TaskLog.objects.filter(job_id=job_id).count() == 1
    assert_matches_rearq(done)


def test_final_failure(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("always_fail", reason="no luck")
    done = wait_status(job_id, "failed", timeout=15)
    assert done.success is False and "no luck" in done.error_message and done.job_retries == 1
    assert done.is_failed and done.finish_time is not None
    assert_matches_rearq(done)


def test_expired_before_run(shared_worker) -> None:
    from rearq_tasks.queue.client import get_rearq_client
    from rearq_tasks.queue.loop import run_sync

    task = get_rearq_client().task_map["add"]
    past = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    job = run_sync(lambda: task.delay(1, 1, expire=past))
    done = wait_status(job.job_id, "expired")
    assert done.success is False and done.is_failed
    assert_matches_rearq(done)


def test_cancel_running_job(shared_worker) -> None:
    from rearq_tasks.queue.jobs import cancel_job, enqueue_sync

    job_id = enqueue_sync("sleep", 20)
    running = wait_status(job_id, "in_progress", timeout=10)
    cancel_job(running)
    done = wait_status(job_id, "canceled")
    wait_for(lambda: rearq_state(job_id)[0].status.value == "canceled", 10, "rearq_job canceled")
    job, results = rearq_state(job_id)
    assert results == []  # ReArq writes no result for a cancelled job
    assert done.finish_time is not None and done.is_completed
    with pytest.raises(ValueError, match="already canceled"):
        cancel_job(done)


def test_cancel_that_does_not_land_keeps_the_real_outcome(shared_worker) -> None:
    """Found by the soak: the row said canceled while ReArq ran the job to success."""
    from rearq_tasks.queue.jobs import cancel_job, enqueue_sync

    job_id = enqueue_sync("stubborn", 20)
    running = wait_status(job_id, "in_progress", timeout=10)
    cancel_job(running)
    assert row(job_id).status == "in_progress"  # its worker reports what happened
    # ReArq's table is left to the worker too: had ReArq been unable to save the outcome
    # (Redis restarting), it would otherwise claim a cancel that never happened.
    assert rearq_state(job_id)[0].status.value == "in_progress"
    done = wait_status(job_id, "success", "canceled", timeout=10)
    assert (done.status, done.result) == ("success", "finished anyway")
    assert_matches_rearq(done)


def test_cancel_refuses_a_job_rearq_already_finished(shared_worker) -> None:
    from rearq_tasks.queue.jobs import cancel_job, enqueue_sync

    job_id = enqueue_sync("add", 1, 1)
    wait_status(job_id, "success")
    TaskLog.objects.filter(job_id=job_id).update(status="queued")  # capture lagging behind
    with pytest.raises(ValueError, match="already success"):
        cancel_job(row(job_id))
    assert rearq_state(job_id)[0].status.value == "success"
    assert row(job_id).status == "queued"


def test_cancel_deferred_job_never_runs(shared_worker) -> None:
    import redis
    from django.conf import settings

    from rearq_tasks.queue.jobs import cancel_job, enqueue_sync

    job_id = enqueue_sync("add", 5, 5, countdown=1)
    cancel_job(row(job_id))
    r = redis.Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
    assert not any(job_id in m for m in r.zrange("rearq:queue:delay:0", 0, -1))
    job, _ = rearq_state(job_id)
    assert job.status.value == "canceled"
    import time

    time.sleep(2.5)
    assert row(job_id).status == "canceled"
    assert rearq_state(job_id)[1] == []


def test_cron_jobs_get_full_rows(shared_worker) -> None:
    tick = wait_for(lambda: TaskLog.objects.filter(task_name="tick", status="success").first(), 10)
    assert tick.queue_name == "default" and tick.worker_id and tick.start_time
    assert_matches_rearq(tick)


def test_task_not_registered_on_worker_is_an_error(shared_worker) -> None:
    from rearq_tasks.queue.jobs import retry_job

    ghost = TaskLog.objects.create(
        job_id=uuid.uuid4().hex, task_name="ghost", queue_name="default", status="failed",
        enqueue_time=dt.datetime.now(dt.UTC), args=[1],
    )  # fmt: skip
    new_id = retry_job(ghost)
    done = wait_status(new_id, "failed")
    assert "not registered" in done.error_message and done.worker_id
    job, results = rearq_state(new_id)
    assert job.status.value == "in_progress"  # ReArq's own row stays wrong
    assert results[-1].result == "task not found"


def test_retry_job_reenqueues_same_task_and_args(shared_worker, django_user_model) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, retry_job

    user = django_user_model.objects.create_user("bob")
    job_id = enqueue_sync("always_fail", reason="again")
    failed = wait_status(job_id, "failed", timeout=15)
    with pytest.raises(ValueError, match="only failed"):
        retry_job(TaskLog(job_id="x", status="in_progress", task_name="add"))
    new_id = retry_job(failed, user=user)
    new = row(new_id)
    assert new_id != job_id
    assert (new.task_name, new.args, new.kwargs, new.queue_name, new.user_id) == (
        failed.task_name, failed.args, failed.kwargs, failed.queue_name, user.pk
    )  # fmt: skip
    assert wait_status(new_id, "failed", timeout=15).error_message
