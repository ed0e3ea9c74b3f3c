"""Processes of ReArq: ``rearq_worker`` (or the plain ``rearq`` CLI), ``rearq_timer``,
``rearq_collector``, or any other command, each logging to its own file.

- ``ProcessPool``: named processes started with one environment and stopped together:
  SIGTERM, then SIGKILL after a grace period (ReArq needs up to 10 s to notice a SIGTERM: it
  sits in ``XREADGROUP BLOCK 10000``). With ``new_session`` each runs in a session of its own
  and the signals go to its whole process group (gunicorn and its workers).
- ``WorkerPool``: workers of one test (or module), started one by one, each waited for until
  its heartbeat is out; stopped after 1.5 s of grace.
- ``Supervisor``: the soak's workers and timer, restarted when one exits unasked (what
  systemd or Kubernetes would do), each exit counted.

Every child gets the repository root and the caller's ``PYTHONPATH`` on its path
(``child_env``), so it imports the code the caller runs, whichever checkout that is.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE = 1.5
WORKERS_KEY = "rearq:worker"


def pythonpath() -> str:
    """The repository root, then each entry of the caller's ``PYTHONPATH`` (made absolute:
    children may run in another directory)."""
    entries = [str(ROOT)]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and str(Path(entry).resolve()) not in entries:
            entries.append(str(Path(entry).resolve()))
    return os.pathsep.join(entries)


def child_env(settings: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment with ``pythonpath()``, ``DJANGO_SETTINGS_MODULE`` (when
    given) and ``extra`` on top."""
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    env.update(extra)
    return env


def manage_argv(*args: str) -> list[str]:
    """``python manage.py …`` of this repository (its example project)."""
    return [sys.executable, str(ROOT / "manage.py"), *args]


def rearq_argv(app: str, *args: str) -> list[str]:
    """ReArq's own CLI (``rearq module:rearq …``) from this interpreter's environment."""
    return [str(Path(sys.executable).with_name("rearq")), app, *args]


def worker_argv(
    *queues: str, group: str, consumer: str, with_timer: bool = False, app: str | None = None
) -> list[str]:
    """A worker of ``queues`` (ReArq's default queue when none): ``manage.py rearq_worker``,
    or the plain ``rearq`` CLI on ``app`` (``module:rearq``)."""
    if app is None:
        argv = manage_argv("rearq_worker", "--group-name", group, "--consumer-name", consumer)
        timer = "--with-timer"
    else:
        argv = rearq_argv(app, "worker", "--group-name", group, "--consumer-name", consumer)
        timer = "-t"
    for queue in queues:
        argv += ["-q", queue]
    if with_timer:
        argv.append(timer)
    return argv


def workers_up(
    client: Any,
    names: Iterable[str],
    *,
    timer: bool = False,
    collector: bool = False,
    stream: str = "rearq_tasks:events",
    collector_group: str = "rearq_tasks",
) -> bool:
    """Whether ReArq's heartbeats name every worker (``group-consumer``) and, if asked, a
    timer, and whether a capture collector has made its consumer group on ``stream``.
    ``client`` is a ``redis.Redis`` with ``decode_responses=True``."""
    workers = client.hgetall(WORKERS_KEY)
    if not all(name in workers for name in names):
        return False
    if timer and not any("timer" in key for key in workers):
        return False
    if collector:
        try:
            groups = client.xinfo_groups(stream)
        except Exception:
            return False
        return any(g["name"] == collector_group for g in groups)
    return True


