"""Real Redis, real ReArq worker processes, the test database shared with them.

``worker_pool`` starts ``manage.py rearq_worker`` (or the plain ``rearq`` CLI) subprocesses
pointed at the test database and stops them quickly: ReArq needs up to 10 s to notice a
SIGTERM (it sits in XREADGROUP BLOCK 10000), so after a short grace they are killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]
WORKER_SETTINGS = "tests.integration.worker_settings"
STOP_GRACE = 1.5


def _redis_url() -> str:
    return django_settings.REARQ_TASKS["REDIS_URL"]


def worker_rearq_settings() -> dict[str, Any]:
    return {
        **django_settings.REARQ_TASKS,
        "TASK_MODULES": ["tests.integration.jobs"],
        "JOB_RETRY": 2,
        "JOB_RETRY_AFTER": 1,
    }


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(_redis_url(), socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis is not reachable: {exc}")


def _ensure_rearq_database() -> None:
    """Tortoise does not create PostgreSQL databases: make ReArq's one if it is missing."""
    url = django_settings.REARQ_TASKS["DB_URL"]
    if not url.startswith(("postgres://", "asyncpg://")):
        return
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
        password=parts.password, dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="session")
def rearq_services() -> None:
    _require_redis()
    _ensure_rearq_database()


@pytest.fixture(scope="session")
def capture_settings() -> Iterator[None]:
    """The test process uses the workers' ReArq settings (retries, task modules)."""
    from django.test import override_settings

    with override_settings(REARQ_TASKS=worker_rearq_settings()):
        import tests.integration.jobs  # noqa: F401  (registers the tasks here too)

        yield


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(_redis_url()).flushdb()


class WorkerPool:
    """Worker processes of one test (or module), stopped and reaped on teardown."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self,
        *queues: str,
        with_timer: bool = False,
        cli: bool = False,
        extra_env: dict[str, str] | None = None,
        consumer: str | None = None,
    ) -> subprocess.Popen[bytes]:
        consumer = consumer or f"c{uuid.uuid4().hex[:8]}"
        group = "tests"
        if cli:
            cmd = [str(Path(sys.executable).with_name("rearq")), "tests.integration.jobs:rearq",
                   "worker", "--group-name", group, "--consumer-name", consumer]  # fmt: skip
            for q in queues:
                cmd += ["-q", q]
            if with_timer:
                cmd.append("-t")
        else:
            cmd = [sys.executable, str(ROOT / "manage.py"), "rearq_worker",
                   "--group-name", group, "--consumer-name", consumer]  # fmt: skip
            for q in queues:
                cmd += ["-q", q]
            if with_timer:
                cmd.append("--with-timer")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
            "REARQ_TASKS_WORKER_DB_NAME": self.db_name,
            # this checkout's sources first, not whatever copy of the package is installed
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            **(extra_env or {}),
        }
        log = Path(django_settings.VAR_DIR) / f"worker-{consumer}.log"
        self.logs.append(log)
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self._wait_ready(proc, f"{group}-{consumer}", with_timer)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], name: str, timer: bool) -> None:
        import redis

        r = redis.Redis.from_url(_redis_url(), decode_responses=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {self.output()}")
            workers = r.hgetall("rearq:worker")
            if name in workers and (not timer or any("timer" in k for k in workers)):
                # Consumer groups exist once the heartbeat is out; give XREADGROUP a moment.
                time.sleep(0.3)
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} did not start: {self.output()}")

    def output(self) -> str:
        return "\n".join(
            log.read_text(errors="replace")[-3000:] for log in self.logs if log.exists()
        )

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self, proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs:
            try:
                proc.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _test_db_name() -> str:
    from django.db import connection

    return connection.settings_dict["NAME"]


@pytest.fixture
def worker_pool(
    rearq_services: None, capture_settings: None, transactional_db: None
) -> Iterator[WorkerPool]:
    flush_redis()
    pool = WorkerPool(_test_db_name())
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def shared_worker(
    rearq_services: None, capture_settings: None, django_db_setup: None, django_db_blocker: Any
) -> Iterator[WorkerPool]:
    """One worker + timer for a module's tests (each test uses its own job ids)."""
    flush_redis()
    with django_db_blocker.unblock():
        pool = WorkerPool(_test_db_name())
    pool.start("default", "slowq", with_timer=True)
    yield pool
    pool.stop_all()


def wait_for(predicate: Callable[[], Any], timeout: float = 15, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(0.1)


class TcpProxy:
    """A loopback TCP proxy that can be paused: its upstream looks down while paused."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.paused = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.paused.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def pause(self) -> None:
        self.paused.set()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self.conns.clear()

    def resume(self) -> None:
        self.paused.clear()

    def close(self) -> None:
        self.pause()
        self.server.close()
