"""``manage.py rearq_timer`` as a real process against a private redis-server that restarts.

ReArq's ``TimerWorker`` ends on a Redis error; the standalone command used to exit with it,
leaving delayed jobs, retries and cron to its process manager. It now starts its timer again
in the same process (``rearq_tasks.queue.timer.run_standalone``), frees the timer lock its
failed timer could not release (the key survives the restart in the append-only file, and a
new timer would wait for it for ever), and stops on SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from harness.network import RedisServer
from harness.processes import WORKERS_KEY, ProcessPool, manage_argv
from harness.waiting import wait_for
from tests.integration.conftest import process_logdir, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def timer_beats(client) -> bool:
    try:
        return any("timer" in key for key in client.hgetall(WORKERS_KEY))
    except Exception:  # Redis still coming back
        return False


def test_the_standalone_timer_outlives_a_redis_restart_and_stops_on_sigterm(tmp_path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    pool = ProcessPool(
        process_logdir(),
        worker_env(REARQ_TASKS_WORKER_REDIS_URL=server.url, PYTHONFAULTHANDLER="1"),
    )
    try:
        proc = pool.spawn("timer", manage_argv("rearq_timer"), log="standalone-timer.log")
        client = server.client()
        wait_for(lambda: timer_beats(client), 30, "the timer's first heartbeat")
        server.restart(1)
        client.delete(WORKERS_KEY)  # the heartbeat from before the restart (append-only file)
        wait_for(lambda: timer_beats(client), 60, f"a heartbeat after the restart\n{pool.output()}")
        assert proc.poll() is None, pool.output()
        assert "the timer stopped" in pool.output()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:  # show where it hangs: faulthandler dumps on SIGABRT
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            raise AssertionError(f"the timer ignored SIGTERM:\n{pool.output(20000)}") from None
        assert proc.returncode == 0, pool.output()
    finally:
        pool.stop_all()
        server.stop()
