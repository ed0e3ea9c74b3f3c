"""Found by the soak: workers started together on a fresh PostgreSQL database raced in
Tortoise's ``CREATE TABLE IF NOT EXISTS`` (a duplicate ``pg_type`` row) and one died."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from harness.databases import drop_database, recreate_database
from harness.processes import ROOT, child_env

pytestmark = pytest.mark.integration

# Imports first, then all processes start creating the tables at the same moment.
READY = (
    "import asyncio, os, time, django; django.setup(); import tortoise.backends.asyncpg; "
    "from rearq_tasks.queue.loop import ensure_ready; "
    "time.sleep(max(0, float(os.environ['START_AT']) - time.time())); "
    "asyncio.run(ensure_ready()); print('ready')"
)


def test_workers_starting_together_all_create_rearq_tables() -> None:
    import psycopg

    name = f"test_rt_schema_race_{os.getpid()}"
    try:
        recreate_database(name, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    try:
        env = child_env(
            "tests.settings",
            REARQ_TASKS_TEST_REARQ_DB_URL=f"postgres://postgres@127.0.0.1:5432/{name}",
            START_AT=str(time.time() + 10),
        )
        command = [sys.executable, "-c", READY]
        procs = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for _ in range(6)
        ]
        outputs = [p.communicate(timeout=60)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, "\n".join(outputs)
    finally:
        drop_database(name)
