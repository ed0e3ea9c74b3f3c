"""Helpers shared by the benchmarks (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def ensure_database(name: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist yet."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", user=os.environ.get("PGUSER", "postgres"), dbname="postgres",
        autocommit=True,
    ) as conn:  # fmt: skip
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


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
