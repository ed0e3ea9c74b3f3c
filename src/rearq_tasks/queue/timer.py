"""The timer of a worker process (``manage.py rearq_worker --with-timer``), kept alive.

ReArq's ``TimerWorker`` shares the worker's client. When its loop fails (Redis switching
primaries behind a Sentinel, a connection reset), ReArq ends it without a word: its
``finally`` closes the *shared* client (``rearq.redis`` becomes None) and the timer lock's
release error hides the cause. The process keeps running, but nothing moves delayed jobs,
retries or cron any more, and the worker's next retry fails on ``None.zadd`` — the job is
left ``in_progress`` in ReArq for ever. Measured in the Sentinel failover test.

Here the timer never closes the client (the worker, which owns it, does when it stops), and
a timer that stops while its worker runs is logged and started again, with a growing pause.
A standalone ``manage.py rearq_timer`` exits instead and its process manager restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rearq import signals
from rearq.worker import TimerWorker

from rearq_tasks.redaction import redact_text

logger = logging.getLogger("rearq_tasks.timer")

FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 30.0


class WorkerTimer(TimerWorker):
    """A ``TimerWorker`` that leaves the shared client to its worker."""

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
    while not worker._terminated:
        timer = WorkerTimer(rearq)
        reason = "it returned"
        try:
            await timer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}", None)
        finally:
            signals._sig_handles.discard(timer._handle_sig)
        if worker._terminated or timer._terminated:
            return
        logger.error(
            "rearq_tasks: the timer of this worker stopped (%s); starting it again in %.0f s",
            reason,
            pause,
        )
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_SECONDS)
