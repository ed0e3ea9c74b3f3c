"""What the argument GIN indexes (migration 0009) cost each row the collector writes.

    .venv/bin/python bench/gin_write_cost.py [--rows 200000] [--batch 500] [--rounds 6]

Two copies of the TaskLog table's shape in a scratch PostgreSQL database, one with the two
``jsonb_path_ops`` GIN indexes (``args``, ``kwargs``) and one without, every other index of
the real table on both. Each round inserts the same rows into each, in batches of
``--batch`` rows per statement as the collector writes them, alternating which goes first;
jobs carry the keyword arguments of ``bench/capture.py --kwargs`` (an id, a nested object, a
text). Printed: the backend's CPU µs per row (``/proc``) and wall µs per row, median of the
rounds, with and without the indexes, and the difference: the indexes' cost per captured
job. GIN's pending list (``fastupdate``, on by default) defers most of the work to its
cleanup, which runs inside some of the inserts: the totals include it, since every round
writes far more than ``gin_pending_list_limit`` (4 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import cpu_seconds  # noqa: E402
from bench.capture import ARGUMENTS, job_kwargs  # noqa: E402
from harness.databases import ensure_database, pg_connect  # noqa: E402

DB = "rt_gin_write_cost"
COLUMNS = "job_id, task_name, queue_name, status, args, kwargs, enqueue_time, updated_at"
TABLE = """CREATE TABLE {name} (
    id bigserial PRIMARY KEY, job_id varchar(64) UNIQUE, task_name varchar(255),
    queue_name varchar(255), status varchar(20), args jsonb, kwargs jsonb,
    enqueue_time timestamptz, updated_at timestamptz)"""
INDEXES = ("task_name", "queue_name", "status", "enqueue_time", "updated_at")


def create(conn: object, name: str, gin: bool) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")  # type: ignore[attr-defined]
    conn.execute(TABLE.format(name=name))  # type: ignore[attr-defined]
    for column in INDEXES:
        conn.execute(f"CREATE INDEX ON {name} ({column})")  # type: ignore[attr-defined]
    if gin:
        for column in ("args", "kwargs"):
            conn.execute(f"CREATE INDEX ON {name} USING gin ({column} jsonb_path_ops)")  # type: ignore[attr-defined]


def insert(conn: object, name: str, rows: list[tuple], batch: int) -> tuple[float, float]:
    """(backend CPU seconds, wall seconds) to insert ``rows`` in statements of ``batch``."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[attr-defined]
    marks = "(" + ", ".join(["%s"] * 6 + ["now()", "now()"]) + ")"
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        sql = f"INSERT INTO {name} ({COLUMNS}) VALUES " + ", ".join([marks] * len(chunk))
        conn.execute(sql, [value for row in chunk for value in row])  # type: ignore[attr-defined]
    return cpu_seconds(pid) - cpu0, time.perf_counter() - wall0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if min(args.rows, args.batch, args.rounds) <= 0:
        parser.error("--rows, --batch and --rounds must be positive")
    ARGUMENTS["kwargs"] = True
    ensure_database(DB)
    conn = pg_connect(DB)
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    print(f"load before: {os.getloadavg()}")
    for r in range(args.rounds):
        rows = [
            (f"{r:04d}{i:028x}", "noop", "default", "success", json.dumps([i]), job_kwargs(i))
            for i in range(args.rows)
        ]
        for gin in (True, False) if r % 2 == 0 else (False, True):
            name = "gin_on" if gin else "gin_off"
            create(conn, name, gin)
            results[gin].append(insert(conn, name, rows, args.batch))
    print(f"load after: {os.getloadavg()}")
    for table in ("gin_on", "gin_off"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")  # type: ignore[attr-defined]

    def per_row(gin: bool, part: int) -> float:
        return statistics.median(r[part] for r in results[gin]) * 1e6 / args.rows

    print(f"\n{args.rows:,} rows per table per round, {args.batch} per statement, "
          f"{args.rounds} rounds (median), µs per row:")  # fmt: skip
    print("| | backend CPU | wall |\n|---|---:|---:|")
    for label, gin in (("with the GIN indexes", True), ("without", False)):
        print(f"| {label} | {per_row(gin, 0):.1f} | {per_row(gin, 1):.1f} |")
    print(f"| **the indexes' cost** | **{per_row(True, 0) - per_row(False, 0):+.1f}** | "
          f"{per_row(True, 1) - per_row(False, 1):+.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
