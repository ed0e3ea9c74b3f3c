"""The guarded upsert on the real database: late, duplicate and concurrent events."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import uuid
from typing import Any

import pytest
from django.db import connections
from hypothesis import given, settings
from hypothesis import strategies as st

from rearq_tasks.capture.events import fold, may_replace, to_ms
from rearq_tasks.capture.upsert import upsert_records
from rearq_tasks.models import TERMINAL_STATUSES, TaskLog, can_transition
from tests.factories import UserFactory

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


def event(job_id: str, status: str, retries: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "task_name": "add",
        "queue_name": "default",
        "args": [1, 2],
        "kwargs": {"x": 1},
        "status": status,
        "job_retry": 3,
        "job_retries": retries,
        "job_retry_after": 60,
        "enqueue_time": to_ms(T0),
        **fields,
    }


@pytest.mark.django_db
def test_a_job_started_and_finished_in_one_batch_is_one_row() -> None:
    start, finish = to_ms(T0 + dt.timedelta(seconds=1)), to_ms(T0 + dt.timedelta(seconds=3))
    records = fold(
        [
            event("j1", "queued"),
            event("j1", "in_progress", start_time=start, worker_id="w-1"),
            event("j1", "success", start_time=start, finish_time=finish, success=True,
                  result="3", duration_ms=2000, worker_id="w-1"),  # fmt: skip
        ]
    )
    assert len(records) == 1
    upsert_records(records)
    row = TaskLog.objects.get(job_id="j1")
    assert (row.status, row.result, row.duration_ms, row.worker_id) == ("success", "3", 2000, "w-1")
    assert row.args == [1, 2] and row.kwargs == {"x": 1}
    assert row.start_time == T0 + dt.timedelta(seconds=1)


@pytest.mark.django_db
def test_terminal_rows_never_move_backwards() -> None:
    upsert_records([event("j2", "success", success=True, result="ok")])
    for late in ("queued", "in_progress", "deferred", "failed", "canceled"):
        upsert_records([event("j2", late, error_message="late")])
    row = TaskLog.objects.get(job_id="j2")
    assert (row.status, row.result, row.error_message) == ("success", "ok", None)


@pytest.mark.django_db
def test_late_queued_does_not_hide_a_running_job_but_a_retry_moves_on() -> None:
    start = to_ms(T0)
    upsert_records([event("j3", "in_progress", start_time=start, worker_id="w")])
    upsert_records([event("j3", "queued")])
    assert TaskLog.objects.get(job_id="j3").status == "in_progress"
    upsert_records([event("j3", "deferred", retries=1, error_message="attempt 1 failed")])
    row = TaskLog.objects.get(job_id="j3")
    assert (row.status, row.job_retries, row.start_time) == ("deferred", 1, T0)
    upsert_records([event("j3", "in_progress", retries=0)])  # a stale start of attempt 0
    assert TaskLog.objects.get(job_id="j3").status == "deferred"
    upsert_records([event("j3", "in_progress", retries=1, worker_id="w2")])
    row = TaskLog.objects.get(job_id="j3")
    assert (row.status, row.worker_id, row.error_message) == ("in_progress", "w2", "attempt 1 failed")


@pytest.mark.django_db
def test_user_is_filled_whatever_the_order_and_never_replaced() -> None:
    alice, bob = UserFactory(), UserFactory()
    upsert_records([event("j4", "success", success=True)])
    upsert_records([event("j4", "queued", user_id=alice.pk)])
    upsert_records([event("j4", "queued", user_id=bob.pk)])
    row = TaskLog.objects.get(job_id="j4")
    assert (row.status, row.user_id) == ("success", alice.pk)


@pytest.mark.django_db
def test_unknown_queue_keeps_the_known_one() -> None:
    upsert_records([event("j5", "queued", queue_name="high")])
    upsert_records([event("j5", "in_progress", queue_name=None)])
    assert TaskLog.objects.get(job_id="j5").queue_name == "high"


STATUSES = ["queued", "deferred", "in_progress", "success", "failed", "expired", "canceled"]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(0, 2)), min_size=1, max_size=6))
def test_sql_guard_agrees_with_the_python_fold(steps: list[tuple[str, int]]) -> None:
    """Writing events one by one gives the row that folding them in memory gives."""
    job_id = uuid.uuid4().hex
    events = [event(job_id, s, r, result=f"{i}") for i, (s, r) in enumerate(steps)]
    try:
        for e in events:
            upsert_records([e])
        row = TaskLog.objects.values("status", "job_retries", "result").get(job_id=job_id)
        folded = fold(events)[0]
        assert row == {k: folded[k] for k in ("status", "job_retries", "result")}
    finally:
        TaskLog.objects.filter(job_id=job_id).delete()


def test_python_guard_respects_can_transition() -> None:
    for old, new in itertools.product(STATUSES, STATUSES):
        allowed = may_replace({"status": old, "job_retries": 0}, {"status": new, "job_retries": 0})
        if old in TERMINAL_STATUSES:
            assert allowed == can_transition(old, new)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_lose_the_terminal_state() -> None:
    if connections["default"].vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    job_ids = [uuid.uuid4().hex for _ in range(50)]
    errors: list[BaseException] = []

    def writer(kind: str) -> None:
        try:
            for job_id in job_ids:
                if kind == "finish":
                    upsert_records([event(job_id, "success", success=True, result="done")])
                else:
                    upsert_records([event(job_id, "in_progress", worker_id="w")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(k,)) for k in ("finish", "start") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert TaskLog.objects.filter(job_id__in=job_ids, status="success").count() == 50
