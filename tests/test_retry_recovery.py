"""Retry runs ReArq's original arguments; jobs a dead worker fetched but never started are
re-enqueued once. Real Redis and ReArq's own tables (no worker: see
tests/integration/test_retry_e2e.py for the runs themselves)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog
from rearq_tasks.payloads import REDACTED, TRUNCATED_KEY
from rearq_tasks.queue.jobs import retry_job, sync_task_logs
from rearq_tasks.queue.loop import run_sync
from rearq_tasks.queue.recovery import recovered_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

QUEUE = "recovery-tests"
STREAM = f"rearq:queue:{QUEUE}"
SECRET = {"password": "hunter2", "to": "a@example.com"}


@pytest.fixture(autouse=True)
def clean_rearq(rearq_redis) -> Any:
    """ReArq's tables empty: reconcile scans all of them (other tests leave jobs behind)."""

    async def clear() -> None:
        from rearq.server.models import Job, JobResult

        await JobResult.all().delete()
        await Job.all().delete()

    run_sync(clear)
    yield rearq_redis
    run_sync(clear)


def rearq_job(
    job_id: str, args: list, kwargs: dict, status: str = "in_progress", results: int = 0,
    retries: int = 0, age: dt.timedelta = dt.timedelta(hours=1), job_retry: int = 0,
) -> None:  # fmt: skip
    """A row of ``rearq_job`` (and ``results`` rows of ``rearq_job_results``) as ReArq writes."""

    async def go() -> None:
        from rearq.server.models import Job, JobResult

        enqueued = timezone.now() - age
        job = await Job.create(
            task="send_email", args=args, kwargs=kwargs, job_retry=job_retry, job_retries=retries,
            job_retry_after=60, job_id=job_id, enqueue_time=enqueued, status=status,
        )  # fmt: skip
        for _ in range(results):
            await JobResult.create(
                job=job, worker="tests-gone", msg_id="1-0", success=False, result="boom",
                start_time=enqueued, finish_time=enqueued,
            )  # fmt: skip

    run_sync(go)


def rearq_args(job_id: str) -> tuple[list, dict] | None:
    async def go() -> tuple[list, dict] | None:
        from rearq.server.models import Job

        job = await Job.get_or_none(job_id=job_id)
        return None if job is None else (job.args, job.kwargs)

    return run_sync(go)


def failed_log(**fields: Any) -> TaskLog:
    defaults = {
        "queue_name": QUEUE, "status": StatusChoices.FAILED, "success": False,
        "args": [1], "kwargs": {"password": REDACTED, "to": "a@example.com"},
    }  # fmt: skip
    return TaskLogFactory(**{**defaults, **fields})


def unstarted_log(job_id: str, age: dt.timedelta = dt.timedelta(hours=1)) -> TaskLog:
    """A job a worker fetched: capture saw it enqueued, never started."""
    return TaskLogFactory(
        job_id=job_id, queue_name=QUEUE, status=StatusChoices.QUEUED,
        kwargs={"password": REDACTED}, enqueue_time=timezone.now() - age,
    )  # fmt: skip


def stream_job_ids(client: Any) -> list[str]:
    return [fields["job_id"] for _, fields in client.xrange(STREAM)]


# --- retry ------------------------------------------------------------------------------------
def test_retry_runs_the_original_arguments_from_rearq_not_the_redacted_copy(clean_rearq) -> None:
    log = failed_log()
    rearq_job(log.job_id, [1], SECRET, status="failed", results=1)
    new_id = retry_job(log)
    assert rearq_args(new_id) == ([1], SECRET)
    assert stream_job_ids(clean_rearq) == [new_id]
    new = TaskLog.objects.get(job_id=new_id)
    assert new.retry_of == log.job_id and new.status == StatusChoices.QUEUED
    assert new.kwargs["password"] == REDACTED  # the stored copy stays redacted


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ([1], {"password": REDACTED}),
        ([f"token={REDACTED}"], {}),
        ({TRUNCATED_KEY: True, "original_bytes": 70000, "preview": "[1,"}, {}),
        ([], {"blob": {TRUNCATED_KEY: True, "original_bytes": 9, "preview": ""}}),
    ],
)
def test_retry_refuses_a_lossy_copy_when_rearq_forgot_the_job(clean_rearq, args, kwargs) -> None:
    log = failed_log(args=args, kwargs=kwargs)
    with pytest.raises(ValueError, match="redacted or truncated"):
        retry_job(log)
    assert stream_job_ids(clean_rearq) == []
    assert TaskLog.objects.count() == 1


def test_retry_uses_a_clean_copy_when_rearq_forgot_the_job(clean_rearq) -> None:
    log = failed_log(args=[1, "two"], kwargs={"to": "a@example.com"})
    new_id = retry_job(log)
    assert rearq_args(new_id) == ([1, "two"], {"to": "a@example.com"})
    assert TaskLog.objects.get(job_id=new_id).retry_of == log.job_id


