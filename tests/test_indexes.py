"""Migration 0002: the API's PostgreSQL indexes exist there and nowhere else."""

from __future__ import annotations

import pytest
from django.db import connection

from rearq_tasks.models import TaskLog

pytestmark = pytest.mark.django_db

API_INDEXES = {
    "tasklog_enq_cover_idx",
    "tasklog_task_name_trgm_idx",
    "tasklog_queue_name_trgm_idx",
    "tasklog_worker_id_trgm_idx",
    "tasklog_error_message_trgm_idx",
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
    from rearq_tasks.search import apply

    qs = apply(TaskLog.objects.order_by(), "smtp")  # the shape of the count query
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tasklog_error_message_trgm_idx" in plan
