"""The timer of a worker process (``manage.py rearq_worker --with-timer``), kept alive.

ReArq's ``TimerWorker`` shares the worker's client. When its loop fails (Redis switching
primaries behind a Sentinel, a connection reset), ReArq ends it without a word: its
``finally`` closes the *shared* client (``rearq.redis`` becomes None) and the timer lock's
release error hides the cause. The process keeps running, but nothing moves delayed jobs,
retries or cron any more, and the worker's next retry fails on ``None.zadd`` — the job is
left ``in_progress`` in ReArq for ever. Measured in the Sentinel failover test.

Here the timer never closes the client (the worker, which owns it, does when it stops), and
a timer that stops while its worker runs is logged and started again, with a growing pause.
A standalone ``manage.py rearq_timer`` is kept alive the same way (:func:`run_standalone`):
it used to exit on a Redis restart, leaving retries, delayed jobs and cron to its process
manager's restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rearq import constants, signals
from rearq.worker import TimerWorker
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError

from rearq_tasks.queue.loop import close_running_loop
from rearq_tasks.redaction import redact_text

logger = logging.getLogger("rearq_tasks.timer")

FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 30.0


class WorkerTimer(TimerWorker):
    """A ``TimerWorker`` that leaves the shared client to its worker, and whose timer lock a
    later timer of the same process can free.

    ReArq's lock (``rearq:timer:lock``) has no expiry. A timer that fails because Redis went
    away cannot release it; after a restart with persistence the key is still there and a
    new timer would wait for it for ever (SIGTERM included). ``stale_token`` is the token the
    previous timer of this process held: it is released (compare-and-delete, so only that
    lock) while the new timer waits.
    """

    def __init__(self, rearq: Any, stale_token: bytes | None = None) -> None:
        super().__init__(rearq)
        self.lock_token: bytes | None = None
        self._stale_token = stale_token

    async def run(self) -> None:
        """ReArq's ``TimerWorker.run``, with the lock's token kept and the wait interruptible."""
        lock = Lock(self._redis, name=constants.WORKER_KEY_TIMER_LOCK)
        try:
            while not await lock.acquire(blocking_timeout=1):
                if self._terminated:
                    return
                await self._free_stale(lock)
            self.lock_token = lock.local.token
            try:
                await self._run_loops()
            finally:
                await lock.release()
            self.lock_token = None  # released: nothing for the next timer to free
        except LockNotOwnedError:
            self.lock_token = None
        finally:
            if self._sub_task:
                self._sub_task.cancel()

    async def _run_loops(self) -> None:
        """ReArq's ``Worker.run``, except that a loop that fails stops its sibling.

        ReArq gathers the timer loop and the heartbeat loop and lets the other run on when
        one raises. Once this timer is replaced, a timer loop left running beside the new
        one moves every due delayed job and retry to its queue twice: the soak saw 13 jobs
        of 1,041 run twice (on two workers) after one Redis restart.
        """
        try:
            await self._pre_run()
            loops = [asyncio.ensure_future(self._main()), asyncio.ensure_future(self._heartbeat())]
            try:
                await asyncio.gather(*loops)
            finally:
                for part in loops:
                    part.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # as ReArq's own: a cancelled timer ends quietly
        finally:
            if self._sub_task:
                self._sub_task.cancel()
            await self._push_heartbeat(True)
            await self.close()

    async def _free_stale(self, lock: Lock) -> None:
        if self._stale_token is None:
            return
        try:
            await lock.do_release(self._stale_token)
        except LockNotOwnedError:
            pass  # gone or someone else's: nothing of ours to free
        else:
            logger.warning("rearq_tasks: freed the timer lock a failed timer of this process held")
        self._stale_token = None

    async def close(self) -> None:
        """Nothing: closing here would pull the client from under the worker."""

    def _handle_sig(self, signum: Any) -> None:
        # ReArq's own cancels ``sleep_task`` unguarded: None between two sleeps.
        self._terminated = True
        if self.sleep_task is not None:
            self.sleep_task.cancel()


async def run_timer(rearq: Any, worker: Any) -> None:
    """Run a :class:`WorkerTimer` for as long as ``worker`` runs; start a new one when it stops."""
    pause = FIRST_PAUSE_SECONDS
    stale: bytes | None = None
    while not worker._terminated:
        timer = WorkerTimer(rearq, stale)
        reason = "it returned"
        try:
            await timer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}", None)
        finally:
            signals._sig_handles.discard(timer._handle_sig)
            stale = timer.lock_token or stale
        if worker._terminated or timer._terminated:
            return
        logger.error(
            "rearq_tasks: the timer stopped (%s); starting it again in %.0f s", reason, pause
        )
        await _pause(worker, pause)
        pause = min(pause * 2, MAX_PAUSE_SECONDS)


async def _pause(worker: Any, seconds: float) -> None:
    """Sleep ``seconds``, or less when a SIGTERM stops ``worker`` meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not worker._terminated and loop.time() < deadline:
        await asyncio.sleep(min(0.2, deadline - loop.time()))


class _Standalone:
    """What :func:`run_timer` reads of its worker, for ``manage.py rearq_timer``: a flag that
    SIGTERM/SIGINT set, through ReArq's own signal handlers."""

    def __init__(self) -> None:
        self._terminated = False

    def _handle_sig(self, signum: Any) -> None:
        self._terminated = True


async def run_standalone(rearq: Any) -> None:
    """The timer process: restarted after failures until SIGTERM; then it shuts down as
    ReArq's own ``Worker.close`` does (shutdown hooks — capture drains and stops — then the
    client)."""
    process = _Standalone()
    signals.add_sig_handler(process._handle_sig)
    try:
        await run_timer(rearq, process)
    finally:
        signals._sig_handles.discard(process._handle_sig)
        try:
            await rearq.shutdown()
        finally:
            await rearq.close()
            # A failed timer's capture stopped with it and closed ReArq's database; the next
            # one reopened it lazily, out of sight of ``close``: an aiosqlite thread left
            # open would keep the process from exiting after SIGTERM.
            await close_running_loop(force=True)
