"""The embedded collector as a child process of the worker, started and supervised by it.

A collector inside the worker's event loop (reading Redis, decoding, folding and handing
batches to a database thread) costs the job loop ~40 µs per job; in a process of its own
it costs the worker nothing, and the database writes run on another core. It is still one
command: the worker starts ``manage.py rearq_collector --parent-pid <worker>`` with its own
interpreter, settings and import path, restarts it if it dies (the stream keeps what it had
not acknowledged, so nothing is lost), and stops it after the worker's last events were
sent, so it writes them before it exits. If the worker itself is killed, the collector
notices its parent is gone and stops on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess
import sys
import time

logger = logging.getLogger("rearq_tasks.capture")

POLL_S = 0.5
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
# A child that lived this long before dying restarts without waiting long.
HEALTHY_AFTER_S = 30.0
READY_TIMEOUT_S = 10.0


def collector_argv(parent_pid: int, ready_fd: int) -> list[str]:
    """``python -m django rearq_collector`` of this interpreter, bound to ``parent_pid``."""
    return [sys.executable, "-m", "django", "rearq_collector", "--parent-pid", str(parent_pid),
            "--ready-fd", str(ready_fd)]  # fmt: skip


def collector_env() -> dict[str, str] | None:
    """The worker's environment with its import path, or None when the child could not load
    the same settings (``settings.configure()`` rather than a settings module)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    path = [p for p in sys.path if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


class CollectorProcess:
    """Start, watch and stop one collector child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started_at = 0.0
        self._ready_fd: int | None = None

    def _spawn(self) -> None:
        read, write = os.pipe()
        try:
            # Its own session: a terminal's Ctrl-C or a signal to the worker's process group
            # must not stop it before the worker's last events are sent; the worker stops it.
            self.proc = subprocess.Popen(
                collector_argv(os.getpid(), write), env=self.env, start_new_session=True,
                pass_fds=(write,),
            )  # fmt: skip
        finally:
            os.close(write)
        if self._ready_fd is not None:
            os.close(self._ready_fd)
        self._ready_fd = read
        self._started_at = time.monotonic()

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Wait until the child reads the stream (or exited, or ``timeout``): a worker that
        ran jobs first would have their events written only seconds later."""
        fd, proc = self._ready_fd, self.proc
        if fd is None or proc is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([fd], [], [], 0)[0]:
                return os.read(fd, 1) == b"1"
            await asyncio.sleep(0.02)
        logger.warning("capture: the collector process %d is not reading yet", proc.pid)
        return False

    def start(self) -> None:
        self._spawn()
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        failures = 0
        while not self._stopping:
            await asyncio.sleep(POLL_S)
            proc = self.proc
            if self._stopping or proc is None or proc.poll() is None:
                continue
            lived = time.monotonic() - self._started_at
            failures = 0 if lived >= HEALTHY_AFTER_S else failures + 1
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            logger.warning(
                "capture: the collector process %d exited (code %s) after %.0fs; restarting "
                "it in %.1fs (unacknowledged events wait in the stream)",
                proc.pid,
                proc.returncode,
                lived,
                delay,
            )
            await asyncio.sleep(delay)
            if not self._stopping:
                self.restarts += 1
                self._spawn()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child (it writes what is in the stream, then exits); SIGKILL it after
        ``timeout`` (what it had not acknowledged stays in the stream for the next one)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            logger.warning("capture: the collector process %d did not stop; killing it", proc.pid)
            proc.kill()
            proc.wait()