def test_the_link_shows_in_the_api_and_both_admin_pages(client, clean_rearq) -> None:
    log = failed_log(kwargs={"to": "x"})
    new = TaskLog.objects.get(job_id=retry_job(log))
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get(f"/cfg/tasks/logs/{new.pk}/").json()["retry_of"] == log.job_id
    assert client.get(f"/cfg/tasks/logs/{log.pk}/").json()["retry_of"] is None
    new_page = client.get(reverse("admin:tasks_tasklog_change", args=[new.pk])).content.decode()
    old_url = reverse("admin:tasks_tasklog_change", args=[log.pk])
    assert "retry of" in new_page and f'href="{old_url}"' in new_page
    old_page = client.get(old_url).content.decode()
    new_url = reverse("admin:tasks_tasklog_change", args=[new.pk])
    assert "run again as" in old_page and f'href="{new_url}"' in old_page


# --- recovery of jobs ReArq dropped -----------------------------------------------------------
def test_a_fetched_never_started_job_is_reenqueued_once_with_its_original_arguments(
    clean_rearq,
) -> None:
    old = unstarted_log("dropped-1")
    rearq_job(old.job_id, [], SECRET)
    report = sync_task_logs()
    assert (report.recovered, report.lost) == (1, 0)
    new_id = recovered_id(old.job_id)
    assert stream_job_ids(clean_rearq) == [new_id]
    assert rearq_args(new_id) == ([], SECRET)
    old.refresh_from_db()
    assert old.status == StatusChoices.FAILED and old.success is False
    assert old.error_message.startswith("lost before it started") and new_id in old.error_message
    lost = TaskEvent.objects.get(job_id=old.job_id)
    assert (lost.event, lost.attempt, lost.error_message) == ("lost", 1, old.error_message)
    new = TaskLog.objects.get(job_id=new_id)
    assert (new.retry_of, new.status, new.queue_name) == (old.job_id, "queued", QUEUE)
    # Re-running sync changes nothing: no second job, no second message.
    assert sync_task_logs().recovered == 0
    assert stream_job_ids(clean_rearq) == [new_id]
    assert TaskLog.objects.count() == 2


def test_two_syncs_at_once_enqueue_the_rerun_once(clean_rearq) -> None:
    for i in range(5):
        unstarted_log(f"dropped-c{i}")
        rearq_job(f"dropped-c{i}", [i], {})
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda: reports.append(sync_task_logs())) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(reports) == 2
    expected = sorted(recovered_id(f"dropped-c{i}") for i in range(5))
    assert sorted(stream_job_ids(clean_rearq)) == expected  # each message once
    assert (
        sorted(TaskLog.objects.filter(retry_of__isnull=False).values_list("job_id", flat=True))
        == expected
    )
    assert TaskEvent.objects.filter(event="lost").count() == 5


def test_a_rerun_created_by_an_earlier_sync_is_not_queued_again(clean_rearq) -> None:
    """A sync that died after creating the re-run: the next one only writes the rows."""
    from rearq_tasks.queue.requeue import enqueue_again

    old = unstarted_log("dropped-2")
    rearq_job(old.job_id, [7], {})
    new_id = recovered_id(old.job_id)

    async def earlier_sync() -> None:
        from rearq_tasks.queue.client import get_rearq_client

        await enqueue_again(get_rearq_client().redis, STREAM, new_id, "send_email", [7], {}, 0, 60)

    run_sync(earlier_sync)
    assert sync_task_logs().recovered == 1
    assert stream_job_ids(clean_rearq) == [new_id]
    assert TaskLog.objects.get(job_id=new_id).retry_of == old.job_id


def test_a_job_lost_mid_run_is_never_rerun(clean_rearq) -> None:
    started = timezone.now() - dt.timedelta(hours=1)
    old = TaskLogFactory(job_id="midrun", queue_name=QUEUE, status="in_progress",
                         start_time=started, worker_id="tests-gone")  # fmt: skip
    rearq_job(old.job_id, [1], {})
    report = sync_task_logs()
    assert (report.recovered, report.lost) == (0, 1)
    assert stream_job_ids(clean_rearq) == []
    old.refresh_from_db()
    assert old.status == "failed" and old.error_message.startswith("lost:")


def test_a_job_with_a_result_for_its_attempt_is_not_dropped(clean_rearq) -> None:
    """ReArq's own ``task not found`` leaves the job in progress with a result: it ran."""
    old = unstarted_log("ran-once")
    rearq_job(old.job_id, [1], {}, results=1)
    assert sync_task_logs().recovered == 0
    assert stream_job_ids(clean_rearq) == []


