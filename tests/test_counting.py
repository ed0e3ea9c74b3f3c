"""Counts and sorted pages of searches run with exact bitmaps on PostgreSQL (a larger
``work_mem`` for those statements only); elsewhere nothing changes."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from harness.factories import TaskLogFactory
from rearq_tasks.models import TaskLog
from rearq_tasks.queries import counting

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"


def _work_mem_kb() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem'")
        return cursor.fetchone()[0]


def test_capped_count_counts_up_to_the_cap_plus_one() -> None:
    for i in range(5):
        TaskLogFactory(job_id=f"c{i}")
    assert counting.capped_count(TaskLog.objects.all(), 10) == 5
    assert counting.capped_count(TaskLog.objects.all(), 3) == 4


@pytest.mark.skipif(not POSTGRES, reason="work_mem is PostgreSQL's")
def test_work_mem_is_raised_inside_and_set_back_after() -> None:
    before = _work_mem_kb()
    assert before < counting.COUNT_WORK_MEM_KB  # the stock 4 MB
    with counting.exact_bitmaps("default"):
        assert _work_mem_kb() == counting.COUNT_WORK_MEM_KB
    assert _work_mem_kb() == before


@pytest.mark.skipif(not POSTGRES, reason="work_mem is PostgreSQL's")
def test_an_error_inside_rolls_the_setting_back_and_propagates() -> None:
    before = _work_mem_kb()
    with pytest.raises(DatabaseError), counting.exact_bitmaps("default"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    assert _work_mem_kb() == before
    with transaction.atomic():  # the connection is usable
        assert counting.capped_count(TaskLog.objects.all(), 1) == 0


@pytest.mark.skipif(not POSTGRES, reason="work_mem is PostgreSQL's")
def test_a_higher_work_mem_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(counting, "COUNT_WORK_MEM_KB", 64)
    before = _work_mem_kb()
    with counting.exact_bitmaps("default"):
        assert _work_mem_kb() == before


@pytest.mark.skipif(not POSTGRES, reason="work_mem is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_commit_ends_the_setting() -> None:
    before = _work_mem_kb()
    assert not connection.in_atomic_block
    with counting.exact_bitmaps("default"):
        assert _work_mem_kb() == counting.COUNT_WORK_MEM_KB
    assert _work_mem_kb() == before


def test_only_filtered_counts_raise_work_mem() -> None:
    from django.test.utils import CaptureQueriesContext

    TaskLogFactory(job_id="f1", status="failed")
    with CaptureQueriesContext(connection) as plain:
        assert counting.capped_count(TaskLog.objects.all(), 10) == 1
    with CaptureQueriesContext(connection) as filtered:
        assert counting.capped_count(TaskLog.objects.filter(status="failed"), 10) == 1
    assert len(plain.captured_queries) == 1
    raised = any("set_config" in q["sql"] for q in filtered.captured_queries)
    assert raised == POSTGRES
