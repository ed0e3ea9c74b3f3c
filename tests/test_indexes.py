"""Migrations 0002 and 0005: the API's PostgreSQL indexes exist there and nowhere else."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Q

from rearq_tasks.models import TaskLog

pytestmark = pytest.mark.django_db

API_INDEXES = {
    "tasklog_enq_cover_idx",
    "tasklog_worker_idx",
    "tasklog_error_message_trgm_idx",
    "tasklog_failed_task_idx",
    "tasklog_failed_enq_idx",
}


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TaskLog._meta.db_table)
    return {name for name, info in constraints.items() if info["index"]}


def test_api_indexes_only_on_postgres() -> None:
    names = index_names()
    if connection.vendor == "postgresql":
        assert API_INDEXES <= names
    else:
        assert not API_INDEXES & names


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only plan")
def test_search_plan_uses_the_trigram_indexes() -> None:
    from rearq_tasks.queries.search import apply

    qs = apply(TaskLog.objects.order_by(), "smtp")  # the shape of the count query
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tasklog_error_message_trgm_idx" in plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="loose index scan is PostgreSQL's")
def test_distinct_values_by_loose_index_scan() -> None:
    from rearq_tasks.queries.distinct import distinct_values
    from rearq_tasks.queries.search import contains_q
    from tests.factories import TaskLogFactory

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
    qs = TaskLog.objects.failed().filter(task_name__in=["send_email"])
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for query in (qs.order_by().values("id")[:1001], qs.order_by("-enqueue_time")[:50]):
            sql, params = query.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    assert all("tasklog_failed_" in plan for plan in plans), plans
