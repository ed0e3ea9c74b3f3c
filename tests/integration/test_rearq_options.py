"""ReArq's per-call and per-task retry options, honoured by a real worker and timer.

ReArq 0.2.9 turns ``job_retry=0`` into the default (``0 or default``), stores 60 s as every
job's ``job_retry_after`` and schedules retries after the worker's value; the client
corrects all three (docs/capture.md, "ReArq's retry options").
"""

from __future__ import annotations

import uuid

import pytest

from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from tests.integration.test_capture import rearq_state

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(job_id: str, status: str, timeout: float = 20) -> TaskLog:
    return wait_for(
        lambda: TaskLog.objects.filter(job_id=job_id, status=status).first(),
        timeout,
        f"{job_id} to be {status}",
    )


def retry_gap(job_id: str) -> float:
    """Seconds between the end of the first attempt and the start of the second (ReArq's)."""
    _, results = rearq_state(job_id)
    assert len(results) == 2, results
    return (results[1].start_time - results[0].finish_time).total_seconds()


def test_task_level_job_retry_zero_means_no_retry(shared_worker) -> None:
    from rearq_tasks.queue.client import get_rearq_client
    from rearq_tasks.queue.jobs import enqueue_sync

    assert get_rearq_client().task_map["never_retry"].job_retry == 0
    job_id = enqueue_sync("never_retry", reason="stop")
    row = finished(job_id, "failed")
    job, results = rearq_state(job_id)
    assert (row.job_retry, row.job_retries, job.job_retry, len(results)) == (0, 0, 0, 1)


def test_enqueue_options_go_to_rearq_not_to_the_task(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("fail_once", uuid.uuid4().hex, job_retry=1, job_retry_after=3)
    row = finished(job_id, "success")
    job, _ = rearq_state(job_id)
    assert row.kwargs == {} and row.result == "ok on attempt 2"
    assert (job.job_retry, job.job_retry_after, row.job_retry_after) == (1, 3, 3)
    assert retry_gap(job_id) >= 2.5  # the worker's own JOB_RETRY_AFTER is 1 s


def test_enqueue_job_retry_zero_overrides_the_task(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("always_fail", reason="no second try", job_retry=0)
    row = finished(job_id, "failed")
    job, results = rearq_state(job_id)
    assert (job.job_retry, row.job_retries, len(results)) == (0, 0, 1)


def test_task_level_job_retry_after_is_honoured(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("fail_once_slowly", uuid.uuid4().hex)
    row = finished(job_id, "success", timeout=25)
    assert row.job_retry_after == 4
    assert retry_gap(job_id) >= 3.5


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((1, 2), {"job_retry_afer": 1}, "job_retry_afer"),  # a misspelt ReArq option
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
    ],
    ids=["unknown-keyword", "missing", "too-many"],
)
def test_arguments_the_task_cannot_take_are_a_type_error_and_enqueue_nothing(
    shared_worker, args, kwargs, named
) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    before = TaskLog.objects.count()
    with pytest.raises(TypeError, match=named) as error:
        enqueue_sync("add", *args, **kwargs)
    assert "task 'add'" in str(error.value)
    assert TaskLog.objects.count() == before


def test_the_tasks_own_keywords_reach_it(shared_worker) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("always_fail", reason="kept", job_retry=0)
    row = finished(job_id, "failed")
    assert row.kwargs == {"reason": "kept"} and "kept" in row.error_message
