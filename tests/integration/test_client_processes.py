"""The client in real processes: a script that enqueues exits, and ReArq's own CLI refuses
invalid settings as ``manage.py rearq_worker`` does."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from harness.processes import ROOT, child_env, rearq_argv

pytestmark = pytest.mark.integration


SCRIPT = """
import asyncio
from rearq_tasks import get_rearq_client

rearq = get_rearq_client()


@rearq.task()
async def hello() -> str:
    return "hi"


async def main() -> None:
    await rearq.startup()
    job = await hello.delay()
    await rearq.close()
    print("enqueued", job.job_id, flush=True)


asyncio.run(main())
"""


def test_a_script_that_enqueues_exits_after_close(rearq_services, tmp_path) -> None:
    """ReArq's close() closes Redis only; aiosqlite's thread kept the process alive."""
    script = tmp_path / "enqueue.py"
    script.write_text(SCRIPT)
    env = child_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        REARQ_TASKS_TEST_REARQ_DB_URL=f"sqlite://{tmp_path / 'rearq.sqlite3'}",
        REARQ_TASKS_TEST_REDIS_URL=settings.REARQ_TASKS["REDIS_URL"],
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.startswith(b"enqueued ")


@pytest.mark.parametrize("command", ["worker", "timer"])
def test_rearq_cli_refuses_invalid_settings(rearq_services, tmp_path, command: str) -> None:
    env = child_env(
        DJANGO_SETTINGS_MODULE="tests.integration.bad_worker_settings",
        REARQ_TASKS_WORKER_DB_NAME="unused",
        REARQ_TASKS_TEST_REARQ_DB_URL=f"sqlite://{tmp_path / 'rearq.sqlite3'}",
    )
    done = subprocess.run(
        rearq_argv("tests.integration.jobs:rearq", command),
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode()
    assert done.returncode != 0, output[-2000:]
    assert "refuses to start" in output and "rearq_tasks.E003" in output
    assert "PAGE_SIZE" in output
