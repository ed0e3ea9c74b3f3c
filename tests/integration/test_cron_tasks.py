"""The ready-made cron tasks of docs/operations.md in a real ``rearq … worker`` (ReArq's CLI,
which imports the tasks module before Django is set up)."""

from __future__ import annotations

import pytest

from harness.factories import finished_jobs
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from rearq_tasks.ops.cron import ALERTS_TASK_NAME, CLEANUP_TASK_NAME

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(job_id: str) -> TaskLog:
    return wait_for(
        lambda: TaskLog.objects.filter(job_id=job_id, status__in=["success", "failed"]).first(),
        20,
        f"{job_id} to finish",
    )


def test_undelivered_alerts_make_a_failed_job_and_cleanup_succeeds(worker_pool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    worker_pool.start("default", cli=True)
    # The worker's settings have no ADMINS and no webhook: a firing alert cannot be sent.
    finished_jobs("send_email", 40, failed=10)
    alerts = finished(enqueue_sync(ALERTS_TASK_NAME, job_retry=0))
    assert alerts.status == "failed", worker_pool.output()
    assert "no alert channel configured" in alerts.error_message
    cleanup = finished(enqueue_sync(CLEANUP_TASK_NAME, job_retry=0))
    assert cleanup.status == "success", worker_pool.output()
    assert cleanup.result == "deleted 0 rows"
