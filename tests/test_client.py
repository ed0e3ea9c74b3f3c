"""Client errors: clear, never leaking a password, never a traceback for a wrong state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rearq_tasks.conf.checks import check_settings
from rearq_tasks.models import TaskLog
from rearq_tasks.queue.client import reset_client
from rearq_tasks.queue.jobs import cancel_job, enqueue_sync, retry_job
from rearq_tasks.queue.loop import ReArqUnavailable


@pytest.fixture
def fresh_client() -> Iterator[None]:
    reset_client()
    yield
    reset_client()


def test_unreachable_redis_is_reported_without_the_password(settings, fresh_client) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"}
    log = TaskLog(job_id="a", task_name="add", queue_name="default", status="failed")
    with pytest.raises(ReArqUnavailable) as error:
        retry_job(log)
    message = str(error.value)
    assert "s3cret" not in message and "redis://:***@127.0.0.1:1/0" in message


def test_unreachable_rearq_database_is_reported_without_the_password(
    settings, fresh_client
) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "DB_URL": "postgres://u:pw9@127.0.0.1:1/x"}
    log = TaskLog(job_id="a", task_name="add", queue_name="default", status="queued")
    with pytest.raises(ReArqUnavailable) as error:
        cancel_job(log)
    assert "pw9" not in str(error.value) and "database" in str(error.value)


@pytest.mark.parametrize("status", ["queued", "deferred", "in_progress", "success"])
def test_retry_refuses_jobs_that_did_not_fail(status: str) -> None:
    with pytest.raises(ValueError, match=f"is {status}"):
        retry_job(TaskLog(job_id="a", task_name="add", status=status))


@pytest.mark.parametrize("status", ["success", "failed", "expired", "canceled"])
def test_cancel_refuses_finished_jobs(status: str) -> None:
    with pytest.raises(ValueError, match=f"already {status}"):
        cancel_job(TaskLog(job_id="a", task_name="add", status=status))


def test_retry_needs_a_known_queue() -> None:
    with pytest.raises(ValueError, match="queue"):
        retry_job(TaskLog(job_id="a", task_name="nowhere", queue_name="", status="failed"))


def test_enqueue_of_an_unregistered_task_name_says_how_to_fix_it() -> None:
    with pytest.raises(LookupError, match="TASK_MODULES"):
        enqueue_sync("no_such_task", 1)


def test_package_exports_are_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rearq_tasks; "
        "assert not any(m.startswith(('django.db', 'rearq.', 'tortoise')) for m in sys.modules); "
        "assert callable(rearq_tasks.enqueue_sync) and callable(rearq_tasks.instrument)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["sync_task_logs", "--since", "yesterday"], "--since"),
        (["sync_task_logs", "--since", "-3"], "--since"),
        (["sync_task_logs", "--batch-size", "0"], "--batch-size"),
        (["demo_jobs", "--count", "0"], "--count"),
        (["rearq_server", "--port", "0"], "--port"),
    ],
)
def test_bad_command_options_are_command_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command(*args)


@pytest.mark.parametrize(
    "key, value",
    [
        ("CAPTURE_COLLECTOR", "sideways"),
        ("CAPTURE_BATCH_SIZE", 0),
        ("CAPTURE_FLUSH_INTERVAL_MS", -1),
        ("TASK_MODULES", [""]),
        ("LOST_JOB_GRACE_SECONDS", -5),
    ],
)
def test_bad_capture_settings_fail_the_checks(settings, key: str, value: object) -> None:
    settings.REARQ_TASKS = {key: value}
    assert [e.id for e in check_settings()] == ["rearq_tasks.E004"]


def test_sync_task_logs_can_run_as_a_rearq_cron_task(settings, fresh_client) -> None:
    from rearq.task import CronTask

    from rearq_tasks.queue.client import SYNC_TASK_NAME, get_rearq_client

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "SYNC_TASK_LOGS_CRON": "*/10 * * * *"}
    try:
        task = get_rearq_client().task_map[SYNC_TASK_NAME]
        assert isinstance(task, CronTask) and task.cron == "*/10 * * * *"
    finally:
        get_rearq_client().task_map.pop(SYNC_TASK_NAME, None)
        CronTask.get_cron_tasks().pop(SYNC_TASK_NAME, None)


def test_using_the_client_keeps_the_process_signal_handlers() -> None:
    """rearq.signals would make a web process ignore SIGTERM/Ctrl-C: not through us."""
    import subprocess
    import sys

    # A process started in the background inherits SIGINT (and maybe SIGTERM) ignored and
    # Python then installs no handler: start from the defaults, check that we keep them.
    code = (
        "import os, signal, threading, django; "
        "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
        "signal.signal(signal.SIGINT, signal.default_int_handler); django.setup(); "
        "from rearq_tasks import get_rearq_client; "
        "t = threading.Thread(target=get_rearq_client); t.start(); t.join(); "
        "assert 'rearq.worker' in __import__('sys').modules; "
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL; "
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler"
    )
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_recover_unstarted_jobs_must_be_a_bool(settings, value: object) -> None:
    settings.REARQ_TASKS = {"RECOVER_UNSTARTED_JOBS": value}
    assert [e.id for e in check_settings()] == ["rearq_tasks.E003"]
