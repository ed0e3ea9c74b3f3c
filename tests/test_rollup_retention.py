"""Statistics outlive rows: their own retention, a check, and the API's longer periods."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from rearq_tasks import queries
from rearq_tasks.conf.checks import check_settings
from rearq_tasks.models import TaskLog, TaskStat
from rearq_tasks.ops.retention import purge_stats


def _job(job_id: str, days_ago: float) -> TaskLog:
    log = TaskLog.objects.create(
        job_id=job_id,
        task_name="t",
        queue_name="q",
        enqueue_time=timezone.now() - dt.timedelta(days=days_ago),
    )
    log.mark_failed("boom", finish_time=log.enqueue_time + dt.timedelta(seconds=1))
    return log


@pytest.mark.django_db
def test_cleanup_keeps_statistics_for_stats_retention_days() -> None:
    _job("old", 30)
    _job("ancient", 500)
    call_command("cleanup_task_logs", "--days", "7", verbosity=0)
    assert not TaskLog.objects.exists()
    buckets = TaskStat.objects.filter(span=86_400)
    assert list(buckets.values_list("jobs", flat=True)) == [1]  # 500 days ago: gone
    assert queries.summary(queries.Scope.period(24 * 60))["failed"] == 1


@pytest.mark.django_db
def test_purge_stats_refuses_zero_days() -> None:
    with pytest.raises(ValueError, match="days"):
        purge_stats(days=0)


@override_settings(REARQ_TASKS={"STATS_RETENTION_DAYS": 30, "RETENTION_DAYS": 90})
def test_stats_kept_shorter_than_rows_is_warned() -> None:
    assert "rearq_tasks.W016" in [m.id for m in check_settings()]


@pytest.mark.django_db
def test_the_api_accepts_periods_up_to_the_stats_retention(admin_client) -> None:
    url = "/cfg/tasks/logs/stats/?period_hours="
    assert admin_client.get(f"{url}{400 * 24}").status_code == 200
    response = admin_client.get(f"{url}{400 * 24 + 1}")
    assert response.status_code == 400 and "period_hours" in response.json()


def _rollups() -> list[tuple]:
    return sorted(TaskStat.objects.values_list(
        "span", "bucket", "task_name", "queue_name", "status", "outcome", "jobs", "retried",
        "retries_sum", "attempts_sum", "duration_count", "duration_sum", "wait_count", "wait_sum",
    ))  # fmt: skip


def _bins() -> list[tuple]:
    from rearq_tasks.models import TaskStatBin

    return sorted(
        TaskStatBin.objects.values_list("span", "bucket", "task_name", "kind", "bin", "jobs")
    )


@pytest.mark.django_db
def test_rebuild_reproduces_the_rollups_exactly() -> None:
    for n in range(12):
        log = _job(f"j{n}", n * 0.37)
        log.mark_started(start_time=log.enqueue_time + dt.timedelta(milliseconds=n * 91))
    before, bins = _rollups(), _bins()
    assert before
    TaskStat.objects.update(jobs=0)  # a manual edit the rebuild must undo
    call_command("rebuild_task_stats", verbosity=0)
    assert _rollups() == before and _bins() == bins


@pytest.mark.django_db
def test_rebuild_rejects_a_bad_since() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since"):
        call_command("rebuild_task_stats", "--since", "yesterday")