def test_a_retry_attempt_without_its_result_is_dropped(clean_rearq) -> None:
    old = unstarted_log("attempt-2")
    rearq_job(old.job_id, [1], {}, results=1, retries=1)
    assert sync_task_logs().recovered == 1


def test_recovery_off_only_marks_the_job_lost(clean_rearq, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "RECOVER_UNSTARTED_JOBS": False}
    old = unstarted_log("dropped-off")
    rearq_job(old.job_id, [1], {})
    report = sync_task_logs()
    assert (report.recovered, report.lost) == (0, 1)
    assert stream_job_ids(clean_rearq) == []
    old.refresh_from_db()
    assert old.error_message.startswith("lost:")


def heartbeat(client: Any, age_s: float) -> None:
    ms = int((time.time() - age_s) * 1000)
    value = {"queue": STREAM, "is_timer": False, "ms": ms, "group": "g", "consumer": "c"}
    client.hset("rearq:worker", "g-c", json.dumps(value))


def test_a_recent_job_waits_while_a_worker_is_alive(clean_rearq) -> None:
    """A live worker may still hold it in memory: only a long-overdue one is dropped."""
    old = unstarted_log("recent", age=dt.timedelta(minutes=1))
    rearq_job(old.job_id, [1], {}, age=dt.timedelta(minutes=1))
    heartbeat(clean_rearq, age_s=1)
    report = sync_task_logs()
    assert (report.recovered, report.lost) == (0, 0)
    assert TaskLog.objects.get(job_id="recent").status == "in_progress"


def test_a_recent_job_is_recovered_at_once_when_every_worker_is_dead(clean_rearq) -> None:
    old = unstarted_log("recent-dead", age=dt.timedelta(minutes=1))
    rearq_job(old.job_id, [1], {}, age=dt.timedelta(minutes=1))
    heartbeat(clean_rearq, age_s=600)  # SIGKILLed ten minutes ago
    assert sync_task_logs().recovered == 1
    assert stream_job_ids(clean_rearq) == [recovered_id("recent-dead")]


def test_the_rerun_id_is_the_same_for_every_sync_and_distinct_per_job() -> None:
    job_id = uuid.uuid4().hex
    assert recovered_id(job_id) == recovered_id(job_id) != recovered_id(job_id + "x")
    assert len(recovered_id(job_id)) == 32


def test_a_job_already_failed_as_lost_before_its_start_is_recovered(clean_rearq) -> None:
    """The capture fails a fetched job at once when ReArq's own code failed before its start
    (Redis away): ReArq never runs it, so it is re-run like any dropped job."""
    old = TaskLogFactory(
        job_id="lost-early", queue_name=QUEUE, status="failed", success=False,
        error_message="lost: worker w failed before the job started (ConnectionError: x)",
    )  # fmt: skip
    rearq_job(old.job_id, [3], {})
    assert sync_task_logs().recovered == 1
    old.refresh_from_db()
    assert old.error_message.startswith("lost before it started")
    assert sync_task_logs().recovered == 0


def test_a_fetched_retry_whose_first_attempt_the_capture_saw_is_recovered(clean_rearq) -> None:
    """The capture saw attempt 1 fail (row deferred, attempt 1's start); a worker fetched the
    retry and died before starting it. Reconcile writes ReArq's in-progress state: attempt
    1's start must not stay in the row, or the retry passes for started and is only failed
    as lost mid-run instead of re-run."""
    from rearq_tasks.capture.events import to_ms
    from rearq_tasks.capture.upsert import upsert_records

    enqueued = timezone.now() - dt.timedelta(hours=1)
    upsert_records([{
        "job_id": "retry-fetched", "task_name": "send_email", "queue_name": QUEUE,
        "args": [1], "kwargs": {}, "status": "deferred", "job_retry": 1, "job_retries": 1,
        "enqueue_time": to_ms(enqueued), "start_time": to_ms(enqueued), "worker_id": "w-1",
        "duration_ms": 0, "error_message": "boom",
    }])  # fmt: skip
    rearq_job("retry-fetched", [1], {}, results=1, retries=1, job_retry=3)
    report = sync_task_logs()
    assert (report.recovered, report.lost) == (1, 0)
    old = TaskLog.objects.get(job_id="retry-fetched")
    assert old.error_message.startswith("lost before it started") and old.start_time is None
    assert stream_job_ids(clean_rearq) == [recovered_id("retry-fetched")]
    # Attempt 1 ran: the re-run has the 2 retries the job had left, not a fresh 3.
    rerun = TaskLog.objects.get(job_id=recovered_id("retry-fetched"))
    assert (rerun.job_retry, rerun.job_retries, rerun.retry_of) == (2, 0, "retry-fetched")
