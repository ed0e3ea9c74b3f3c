"""Statistics rollups end to end: real workers write the rows, the database triggers the
rollups, and the API's rollup-served figures survive ``cleanup_task_logs``; the rollups
equal what ``rebuild_task_stats`` recomputes from the rows after each write path the
property test does not drive (reconcile after a SIGKILLed worker, ``cancel_job``, seeding).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F

from harness.factories import UserFactory
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog, TaskStat, TaskStatBin
from rearq_tasks.ops.rebuild import rebuild
from tests.integration.test_capture import wait_status
from tests.integration.test_retry_e2e import kill_a_busy_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BASE = "/cfg/tasks/logs/"
STAT_FIELDS = [f.name for f in TaskStat._meta.fields if f.name != "id"]
BIN_FIELDS = [f.name for f in TaskStatBin._meta.fields if f.name != "id"]
# The figures of a period the rollups serve whole when no row sits in its edge bucket.
URLS = (
    "stats/?period_hours=168",
    "stats/?period_hours=720",
    "timeline/?period_hours=168&interval=hour",
    "timeline/?period_hours=720&interval=day",
)


def rollups() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Both rollup tables as sorted tuples, rows that net to nothing left out (a trigger
    that adds and later subtracts a job leaves a zero row; a rebuild writes none)."""

    def table(model: Any, fields: list[str]) -> list[tuple[Any, ...]]:
        sums = [f for f in fields if f in {"jobs", "retried", "duration_count", "wait_count"}]
        rows = model.objects.values_list(*fields)
        keep = [r for r in rows if any(r[fields.index(f)] for f in sums)]
        return sorted(keep, key=lambda r: json.dumps(r, default=str))

    return table(TaskStat, STAT_FIELDS), table(TaskStatBin, BIN_FIELDS)


def assert_rollups_equal_rows() -> None:
    """What the triggers kept equals what a rebuild recomputes from the rows, exactly."""
    kept = rollups()
    assert kept[0], "no rollup rows: nothing was compared"
    rebuild()
    assert rollups() == kept


def api_figures(client: Any) -> dict[str, Any]:
    """The responses, timelines keyed by bucket and reduced to non-empty buckets (the axis
    moves with the clock between two calls; the buckets holding jobs do not)."""
    figures: dict[str, Any] = {}
    for url in URLS:
        response = client.get(BASE + url)
        assert response.status_code == 200, (url, response.content[:300])
        body = response.json()
        if url.startswith("timeline/"):
            points = body if isinstance(body, list) else body["results"]
            body = {p["timestamp"]: p for p in points if p["total"]}
            assert body, f"{url}: no bucket holds a job"
        figures[url] = body
    return figures


def superuser_client(client: Any) -> Any:
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def run_mixed_jobs() -> list[str]:
    """Successes, failures and a retried success on two queues, through a real worker."""
    from rearq_tasks.queue.jobs import enqueue_sync

    key = uuid.uuid4().hex
    jobs = [enqueue_sync("add", n, n) for n in range(4)]
    jobs += [enqueue_sync("always_fail", f"boom {n}") for n in range(2)]
    jobs += [enqueue_sync("fail_once", key), enqueue_sync("sleep", 0.05)]
    for job_id in jobs:
        wait_status(job_id, "success", "failed", timeout=40)
    assert TaskLog.objects.get(job_id=jobs[6]).job_retries >= 1  # the retry happened
    return jobs


def test_stats_and_timeline_outlive_cleanup_and_rebuild_matches(worker_pool, client) -> None:
    worker_pool.start("default", "slowq", with_timer=True)
    jobs = run_mixed_jobs()
    worker_pool.stop_all()  # no more rows (the timer's cron jobs) while figures are compared
    TaskStat.objects.all().delete()  # start from the rows alone: earlier writers' leftovers
    TaskStatBin.objects.all().delete()
    rebuild()
    # Back-date every job but the ``add`` ones by three days (a manual edit the triggers
    # follow), so cleanup --days 1 removes them while their buckets lie inside the periods.
    old = TaskLog.objects.exclude(task_name="add")
    shift = dt.timedelta(days=3)
    old.update(
        enqueue_time=F("enqueue_time") - shift,
        start_time=F("start_time") - shift,
        finish_time=F("finish_time") - shift,
    )
    assert_rollups_equal_rows()
    api = superuser_client(client)
    before = api_figures(api)
    assert before["stats/?period_hours=168"]["failed"] >= 2
    assert before["stats/?period_hours=168"]["successful"] >= 5
    tables = rollups()

    call_command("cleanup_task_logs", days="1", verbosity=0)

    assert set(TaskLog.objects.values_list("task_name", flat=True)) == {"add"}
    assert TaskLog.objects.filter(job_id__in=jobs).count() == 4
    assert rollups() == tables  # deleting rows leaves the rollups in place
    assert api_figures(api) == before
    # A rebuild over the days whose rows are whole reproduces the rollups exactly.
    rebuild(since=TaskLog.objects.order_by("enqueue_time").first().enqueue_time)
    assert rollups() == tables


def test_reconcile_after_a_sigkilled_worker_keeps_rollups_equal_to_rows(
    worker_pool, settings
) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs
    from rearq_tasks.queue.recovery import recovered_id

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "WORKER_STALE_SECONDS": 11}
    proc = worker_pool.start("slowq")
    done = enqueue_sync("sleep", 0.01)
    wait_status(done, "success", timeout=20)
    _running, waiting = kill_a_busy_worker(proc, worker_pool)
    since = TaskLog.objects.get(job_id=done).enqueue_time
    assert sync_task_logs(since=since).recovered == 2
    assert TaskLog.objects.filter(job_id__in=waiting, status="failed").count() == 2
    assert_rollups_equal_rows()
    worker_pool.start("slowq")
    for old_id in waiting:
        wait_status(recovered_id(old_id), "success", timeout=20)
    assert sync_task_logs(since=since).recovered == 0
    assert_rollups_equal_rows()


def test_cancel_job_keeps_rollups_equal_to_rows(worker_pool) -> None:
    from rearq_tasks.queue.jobs import cancel_job, enqueue_sync

    worker_pool.start("default", "slowq")
    finished = enqueue_sync("add", 1, 2)
    wait_status(finished, "success", timeout=20)
    later = enqueue_sync("add", 5, 5, countdown=600)  # waiting in the delay set
    log = wait_status(later, "deferred", "queued", timeout=20)
    cancel_job(log)
    wait_status(later, "canceled", timeout=10)
    running = enqueue_sync("sleep", 30.0)
    wait_for(lambda: TaskLog.objects.filter(job_id=running, start_time__isnull=False).exists(), 15)
    cancel_job(TaskLog.objects.get(job_id=running))
    wait_status(running, "canceled", timeout=20)
    canceled = TaskStat.objects.filter(status="canceled", span=900)
    assert sum(canceled.values_list("jobs", flat=True)) == 2
    assert_rollups_equal_rows()


@pytest.mark.django_db(transaction=True)
def test_seeding_fills_rollups_equal_to_rows() -> None:
    call_command("seed_task_logs", count="3000", days="10", seed="7", verbosity=0)
    assert TaskLog.objects.count() == 3000
    assert_rollups_equal_rows()