def spawn(
    argv: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    append: bool = False,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the repository root, stdout and stderr to ``log``."""
    with log.open("ab" if append else "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            argv, cwd=ROOT, env=dict(env) if env is not None else child_env(), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=new_session,
        )  # fmt: skip


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc; empty where there is none)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(proc: subprocess.Popen[bytes], sig: int, group: bool) -> None:
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def terminate(
    procs: Iterable[subprocess.Popen[bytes]], grace: float = STOP_GRACE, *, group: bool = False
) -> None:
    """SIGTERM each running process, give them ``grace`` seconds in all, SIGKILL the rest."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            _signal(proc, signal.SIGTERM, group)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
            proc.wait()


class ProcessPool:
    """Named child processes of one environment, each logging to ``logdir/<log>``."""

    def __init__(
        self,
        logdir: Path,
        env: Mapping[str, str] | None = None,
        *,
        grace: float = STOP_GRACE,
        new_session: bool = False,
    ) -> None:
        self.logdir = Path(logdir)
        self.env = dict(env) if env is not None else child_env()
        self.grace = grace
        self.new_session = new_session
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []
        self.orphans: list[int] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        log: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        path = self.logdir / (log or f"{name}.log")
        self.logs.append(path)
        proc = spawn(argv, path, {**self.env, **(extra_env or {})}, new_session=self.new_session)
        self.procs[name] = proc
        return proc

    def output(self, tail: int = 3000) -> str:
        """The end of every log, for an error message."""
        return "\n".join(
            log.read_text(errors="replace")[-tail:] for log in self.logs if log.exists()
        )

    def exited(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return [(name, proc) for name, proc in self.procs.items() if proc.poll() is not None]

    def kill(self, proc: subprocess.Popen[bytes] | str) -> None:
        """SIGKILL (a process or a name, which leaves the pool): the process dies mid-job, as
        on a crash or an OOM kill. Its children (a worker's embedded collector) stop on their
        own, as in production; :meth:`stop_all` waits for them, so none outlives the test."""
        if isinstance(proc, str):
            proc = self.procs.pop(proc)
        self.orphans.extend(children_of(proc.pid))
        _signal(proc, signal.SIGKILL, self.new_session)
        proc.wait()

    def stop(self, proc: subprocess.Popen[bytes], grace: float | None = None) -> None:
        self.orphans.extend(children_of(proc.pid))
        terminate([proc], self.grace if grace is None else grace, group=self.new_session)

    def stop_all(self, grace: float | None = None) -> None:
        for proc in self.procs.values():
            self.orphans.extend(children_of(proc.pid))
        terminate(self.procs.values(), self.grace if grace is None else grace,
                  group=self.new_session)  # fmt: skip
        self.procs.clear()
        # A worker's collector child writes its last events, then exits; one that outlives its
        # worker (killed, or stopped past the grace) drains and exits by itself within seconds.
        # None may still run when the next test starts: it would write rows after that test's
        # cleanup, or take its events.
        deadline = time.monotonic() + 30
        while self.orphans and time.monotonic() < deadline:
            self.orphans = [pid for pid in self.orphans if running(pid)]
            time.sleep(0.1)
        for pid in self.orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.orphans.clear()


class WorkerPool(ProcessPool):
    """``rearq_worker`` processes of one test (or module), each started and waited for until
    ReArq's heartbeat names it (and a timer, when asked), at most 30 s."""

    def __init__(
        self,
        redis_url: str | Callable[[], Any],
        logdir: Path,
        env: Mapping[str, str] | None = None,
        *,
        app: str,
        group: str = "tests",
    ) -> None:
        super().__init__(logdir, env)
        self.redis_url = redis_url
        self.app = app
        self.group = group

    def start(
        self,
        *queues: str,
        with_timer: bool = False,
        cli: bool = False,
        extra_env: dict[str, str] | None = None,
        consumer: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """A worker of ``queues``: ``manage.py rearq_worker``, or with ``cli`` the plain
        ``rearq`` CLI on the pool's ``app``; returns once it is ready."""
        consumer = consumer or f"c{uuid.uuid4().hex[:8]}"
        argv = worker_argv(*queues, group=self.group, consumer=consumer, with_timer=with_timer,
                           app=self.app if cli else None)  # fmt: skip
        proc = self.spawn(consumer, argv, log=f"worker-{consumer}.log", extra_env=extra_env)
        self._wait_ready(proc, f"{self.group}-{consumer}", with_timer)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], name: str, timer: bool) -> None:
        import redis

        # A URL, or a factory of a decoding client (one that goes through Sentinel, say).
        if callable(self.redis_url):
            r = self.redis_url()
        else:
            r = redis.Redis.from_url(self.redis_url, decode_responses=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {self.output()}")
            if workers_up(r, [name], timer=timer):
                # Consumer groups exist once the heartbeat is out; give XREADGROUP a moment.
                time.sleep(0.3)
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} did not start: {self.output()}")


class Supervisor(ProcessPool):
    """Workers (``rearq_worker``, any name) and a ``rearq_timer`` (named ``timer``), restarted
    by ``check()`` when one exits unasked, each exit noted in ``crashes``. Thread-safe: a
    fault injector kills and starts them while the main loop checks."""

    def __init__(self, env: Mapping[str, str], logdir: Path, group: str) -> None:
        super().__init__(logdir, env, grace=15.0)
        self.group = group
        self.crashes: list[str] = []
        self.lock = threading.RLock()
        self.starts = Counter[str]()

    def start(self, name: str) -> None:
        if name == "timer":
            argv = manage_argv("rearq_timer")
        else:
            argv = worker_argv(group=self.group, consumer=name)
        with self.lock:
            self.starts[name] += 1
            self.spawn(name, argv, log=f"{name}-{self.starts[name]}.log")

    def kill(self, proc: subprocess.Popen[bytes] | str) -> None:
        with self.lock:
            super().kill(proc)

    def check(self) -> None:
        with self.lock:
            for name, proc in self.exited():
                self.crashes.append(f"{name} exited with {proc.returncode}")
                self.start(name)

    def stop_all(self, grace: float | None = None) -> None:
        with self.lock:
            super().stop_all(grace)

    def capture_counters(self) -> dict[str, int]:
        """Each process lifetime's counters (killed ones: their last periodic line, at most
        60 s old), summed. A worker and its embedded collector process log to one file, each
        its own counters (cumulative): the largest value of each counter in a file."""
        total: Counter[str] = Counter()
        for log in self.logs:
            seen: Counter[str] = Counter()
            for line in log.read_text(errors="replace").splitlines():
                if "capture: {" in line:
                    found = ast.literal_eval(line[line.index("capture: {") + len("capture: ") :])
                    for key, value in found.items():
                        if key != "buffered":
                            seen[key] = max(seen[key], value)
            total.update(seen)
        return dict(total)
