"""The rollup triggers count a job once, when its row turns terminal, and do nothing else:
a non-terminal statement must leave the rollups untouched and, on PostgreSQL, not reach the
rollup tables at all (the early exit of migration 0013)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from rearq_tasks.models import TaskLog, TaskStat, TaskStatBin
from rearq_tasks.rollup_sql import STAT_TABLE, TRIGGER_PREFIX, postgres_functions_sql
from rearq_tasks.rollups import HOUR, SPANS, SPANS_0008

PG_ONLY = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's triggers")


def _rollups() -> list[tuple]:
    stats = TaskStat.objects.values_list("span", "bucket", "task_name", "status", "jobs")
    bins = TaskStatBin.objects.values_list("span", "bucket", "task_name", "kind", "bin", "jobs")
    return sorted(stats) + sorted(bins)


@contextmanager
def _rollup_table_locked() -> Iterator[None]:
    """Another session holds ``SHARE`` on the stat table: an upsert into it (even of no row)
    would wait for ``ROW EXCLUSIVE``, and this session's ``lock_timeout`` turns the wait
    into an error. Reads of the table are not blocked."""
    import psycopg

    s = connection.settings_dict
    with psycopg.connect(
        dbname=s["NAME"], host=s["HOST"] or None, port=s["PORT"] or None, user=s["USER"]
    ) as other:
        other.execute(f"LOCK TABLE {STAT_TABLE} IN SHARE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")
        yield
        other.rollback()


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


@pytest.mark.django_db
def test_non_terminal_statements_leave_rollups_alone_and_a_terminal_one_counts_once() -> None:
    before = _rollups()
    guard = _rollup_table_locked if connection.vendor == "postgresql" else _no_lock
    enqueued = timezone.now() - dt.timedelta(minutes=5)
    with guard():
        log = TaskLog.objects.create(
            job_id="h16", task_name="t", queue_name="q", enqueue_time=enqueued
        )
        assert log.mark_started(worker_id="w", start_time=enqueued + dt.timedelta(seconds=2))
    assert _rollups() == before
    assert log.mark_completed(result=1, finish_time=enqueued + dt.timedelta(seconds=3))
    log.mark_completed(result=1, finish_time=enqueued + dt.timedelta(seconds=3))  # replay
    TaskLog.objects.filter(pk=log.pk).update(error_message="")  # a column the rollups ignore
    new = TaskStat.objects.values_list("span", "status", "jobs", "duration_sum")
    assert sorted(new) == [
        (900, "success", 1, 1000),
        (3_600, "success", 1, 1000),
        (86_400, "success", 1, 1000),
    ]
    # Three spans × (duration, queue wait), one job each.
    assert list(TaskStatBin.objects.values_list("jobs", flat=True)) == [1] * 6


def _body(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [name])
        return cursor.fetchone()[0]


def _expected(early_exit: bool, spans: tuple[int, ...] = SPANS) -> dict[str, str]:
    return {
        f"{TRIGGER_PREFIX}_{event}": sql.split("$$")[1]
        for event, sql in postgres_functions_sql(early_exit, spans)
    }


@PG_ONLY
@pytest.mark.django_db
def test_migration_0013_installs_the_early_exit_and_reverses_to_0008s_bodies() -> None:
    def migrate(target: str) -> None:
        executor = MigrationExecutor(connection)
        executor.migrate([("tasks", target)])

    assert {name: _body(name) for name in _expected(True)} == _expected(True)
    migrate("0012_workers_page")
    assert {name: _body(name) for name in _expected(False)} == _expected(False, SPANS_0008)
    migrate("0013_rollup_trigger_early_exit")
    assert {name: _body(name) for name in _expected(True)} == _expected(True, SPANS_0008)
    migrate("0014_rollup_hour_span")
    assert {name: _body(name) for name in _expected(True)} == _expected(True)


def _finished_jobs(count: int) -> list[TaskLog]:
    now = timezone.now()
    jobs = []
    for i in range(count):
        enqueued = now - dt.timedelta(minutes=37 * i + 3)
        jobs.append(
            TaskLog(
                job_id=f"h16-hour-{i}", task_name=f"t{i % 3}", queue_name="q",
                status=("success", "failed", "canceled")[i % 3], success=i % 3 == 0,
                enqueue_time=enqueued, start_time=enqueued + dt.timedelta(seconds=i % 7),
                finish_time=enqueued + dt.timedelta(seconds=9), duration_ms=10 * i + 1,
                job_retries=i % 2,
            )
        )  # fmt: skip
    return jobs


@pytest.mark.django_db(transaction=True)
def test_migration_0014_adds_the_hour_span_from_the_quarters_exactly() -> None:
    """Jobs counted by 0013's two-span triggers get hour rows equal to a rebuild's, and the
    triggers count later jobs in all three spans; reversing removes the hour rows."""
    from rearq_tasks.ops.rebuild import rebuild

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("tasks")
    try:
        MigrationExecutor(connection).migrate([("tasks", "0013_rollup_trigger_early_exit")])
        TaskLog.objects.bulk_create(_finished_jobs(60))  # over 37 hours
        assert TaskStat.objects.exists() and not TaskStat.objects.filter(span=HOUR).exists()
        MigrationExecutor(connection).migrate(latest)
        TaskLog.objects.bulk_create(_finished_jobs(70)[60:])
        migrated = _rollups()
        assert TaskStatBin.objects.filter(span=HOUR).exists()
        rebuild()
        assert _rollups() == migrated
        MigrationExecutor(connection).migrate([("tasks", "0013_rollup_trigger_early_exit")])
        assert not TaskStat.objects.filter(span=HOUR).exists()
        assert not TaskStatBin.objects.filter(span=HOUR).exists()
    finally:
        MigrationExecutor(connection).migrate(latest)
