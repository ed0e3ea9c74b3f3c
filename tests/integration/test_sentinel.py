"""ReArq's Redis through Sentinel, for real: a primary, a replica and a sentinel of our own.

The test process and the worker process both get ``REDIS_SENTINELS`` and a ``REDIS_URL`` on a
port nothing listens on, so anything that still used the URL would fail. Capture, retry,
health and liveness go through the sentinel, and one test fails the primary over while the
worker runs jobs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from harness.processes import WorkerPool
from harness.sentinel import (
    MASTER_NAME,
    SentinelCluster,
    free_port,
    redis_server_binary,
)
from harness.waiting import wait_for
from rearq_tasks.models import TaskLog
from tests.integration.conftest import flush_redis, new_worker_pool, remove_what_workers_wrote
from tests.integration.test_capture import rearq_state, row, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

UNUSED_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: the URL must not be used


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    if redis_server_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed: the Sentinel tests need it in CI")
        pytest.skip("redis-server is not installed")
    cluster = SentinelCluster(tmp_path_factory.mktemp("sentinel")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def through_sentinel(cluster: SentinelCluster, capture_settings: None) -> Iterator[Any]:
    """This process's ReArq client built from ``REDIS_SENTINELS`` (``queue/client._build``).

    ReArq keeps its task registry on the class, so the tasks ``tests.integration.jobs``
    registered on the URL client are pointed at the new client for the module, as a project
    that configured Sentinel from the start would have them.
    """
    from rearq_tasks.queue.client import get_rearq_client, reset_client

    options = {
        **django_settings.REARQ_TASKS,
        "REDIS_URL": UNUSED_URL,
        "REDIS_SENTINELS": cluster.sentinels,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
    }
    with override_settings(REARQ_TASKS=options):
        reset_client()
        client = get_rearq_client()
        saved = {name: (task.rearq, task.redis) for name, task in client.task_map.items()}
        for task in client.task_map.values():
            task.rearq, task.redis = client, client.redis
        try:
            yield client
        finally:
            reset_client()
    # The URL client's connections belonged to the loop reset_client() stopped: the tasks go to
    # a client built afresh from the restored settings, as the tests that follow expect.
    fresh = get_rearq_client()
    for name in saved:
        fresh.task_map[name].rearq, fresh.task_map[name].redis = fresh, fresh.redis


@pytest.fixture(scope="module")
def sentinel_worker(
    through_sentinel: Any,
    cluster: SentinelCluster,
    rearq_services: None,
    django_db_setup: None,
    django_db_blocker: Any,
) -> Iterator[WorkerPool]:
    """One worker + timer for the module, configured only through the sentinel."""
    flush_redis()
    with django_db_blocker.unblock():
        pool = new_worker_pool()
    env = {
        "REARQ_TASKS_TEST_REDIS_URL": UNUSED_URL,
        "REARQ_TASKS_WORKER_SENTINELS": ",".join(cluster.sentinels),
        "REARQ_TASKS_WORKER_SENTINEL_MASTER": MASTER_NAME,
    }
    pool.start("default", "slowq", with_timer=True, extra_env=env, consumer="sentinel")
    yield pool
    pool.stop_all()
    with django_db_blocker.unblock():
        remove_what_workers_wrote()  # the timer's cron jobs outlive each test's flush


def test_job_is_captured_through_the_sentinel(sentinel_worker: WorkerPool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    job_id = enqueue_sync("add", 2, 3)
    done = wait_status(job_id, "success")
    job, results = rearq_state(job_id)
    assert (done.result, done.worker_id) == ("5", results[-1].worker)
    assert job.status.value == "success"


def test_retry_job_through_the_sentinel(sentinel_worker: WorkerPool) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync, retry_job

    job_id = enqueue_sync("always_fail", reason="through sentinel")
    failed = wait_status(job_id, "failed", timeout=45)
    new_id = retry_job(failed)
    again = wait_status(new_id, "failed", timeout=45)
    assert new_id != job_id
    assert (again.task_name, again.kwargs) == ("always_fail", {"reason": "through sentinel"})
    job, _ = rearq_state(new_id)
    assert job.kwargs == {"reason": "through sentinel"}
    assert "through sentinel" in again.error_message


def test_health_and_liveness_through_the_sentinel(sentinel_worker: WorkerPool) -> None:
    from health_check.exceptions import ServiceUnavailable

    from rearq_tasks.ops.health import ReArqRedis, ReArqWorkers
    from rearq_tasks.queue.jobs import enqueue_sync
    from rearq_tasks.queue.liveness import read_workers, redis_client

    # Redis knows a stream's consumer once a message was delivered to it.
    for job_id in (enqueue_sync("add", 1, 1), enqueue_sync("sleep", 0.01)):
        wait_status(job_id, "success")
    ReArqRedis().run()
    ReArqWorkers(queues=("default", "slowq"), expect_timer=True).run()
    client = redis_client()
    try:
        state = read_workers(client, stale_after=30, queues=("default", "slowq"))
    finally:
        client.close()
    assert "tests-sentinel" in {beat.name for beat in state.live_workers}
    assert state.timer_alive
    assert "sentinels 127.0.0.1:" in repr(ReArqRedis())
    closed = {**django_settings.REARQ_TASKS, "REDIS_SENTINELS": [f"127.0.0.1:{free_port()}"]}
    with override_settings(REARQ_TASKS=closed), pytest.raises(ServiceUnavailable):
        ReArqRedis().run()


def _enqueue_while(stop: threading.Event, started: list[str], refused: list[str]) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    n = 0
    while not stop.is_set():
        n += 1
        try:
            started.append(enqueue_sync("add", n, 0))
        except Exception as exc:  # Redis switching primaries: the caller is told
            refused.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)


def test_failover_mid_run_loses_nothing_captured(
    sentinel_worker: WorkerPool, cluster: SentinelCluster
) -> None:
    """``SENTINEL FAILOVER`` while the worker runs a stream of jobs.

    What the product guarantees: the worker, its capture and this process's client follow
    the new primary; every job enqueued after the switch is captured with no help; no row
    captured before moves or disappears. Stream entries written to the old primary after the
    replica took over are discarded by Redis (asynchronous replication), so a few events of
    jobs running across the switch may be lost: ``sync_task_logs`` is the backstop that
    brings every such row to ReArq's own record.
    """
    from rearq_tasks.ops.health import ReArqRedis
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    before = [enqueue_sync("add", i, 1) for i in range(10)]
    for job_id in before:
        wait_status(job_id, "success")
    snapshot = dict(TaskLog.objects.filter(job_id__in=before).values_list("job_id", "status"))
    old_port = cluster.master_port()

    stop, during, refused = threading.Event(), [], []
    feeder = threading.Thread(target=_enqueue_while, args=(stop, during, refused), daemon=True)
    feeder.start()
    try:
        cluster.failover()
    finally:
        stop.set()
        feeder.join(10)
    assert cluster.master_port() != old_port
    assert sentinel_worker.procs["sentinel"].poll() is None, sentinel_worker.output()

    after = {enqueue_sync("add", i, 2): str(i + 2) for i in range(10)}
    for job_id, result in after.items():
        assert wait_status(job_id, "success", timeout=20).result == result
    assert (
        dict(TaskLog.objects.filter(job_id__in=before).values_list("job_id", "status")) == snapshot
    )

    sync_task_logs(since=min(row(job_id).enqueue_time for job_id in before))
    assert during, refused  # jobs were enqueued while the primaries switched
    for job_id in during:
        job, _ = rearq_state(job_id)
        assert row(job_id).status == job.status.value, job_id
    ReArqRedis().run()
    # Heartbeats sent to the old primary in its last seconds are gone with it: the next ones
    # (every 10 s) land on the new primary.
    wait_for(lambda: _workers_healthy(), 15, "the worker and timer heartbeats")


def _workers_healthy() -> bool:
    from health_check.exceptions import HealthCheckException

    from rearq_tasks.ops.health import ReArqWorkers

    try:
        ReArqWorkers(queues=("default", "slowq"), expect_timer=True).run()
    except HealthCheckException:
        return False
    return True
