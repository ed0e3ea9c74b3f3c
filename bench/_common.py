"""Timing and process figures shared by the benchmarks (the rest of their machinery is in
``harness/``)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def redis_server_pid(redis: object) -> int | None:
    """The PID of the redis-server answering ``redis`` (when it runs on this machine)."""
    try:
        return int(redis.info("server")["process_id"])  # type: ignore[attr-defined]
    except Exception:
        return None


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(first, median of the next ``runs``) in milliseconds."""
    start = time.perf_counter()
    fn()
    first = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return first, statistics.median(samples)
