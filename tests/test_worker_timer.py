"""The timer inside ``manage.py rearq_worker --with-timer`` (:mod:`rearq_tasks.queue.timer`).

ReArq ends a failing ``TimerWorker`` silently and closes the client it shares with the worker;
the worker's next retry then fails on ``None.zadd``. Here the failing timer is started again
and the client stays open. Real Redis; ReArq's own ``TimerWorker`` machinery (lock, heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from redis.exceptions import ConnectionError as RedisConnectionError


@pytest.fixture
def quick_timer(monkeypatch, settings):
    from rearq import constants, signals
    from rearq.task import CronTask

    from rearq_tasks.queue import timer as timer_mod

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "CAPTURE_ENABLED": False}
    monkeypatch.setattr(CronTask, "_cron_tasks", dict(CronTask._cron_tasks))
    monkeypatch.setattr(signals, "_sig_handles", set(signals._sig_handles))
    monkeypatch.setattr(constants, "WORKER_HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(timer_mod, "FIRST_PAUSE_SECONDS", 0.05)
    return timer_mod


def test_a_timer_that_fails_is_started_again_and_leaves_the_client_open(
    quick_timer, monkeypatch, caplog
) -> None:
    from rearq import ReArq, signals

    worker = SimpleNamespace(_terminated=False)
    runs: list[object] = []

    async def main(self) -> None:
        runs.append(self)
        if len(runs) == 1:
            raise RedisConnectionError("Connection closed by server.")
        assert self.rearq.redis is not None  # the first timer did not close the shared client
        assert await self.rearq.redis.ping()
        worker._terminated = self._terminated = True  # the worker stops: so does its timer

    monkeypatch.setattr(quick_timer.WorkerTimer, "_main", main)
    url = django_settings.REARQ_TASKS["REDIS_URL"]

    async def go() -> ReArq:
        rearq = ReArq(redis_url=url, logs_dir=None)
        await asyncio.wait_for(quick_timer.run_timer(rearq, worker), 30)
        return rearq

    with caplog.at_level(logging.ERROR, logger="rearq_tasks.timer"):
        rearq = asyncio.run(go())
    assert len(runs) == 2 and runs[0] is not runs[1]
    assert rearq.redis is not None
    assert "the timer stopped (ConnectionError: Connection closed" in caplog.text
    # The dead timer's signal handler is gone: a SIGTERM reaches only live ones.
    assert not any(getattr(h, "__self__", None) is runs[0] for h in signals._sig_handles)


def test_a_timer_stopped_by_its_signal_is_not_restarted(quick_timer, monkeypatch) -> None:
    from rearq import ReArq

    worker = SimpleNamespace(_terminated=False)
    runs: list[object] = []

    async def main(self) -> None:
        runs.append(self)
        self._handle_sig(15)  # SIGTERM while no sleep is pending (ReArq's own would raise)

    monkeypatch.setattr(quick_timer.WorkerTimer, "_main", main)
    url = django_settings.REARQ_TASKS["REDIS_URL"]

    async def go() -> None:
        await asyncio.wait_for(
            quick_timer.run_timer(ReArq(redis_url=url, logs_dir=None), worker), 30
        )

    asyncio.run(go())
    assert len(runs) == 1


def test_the_standalone_timer_survives_a_failure_and_stops_on_sigterm(
    quick_timer, monkeypatch, caplog
) -> None:
    """``manage.py rearq_timer``: a Redis error no longer ends the process; SIGTERM (through
    ReArq's own handlers) does, during a run or during the pause before the next one."""
    from rearq import ReArq, signals

    runs: list[object] = []

    async def main(self) -> None:
        runs.append(self)
        if len(runs) < 3:
            raise RedisConnectionError("Connection closed by server.")
        signals.handle_sign(15, None)  # SIGTERM reaches the timer and the process

    monkeypatch.setattr(quick_timer.WorkerTimer, "_main", main)
    url = django_settings.REARQ_TASKS["REDIS_URL"]

    async def go() -> ReArq:
        rearq = ReArq(redis_url=url, logs_dir=None)
        await rearq.startup()
        await asyncio.wait_for(quick_timer.run_standalone(rearq), 30)
        return rearq

    with caplog.at_level(logging.ERROR, logger="rearq_tasks.timer"):
        asyncio.run(go())
    assert len(runs) == 3
    assert caplog.text.count("the timer stopped (ConnectionError") == 2
    assert not any(getattr(h, "__self__", None) in runs for h in signals._sig_handles)


def test_sigterm_during_the_pause_ends_the_standalone_timer_at_once(
    quick_timer, monkeypatch
) -> None:
    from rearq import ReArq, signals

    monkeypatch.setattr(quick_timer, "FIRST_PAUSE_SECONDS", 60.0)

    async def main(self) -> None:
        asyncio.get_running_loop().call_later(0.3, signals.handle_sign, 15, None)
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(quick_timer.WorkerTimer, "_main", main)
    url = django_settings.REARQ_TASKS["REDIS_URL"]

    async def go() -> None:
        rearq = ReArq(redis_url=url, logs_dir=None)
        await rearq.startup()
        # Well under the 60 s pause: the SIGTERM cut it short.
        await asyncio.wait_for(quick_timer.run_standalone(rearq), 20)

    asyncio.run(go())


def test_a_failed_timer_leaves_no_loop_running_beside_the_next(quick_timer, monkeypatch) -> None:
    """ReArq gathers the timer loop and the heartbeat: when one fails the other ran on, and a
    timer loop beside the restarted timer moved every due job twice (the soak's double runs).
    """
    from rearq import ReArq

    worker = SimpleNamespace(_terminated=False)
    runs: list[object] = []
    stopped: list[object] = []
    stopped_before_second: list[object] = []

    async def main(self) -> None:
        runs.append(self)
        if len(runs) == 1:
            await asyncio.sleep(0.2)
            raise RedisConnectionError("Connection closed by server.")
        stopped_before_second.extend(stopped)
        worker._terminated = self._terminated = True

    async def heartbeat(self) -> None:  # like ReArq's: beats until its timer is terminated
        try:
            while not self._terminated:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            stopped.append(self)
            raise

    monkeypatch.setattr(quick_timer.WorkerTimer, "_main", main)
    monkeypatch.setattr(quick_timer.WorkerTimer, "_heartbeat", heartbeat)
    url = django_settings.REARQ_TASKS["REDIS_URL"]

    async def go() -> None:
        await asyncio.wait_for(
            quick_timer.run_timer(ReArq(redis_url=url, logs_dir=None), worker), 30
        )

    asyncio.run(go())
    assert len(runs) == 2
    # The failed timer's heartbeat loop was stopped with it, before the next timer started
    # (not only by asyncio.run's clean-up at the end).
    assert runs[0] in stopped_before_second
