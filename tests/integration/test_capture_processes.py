"""Capture across process boundaries: the plain CLI, killed workers, database outages,
two workers at once, reconciliation, ReArq's own server."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.db import connection

from harness.network import FaultProxy
from harness.processes import children_of, manage_argv, running
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from tests.integration.test_capture import assert_matches_rearq, rearq_state, row, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_plain_rearq_cli_worker_and_run_at_start(worker_pool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    worker_pool.start("default", cli=True, with_timer=True)
    job_id = enqueue_sync("add", 20, 22)
    done = wait_status(job_id, "success")
    assert done.result == "42"
    assert_matches_rearq(done)
    boot = wait_for(lambda: TaskLog.objects.filter(task_name="boot", status="success").first(), 10)
    assert boot.args == [7] and boot.result == "14"
    assert_matches_rearq(boot)


def test_killed_worker_job_becomes_lost_after_sync(worker_pool, settings) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "LOST_JOB_GRACE_SECONDS": 0}
    proc = worker_pool.start("default")
    job_id = enqueue_sync("hang", 30)
    running = wait_status(job_id, "in_progress", timeout=10)
    worker_pool.kill(proc)
    wait_for(lambda: time.time() > running.start_time.timestamp() + 2.2, 5)
    report = sync_task_logs(since=running.enqueue_time)
    assert report.lost == 1
    lost = row(job_id)
    assert lost.status == "failed" and lost.error_message.startswith("lost:")
    job, results = rearq_state(job_id)
    assert job.status.value == "in_progress" and results == []  # ReArq never finishes it
    assert sync_task_logs(since=running.enqueue_time).lost == 0  # idempotent


def test_sync_task_logs_imports_and_repairs_history(worker_pool) -> None:
    from django.core.management import call_command

    from rearq_tasks.queue.jobs import enqueue_sync

    worker_pool.start("default", "slowq", with_timer=True)
    ids = [enqueue_sync("add", i, i) for i in range(5)] + [enqueue_sync("always_fail")]
    for job_id in ids[:5]:
        wait_status(job_id, "success")
    wait_status(ids[-1], "failed", timeout=15)
    expected = {r.job_id: r for r in TaskLog.objects.filter(job_id__in=ids)}
    TaskLog.objects.filter(job_id__in=ids[:3]).delete()
    TaskLog.objects.filter(job_id=ids[3]).update(status="in_progress", result=None)
    call_command("sync_task_logs", "--batch-size", "2", verbosity=0)
    for job_id in ids:
        log = row(job_id)
        assert log.status == expected[job_id].status
        assert log.result == expected[job_id].result
        assert log.error_message == expected[job_id].error_message
        assert log.worker_id == expected[job_id].worker_id
    before = list(TaskLog.objects.filter(job_id__in=ids).values("job_id", "status", "result"))
    call_command("sync_task_logs", "--since", "1", verbosity=0)
    after = list(TaskLog.objects.filter(job_id__in=ids).values("job_id", "status", "result"))
    assert sorted(before, key=str) == sorted(after, key=str)


def test_two_workers_drain_1000_mixed_jobs_each_once(worker_pool) -> None:
    import asyncio

    from rearq_tasks.queue.client import get_rearq_client
    from rearq_tasks.queue.loop import run_sync

    worker_pool.start("default", with_timer=True)
    worker_pool.start("default")
    tasks = get_rearq_client().task_map

    async def enqueue_all() -> list[str]:
        jobs = []
        for start in range(0, 1000, 100):
            batch = []
            for i in range(start, start + 100):
                if i % 10 == 0:
                    batch.append(tasks["always_fail"].delay(reason=f"r{i}"))
                elif i % 10 == 1:
                    batch.append(tasks["fail_once"].delay(uuid.uuid4().hex))
                else:
                    batch.append(tasks["add"].delay(i, 1))
            jobs += await asyncio.gather(*batch)
        return [j.job_id for j in jobs]

    ids = run_sync(enqueue_all, timeout=120)
    wait_for(
        lambda: TaskLog.objects.filter(job_id__in=ids).completed().count() == 1000,
        180,  # ~20 s on an idle 2-core box; SQLite writers queue behind each other under load
        "1000 completed rows",
    )
    assert TaskLog.objects.filter(job_id__in=ids).count() == 1000

    async def rearq_rows() -> dict:
        from rearq.server.models import Job, JobResult

        jobs = {j.job_id: j for j in await Job.filter(job_id__in=ids)}
        latest = {}
        for r in await JobResult.filter(job_id__in=[j.id for j in jobs.values()]).order_by("id"):
            latest[r.job_id] = r
        return {jid: (j, latest.get(j.id)) for jid, j in jobs.items()}

    expected = run_sync(rearq_rows, timeout=60)
    workers = set()
    for log in TaskLog.objects.filter(job_id__in=ids):
        job, result = expected[log.job_id]
        assert (log.status, log.job_retries) == (job.status.value, job.job_retries), log.job_id
        assert log.worker_id == result.worker and log.finish_time == result.finish_time
        assert (log.result if log.status == "success" else log.error_message) == result.result
        workers.add(log.worker_id)
    assert len(workers) == 2
    assert TaskLog.objects.filter(job_id__in=ids, status="failed").count() == 100


@pytest.mark.skipif(
    os.environ.get("REARQ_TASKS_TEST_DB", "sqlite") == "sqlite",
    reason="needs a networked Django database to cut (PostgreSQL or MariaDB)",
)
def test_rows_arrive_after_django_database_outage(worker_pool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    proxy = FaultProxy(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"])
    )
    try:
        worker_pool.start("default", extra_env={"REARQ_TASKS_WORKER_DB_PORT": str(proxy.port)})
        first = enqueue_sync("add", 1, 1)
        wait_status(first, "success")
        proxy.cut()
        ids = [enqueue_sync("add", i, 2) for i in range(20)]
        # ReArq finishes them while the collector cannot write.
        wait_for(lambda: all(rearq_state(i)[0].status.value == "success" for i in ids), 20)
        time.sleep(2)
        assert TaskLog.objects.filter(job_id__in=ids, status="success").count() == 0
        proxy.restore()
        wait_for(lambda: TaskLog.objects.filter(job_id__in=ids, status="success").count() == 20, 20)
    finally:
        proxy.close()


def test_rearq_server_database_route_answers(worker_pool, unused_tcp_port) -> None:
    from django.conf import settings

    proc = worker_pool.spawn("server", manage_argv("rearq_server", "--port", str(unused_tcp_port)))
    try:
        url = f"http://127.0.0.1:{unused_tcp_port}/job/data?limit=5&offset=0"

        def get() -> int | None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status
            except OSError:
                return None

        assert wait_for(get, 20, f"{url} to answer") == 200
        assert settings.REARQ_TASKS["DB_URL"]
    finally:
        worker_pool.stop(proc, grace=10)


def test_external_collector_writes_what_workers_send(worker_pool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    env = {"REARQ_TASKS_WORKER_COLLECTOR": "external"}
    worker_pool.start("default", extra_env=env)
    job_id = enqueue_sync("add", 2, 3)
    wait_for(lambda: rearq_state(job_id)[0].status.value == "success", 10, "ReArq success")
    time.sleep(0.5)
    assert row(job_id).status == "queued"  # nobody writes the worker's events yet
    worker_pool.spawn("collector", manage_argv("rearq_collector"), extra_env=env)
    done = wait_status(job_id, "success", timeout=20)
    assert_matches_rearq(done)


def _collector_children(pid: int) -> list[int]:
    """The ``rearq_collector`` processes whose parent is ``pid`` (a worker's embedded one)."""
    found = []
    for child in children_of(pid):
        try:
            if b"rearq_collector" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def _gone(pid: int) -> bool:
    return not running(pid)


def test_embedded_collector_is_a_child_restarted_and_stopped_with_the_worker(
    worker_pool,
) -> None:
    import signal

    from rearq_tasks.queue.jobs import enqueue_sync

    proc = worker_pool.start("default")
    first = wait_for(lambda: _collector_children(proc.pid), 30)
    assert len(first) == 1, worker_pool.output()
    assert wait_status(enqueue_sync("add", 1, 2), "success").result == "3"
    os.kill(first[0], signal.SIGKILL)  # the worker restarts it; the stream kept the events
    job_id = enqueue_sync("add", 2, 3)
    second = wait_for(lambda: [p for p in _collector_children(proc.pid) if p != first[0]], 30)
    assert wait_status(job_id, "success", timeout=30).result == "5"
    worker_pool.stop(proc, grace=45)  # SIGTERM: the worker stops its collector
    assert proc.returncode == 0, worker_pool.output()
    assert wait_for(lambda: _gone(second[0]), 20)


def test_embedded_collector_stops_when_its_worker_is_killed(worker_pool) -> None:
    proc = worker_pool.start("default")
    child = wait_for(lambda: _collector_children(proc.pid), 30)[0]
    worker_pool.kill(proc)
    assert wait_for(lambda: _gone(child), 20)
