"""Found by the soak: workers started together on a fresh PostgreSQL database raced in
Tortoise's ``CREATE TABLE IF NOT EXISTS`` (a duplicate ``pg_type`` row) and one died."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ROOT

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

    name = f"rt_schema_race_{os.getpid()}"
    try:
        admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres",
                                autocommit=True, connect_timeout=3)  # fmt: skip
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                "REARQ_TASKS_TEST_REARQ_DB_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
                "START_AT": str(time.time() + 10),
            }
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
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
