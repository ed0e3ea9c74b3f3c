"""The workers page with a real ReArq worker: its heartbeat shows it alive with its queues
and running job; SIGKILLed, it turns dead and is flagged with the job it left in progress;
the repair fails that job as lost (ReArq never runs it again) and is audited."""

from __future__ import annotations

import json
import time

import pytest

from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import AuditEntry
from rearq_tasks.queue.workers import Query, repair_worker, workers_page
from tests.integration.test_capture import wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _row(name: str) -> dict:
    page = workers_page(Query(search=name))
    (row,) = [r for r in page["results"] if r["name"] == name]
    return row


def test_a_killed_worker_is_flagged_and_its_job_repaired(worker_pool, settings) -> None:
    from rearq_tasks.queue.connection import redis_client
    from rearq_tasks.queue.jobs import enqueue_sync

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "WORKER_STALE_SECONDS": 11}
    proc = worker_pool.start("slowq", consumer="wk-e2e")
    name = f"{worker_pool.group}-wk-e2e"
    job_id = enqueue_sync("sleep", 60.0)
    wait_status(job_id, "in_progress", timeout=30)
    wait_for(lambda: TaskLog.objects.get(job_id=job_id).worker_id == name, 15, "the job to start")

    row = _row(name)
    assert (row["alive"], row["flagged"], row["running"]) == (True, False, 1)
    assert "slowq" in row["queues"]
    assert [job["job_id"] for job in row["running_jobs"]] == [job_id]
    with pytest.raises(ValueError, match="alive"):
        repair_worker(name, source="command")

    worker_pool.kill(proc)
    beat = json.loads(redis_client().hget("rearq:worker", name))
    wait_for(lambda: time.time() - beat["ms"] / 1000 > 11.5, 20, "the heartbeat to go stale")
    row = _row(name)
    assert (row["alive"], row["flagged"], row["running"]) == (False, True, 1)
    assert workers_page(Query(state="flagged"))["count"] == 1

    report = repair_worker(name, source="command")
    assert (report.matched, report.lost, report.skipped) == (1, 1, 0)
    log = TaskLog.objects.get(job_id=job_id)
    assert (log.status, log.success) == ("failed", False)
    assert log.error_message.startswith("lost: ") and name in log.error_message
    assert _row(name)["flagged"] is False
    entry = AuditEntry.objects.get(action="repair")
    assert (entry.job_ids, entry.done, entry.source) == ([job_id], 1, "command")
