"""A private Redis Sentinel setup on loopback: a primary, a replica and one sentinel.

Each process is a real ``redis-server`` (the sentinel is ``redis-server <conf> --sentinel``)
on a free port with its own temp dir and no persistence (``--save "" --appendonly no``).
``SentinelCluster.failover()`` asks the sentinel for ``SENTINEL FAILOVER`` and waits until the
replica is the primary and the sentinel names it. Reusable by benchmarks too: nothing here
needs Django or pytest.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.network import free_port

MASTER_NAME = "mymaster"


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def _client(port: int, timeout: float = 2) -> Any:
    import redis

    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        decode_responses=True,
    )  # fmt: skip


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class RedisProcess:
    """One ``redis-server`` process (a data node or, with ``sentinel=True``, a sentinel)."""

    def __init__(self, name: str, workdir: Path, args: list[str], sentinel: bool = False) -> None:
        self.name = name
        self.port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "redis.log"
        self.args = args
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        binary = redis_server_binary() or "redis-server"
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                  "--logfile", str(self.log)]  # fmt: skip
        if self.sentinel:
            conf = self.dir / "sentinel.conf"  # a sentinel rewrites its config: a file of its own
            conf.write_text("\n".join(self.args) + "\n")
            return [binary, str(conf), "--sentinel", *common]
        # No disk, and a replica's full sync starts at once (the default waits 5 s).
        return [binary, *common, "--save", "", "--appendonly", "no",
                "--repl-diskless-sync-delay", "0", *self.args]  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        _wait(self._ping, 10, f"{self.name} on port {self.port}")

    def _ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.output()}")
        return bool(self.client().ping())

    def client(self) -> Any:
        return _client(self.port)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SentinelCluster:
    """Primary + replica + sentinel; ``stop()`` ends all three."""

    def __init__(self, workdir: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 5000):
        self.primary = RedisProcess("primary", workdir, [])
        self.replica = RedisProcess(
            "replica", workdir, ["--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        self.sentinel = RedisProcess(
            "sentinel",
            workdir,
            [
                "bind 127.0.0.1",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} 1",
                f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
            ],
            sentinel=True,
        )
        self.nodes = [self.primary, self.replica]

    @property
    def sentinels(self) -> list[str]:
        """The ``REDIS_SENTINELS`` setting for this cluster."""
        return [f"127.0.0.1:{self.sentinel.port}"]

    def start(self) -> SentinelCluster:
        try:
            for proc in (self.primary, self.replica, self.sentinel):
                proc.start()
            _wait(self._replicating, 15, "the replica to sync")
            _wait(self._sentinel_knows_replica, 15, "the sentinel to see the replica")
        except Exception:
            self.stop()
            raise
        return self

    def _replicating(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _sentinel_knows_replica(self) -> bool:
        replicas = self.sentinel.client().sentinel_slaves(MASTER_NAME)
        port = self.replica_of_master().port
        # SENTINEL FAILOVER answers NOGOODSLAVE until the sentinel has seen the link up.
        return any(
            r["port"] == port and r.get("master-link-status") == "ok"
            and not r["is_sdown"] and not r["is_disconnected"]
            for r in replicas
        )  # fmt: skip

    def master_port(self) -> int:
        """The port the sentinel currently names as the primary."""
        _host, port = self.sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def master(self) -> RedisProcess:
        port = self.master_port()
        return next(node for node in self.nodes if node.port == port)

    def replica_of_master(self) -> RedisProcess:
        port = self.master_port()
        return next(node for node in self.nodes if node.port != port)

    def failover(self, timeout: float = 20) -> RedisProcess:
        """``SENTINEL FAILOVER``: the replica becomes the primary; returns the new primary once
        the sentinel names it, it answers as a master and the old one replicates from it.

        The sentinel demotes the old primary (and disconnects its clients) only when it next
        polls it, up to 10 s after the switch: until then clients still connected to it keep
        writing there, and Redis discards those writes when it resyncs.
        """
        old, new = self.master(), self.replica_of_master()
        self.sentinel.client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        _wait(lambda: self.master_port() == new.port, timeout, "the sentinel to switch primaries")
        _wait(lambda: new.client().role()[0] == "master", timeout, "the new primary")
        _wait(lambda: old.client().role()[0] in ("slave", "replica"), timeout, "the old primary")
        _wait(self._replicating_from(old), timeout, "the old primary to sync")
        return new

    @staticmethod
    def _replicating_from(node: RedisProcess) -> Any:
        return lambda: node.client().info("replication").get("master_link_status") == "up"

    def stop(self) -> None:
        for proc in (self.sentinel, self.replica, self.primary):
            proc.stop()
