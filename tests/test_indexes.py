"""Migrations 0002, 0005 and 0009: the API's PostgreSQL indexes exist there and nowhere else."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from rearq_tasks.models import TaskLog

pytestmark = pytest.mark.django_db

API_INDEXES = {
    "tasklog_enq_cover_idx",
    "tasklog_worker_idx",
    "tasklog_error_message_trgm_idx",
    "tasklog_failed_task_idx",
    "tasklog_failed_enq_idx",
    "tasklog_kwargs_gin_idx",
    "tasklog_args_gin_idx",
}


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TaskLog._meta.db_table)
    return {name for name, info in constraints.items() if info["index"]}


def only_these_rows(rows: list[TaskLog]) -> None:
    """The table holds ``rows`` and nothing else, with statistics of exactly them.

    A plan depends on the statistics: rows or ``ANALYZE`` results an earlier test (or
    autovacuum) left behind can make another index just as cheap (when every row is failed,
    the seed's ``(task_name, -enqueue_time)`` index is as good as the partial one). TRUNCATE
    gives the table and its indexes fresh files; it and ANALYZE run inside the test's
    transaction and are rolled back with it.
    """
    table = connection.ops.quote_name(TaskLog._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
    TaskLog.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def plan_of(cursor, queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    cursor.execute(f"EXPLAIN {sql}", params)
    return "\n".join(row[0] for row in cursor.fetchall())


def test_api_indexes_only_on_postgres() -> None:
    names = index_names()
    if connection.vendor == "postgresql":
        assert API_INDEXES <= names
    else:
        assert not API_INDEXES & names


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only plan")
def test_search_plan_uses_the_trigram_indexes() -> None:
    from rearq_tasks.queries.search import apply

    # 2,000 errors, 1 in 100 about SMTP: the trigram index is the selective path.
    now = timezone.now()
    only_these_rows([
        TaskLog(job_id=f"plan-{i}", task_name=f"task_{i % 20}", queue_name="default",
                status="failed", success=False, enqueue_time=now - dt.timedelta(seconds=i),
                error_message="SMTPError: connection refused" if i % 100 == 0
                else f"ValueError: boom {i}")
        for i in range(2000)
    ])  # fmt: skip
    qs = apply(TaskLog.objects.order_by(), "smtp")  # the shape of the count query
    assert qs.count() == 20
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = plan_of(cursor, qs)
    assert "tasklog_error_message_trgm_idx" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="loose index scan is PostgreSQL's")
def test_distinct_values_by_loose_index_scan() -> None:
    from harness.factories import TaskLogFactory
    from rearq_tasks.queries.distinct import distinct_values
    from rearq_tasks.queries.search import contains_q

    for name in ("send_email", "send_sms", "send_email", "resize"):
        TaskLogFactory(task_name=name, worker_id=None if name == "resize" else f"w-{name}")
    assert distinct_values("task_name") == ["resize", "send_email", "send_sms"]
    assert distinct_values("worker_id") == ["w-send_email", "w-send_sms"]
    assert contains_q("task_name", "EMAIL") == Q(task_name__in=["send_email"])
    assert TaskLog.objects.filter(contains_q("queue_name", "nothing")).count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL extension")
def test_without_the_right_to_create_pg_trgm_the_index_is_skipped(caplog) -> None:
    import importlib

    migration = importlib.import_module("rearq_tasks.migrations.0002_api_search_and_stats_indexes")
    with connection.cursor() as cursor:
        # All inside the test's transaction: rolled back afterwards.
        cursor.execute("DROP EXTENSION pg_trgm CASCADE")
        cursor.execute("CREATE ROLE rearq_tasks_no_ddl NOSUPERUSER NOCREATEDB")
        cursor.execute("SET ROLE rearq_tasks_no_ddl")
        try:
            assert migration.has_trigram_extension(cursor) is False
            cursor.execute("SELECT 1")  # the transaction is still usable
        finally:
            cursor.execute("RESET ROLE")
    assert "pg_trgm is not available" in caplog.text


def test_failed_index_predicate_is_the_vocabulary_failed() -> None:
    """The migration freezes FAILED; if models.FAILED changes, a new index migration is due."""
    import importlib

    from rearq_tasks.models import FAILED

    migration = importlib.import_module("rearq_tasks.migrations.0005_failed_partial_indexes")
    assert migration.FAILED == FAILED


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only plan")
def test_failed_list_plan_uses_the_partial_indexes() -> None:
    """The API's ``is_failed`` + task filter, count and page, are answered from failed rows only."""
    # What the indexes are for: 5,000 jobs of 20 tasks, about 2 % failed.
    now = timezone.now()
    rows = []
    for i in range(5000):
        failed = i % 47 == 0
        rows.append(TaskLog(
            job_id=f"plan-{i}", task_name="send_email" if i % 20 == 0 else f"task_{i % 20}",
            queue_name="default", status="failed" if failed else "success", success=not failed,
            enqueue_time=now - dt.timedelta(seconds=i),
        ))  # fmt: skip
    only_these_rows(rows)
    qs = TaskLog.objects.failed().filter(task_name__in=["send_email"])
    assert qs.count() == sum(1 for i in range(0, 5000, 20) if i % 47 == 0)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = [
            plan_of(cursor, query)
            for query in (qs.order_by().values("id")[:1001], qs.order_by("-enqueue_time")[:50])
        ]
    assert all("tasklog_failed_" in plan for plan in plans), plans


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only plan")
def test_argument_containment_plan_uses_the_gin_indexes() -> None:
    """``?kwargs=``/``?args=`` and ``kwargs.<path>:`` in a search are answered by the GIN
    indexes of migration 0009 (a bitmap scan), not by reading every row."""
    from rearq_tasks.queries import language, search
    from rearq_tasks.queries.arguments import args_q, kwargs_q

    now = timezone.now()
    only_these_rows([
        TaskLog(job_id=f"gin-{i}", task_name="t", queue_name="q", status="success",
                kwargs={"order_id": i, "user": {"plan": "free" if i % 9 else "business"}},
                args=[i, "eur"], enqueue_time=now - dt.timedelta(seconds=i))
        for i in range(3000)
    ])  # fmt: skip
    searched = language.query_q(language.parse("kwargs.order_id:17"), lambda t: search.words_q(t))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = {
            "kwargs": plan_of(cursor, TaskLog.objects.filter(kwargs_q({"order_id": 17}))),
            "args": plan_of(cursor, TaskLog.objects.filter(args_q([17]))),
            "search": plan_of(cursor, TaskLog.objects.filter(searched).order_by()),
        }
    assert "tasklog_kwargs_gin_idx" in plans["kwargs"], plans
    assert "tasklog_args_gin_idx" in plans["args"], plans
    assert "tasklog_kwargs_gin_idx" in plans["search"], plans
    assert TaskLog.objects.filter(searched).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only plan")
def test_an_argument_search_page_is_sorted_from_the_gin_matches() -> None:
    """``index_first``: the newest-first page of an argument search does not walk the
    ``enqueue_time`` index (which, for a rare value, reads the whole table)."""
    from rearq_tasks.queries.arguments import index_first, kwargs_q

    now = timezone.now()
    only_these_rows([
        TaskLog(job_id=f"first-{i}", task_name="t", queue_name="q", status="success",
                kwargs={"order_id": i}, enqueue_time=now - dt.timedelta(seconds=i))
        for i in range(3000)
    ])  # fmt: skip
    wanted = kwargs_q({"order_id": 2999}) | kwargs_q({"order_id": "2999"})
    page = index_first(TaskLog.objects.filter(wanted))[:1]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = plan_of(cursor, page)
    assert "tasklog_kwargs_gin_idx" in plan and "enqueue_time" not in plan.split("Sort Key")[0]
    assert [row.job_id for row in page] == ["first-2999"]


def _validity(name: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s",
            [name],
        )
        found = cursor.fetchone()
    return None if found is None else found[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="CONCURRENTLY is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("0002_api_search_and_stats_indexes", "tasklog_worker_idx"),
        ("0005_failed_partial_indexes", "tasklog_failed_enq_idx"),
        ("0009_argument_gin_indexes", "tasklog_kwargs_gin_idx"),
        ("0012_workers_page", "tasklog_finish_worker_idx"),
    ],
)
def test_an_interrupted_concurrent_build_is_redone_when_migrate_runs_again(
    module: str, name: str
) -> None:
    """A failed ``CREATE INDEX CONCURRENTLY`` leaves an invalid index of that name; running the
    migration again must not take it for done (PostgreSQL never uses an invalid index)."""
    import importlib

    from django.apps import apps
    from django.db import DatabaseError

    migration = importlib.import_module(f"rearq_tasks.migrations.{module}")
    create = getattr(migration, "create_indexes", None) or migration.create_index
    table = TaskLog._meta.db_table
    TaskLog.objects.bulk_create(
        [
            TaskLog(
                job_id=f"dup-{i}",
                task_name="same",
                queue_name="default",
                enqueue_time=timezone.now(),
            )
            for i in range(3)
        ]  # fmt: skip
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            # Interrupted: a unique build over duplicates fails and leaves the index invalid.
            with pytest.raises(DatabaseError):
                cursor.execute(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON {table} (task_name)')
        assert _validity(name) is False
        with connection.schema_editor(atomic=False) as editor:
            create(apps, editor)
        assert _validity(name) is True
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
            definition = cursor.fetchone()[0]
        assert "UNIQUE" not in definition and "task_name" not in definition, definition
    finally:
        if _validity(name) is not True:  # leave the database as the migrations made it
            with connection.cursor() as cursor:
                cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            with connection.schema_editor(atomic=False) as editor:
                create(apps, editor)
