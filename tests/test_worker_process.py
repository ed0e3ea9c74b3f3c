"""One real ``rearq … worker`` process: its heartbeat makes the health check pass, and the
heartbeat it leaves behind when killed makes it fail."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import time

import pytest
from django.conf import settings

from harness.processes import child_env, rearq_argv
from harness.waiting import wait_for
from rearq_tasks.ops.health import ReArqWorkers
from rearq_tasks.queue.liveness import read_workers

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def worker(rearq_redis, tmp_path):
    env = child_env(
        REARQ_TASKS_TEST_REDIS_URL=settings.REARQ_TASKS["REDIS_URL"],
        RT_WORKER_DB_URL=f"sqlite://{tmp_path / 'rearq.sqlite3'}",
    )
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        rearq_argv("tests.rearq_app:rearq", "worker", "-q", "default"),
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_real_worker_heartbeat_then_stale_after_kill(worker, rearq_redis, tmp_path) -> None:
    name = f"{socket.gethostname()}-{worker.pid}"

    def heartbeat():
        if worker.poll() is not None:
            raise AssertionError((tmp_path / "worker.log").read_text())
        return rearq_redis.hget("rearq:worker", name)

    value = json.loads(wait_for(heartbeat, 30, "the worker's heartbeat"))
    assert value["queue"] == "rearq:queue:default" and value["is_timer"] is False
    assert str(value["consumer"]) == str(worker.pid)

    ReArqWorkers(queues=("default",), expect_timer=False).run()
    state = read_workers(rearq_redis)
    assert [hb.name for hb in state.live_workers] == [name]
    assert state.live_by_queue() == {"default": 1}

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert rearq_redis.hget("rearq:worker", name), "a killed worker leaves its heartbeat behind"
    time.sleep(1.2)
    from health_check.exceptions import ServiceUnavailable

    with pytest.raises(ServiceUnavailable) as exc:
        ReArqWorkers(stale_after=dt.timedelta(seconds=1), expect_timer=False).run()
    assert "no live ReArq worker (1 stale heartbeat(s) of dead workers)" in exc.value.message
