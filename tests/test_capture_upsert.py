"""The guarded upsert on the real database: late, duplicate and concurrent events."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import uuid
from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.factories import UserFactory
from rearq_tasks.capture import upsert
from rearq_tasks.capture.events import fold, may_replace, to_ms
from rearq_tasks.capture.upsert import upsert_records
from rearq_tasks.models import TERMINAL_STATUSES, TaskLog, can_transition

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
# PostgreSQL has two write paths (COPY + INSERT … SELECT for batches, VALUES for a few rows):
# every test here runs on each, with the COPY path forced even for one row.
WRITE_PATHS = ["values", "copy"] if connection.vendor == "postgresql" else ["values"]


@pytest.fixture(autouse=True, params=WRITE_PATHS)
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(upsert, "COPY_MIN_ROWS", 1 if request.param == "copy" else 10**9)
    return request.param


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
            event(
                "j1",
                "success",
                start_time=start,
                finish_time=finish,
                success=True,
                result="3",
                duration_ms=2000,
                worker_id="w-1",
            ),  # fmt: skip
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
    assert (row.status, row.worker_id, row.error_message) == (
        "in_progress",
        "w2",
        "attempt 1 failed",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("batched", [False, True])
def test_a_later_attempt_never_keeps_an_earlier_attempts_start_or_duration(batched: bool) -> None:
    """Attempt 1 failed (row deferred with its start, worker and duration); then events of
    attempt 2 that do not carry them (ReArq's in-progress as reconcile reads it, an expiry,
    a failure before the start) must not leave attempt 1's there as attempt 2's."""
    start1 = to_ms(T0 + dt.timedelta(seconds=1))
    attempt1 = [event("j9", "in_progress", start_time=start1, worker_id="w-1"),
                event("j9", "deferred", 1, start_time=start1, worker_id="w-1",
                      duration_ms=200, error_message="attempt 1 failed")]  # fmt: skip
    fetched = event("j9", "in_progress", 1)  # no start: fetched, not started (yet)
    if batched:
        upsert_records(fold([*attempt1, fetched]))
    else:
        upsert_records(fold(attempt1))
        assert TaskLog.objects.get(job_id="j9").start_time == T0 + dt.timedelta(seconds=1)
        upsert_records([fetched])
    row = TaskLog.objects.get(job_id="j9")
    assert (row.status, row.job_retries) == ("in_progress", 1)
    assert row.error_message == "attempt 1 failed"  # the last error stays
    assert (row.start_time, row.worker_id, row.duration_ms, row.finish_time) == (None,) * 4
    start2 = to_ms(T0 + dt.timedelta(seconds=5))
    upsert_records([event("j9", "in_progress", 1, start_time=start2, worker_id="w-2")])
    upsert_records([event("j9", "in_progress", 1)])  # the same attempt: keeps its start
    assert TaskLog.objects.get(job_id="j9").start_time == T0 + dt.timedelta(seconds=5)
    upsert_records([event("j9", "deferred", 2, start_time=start2, worker_id="w-2",
                          duration_ms=300, error_message="attempt 2 failed")])  # fmt: skip
    upsert_records([event("j9", "expired", 2, success=False)])  # attempt 3 never ran
    row = TaskLog.objects.get(job_id="j9")
    assert (row.status, row.start_time, row.worker_id, row.duration_ms) == (
        "expired", None, None, None)  # fmt: skip


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
    events = [
        event(job_id, s, r, result=f"{i}", worker_id=f"w-{i}" if i % 2 else None)
        for i, (s, r) in enumerate(steps)
    ]
    compared = ("status", "job_retries", "result", "worker_id")
    try:
        for e in events:
            upsert_records([e])
        row = TaskLog.objects.values(*compared).get(job_id=job_id)
        folded = fold(events)[0]
        assert row == {k: folded.get(k) for k in compared}
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


TERMINAL_EXAMPLES = [
    ("success", {"success": True, "result": "ok"}),
    ("failed", {"success": False, "error_message": "boom"}),
    ("expired", {"success": False}),
    ("canceled", {"error_message": "canceled"}),
]


@pytest.mark.django_db
def test_one_batch_of_late_duplicate_and_terminal_events(write_path: str) -> None:
    """A whole batch against rows in every state: each row decides for itself."""
    alice = UserFactory()
    stored = [
        event(f"b{i}", status, **fields) for i, (status, fields) in enumerate(TERMINAL_EXAMPLES)
    ]
    stored.append(event("b-running", "in_progress", start_time=to_ms(T0), worker_id="w1"))
    stored.append(event("b-retry", "deferred", retries=1, error_message="attempt 1"))
    stored.append(event("b-user", "queued", user_id=alice.pk, queue_name="high"))
    upsert_records(stored)
    batch = [event(f"b{i}", "in_progress", worker_id="late") for i in range(len(TERMINAL_EXAMPLES))]
    batch[0] = event("b0", "success", success=True, result="ok")  # the same terminal event twice
    batch += [
        event("b-running", "queued"),  # late: must not hide the running job
        event("b-retry", "in_progress", retries=0),  # a stale start of attempt 0
        event("b-user", "in_progress", queue_name="", user_id=None, worker_id="w2"),
        event("b-new", "success", success=True, result="7", duration_ms=5),  # never seen before
    ]
    with CaptureQueriesContext(connection) as queries:
        assert upsert_records(batch) == len(batch)
    if write_path == "copy":
        assert any(upsert.STAGE in q["sql"] for q in queries.captured_queries)
    rows = {r.job_id: r for r in TaskLog.objects.filter(job_id__startswith="b")}
    for i, (status, fields) in enumerate(TERMINAL_EXAMPLES):
        row = rows[f"b{i}"]
        assert row.status == status and row.worker_id is None
        for name, value in fields.items():
            assert getattr(row, name) == value
    assert (rows["b-running"].status, rows["b-running"].worker_id) == ("in_progress", "w1")
    assert (rows["b-retry"].status, rows["b-retry"].job_retries) == ("deferred", 1)
    user_row = rows["b-user"]
    assert (user_row.status, user_row.user_id, user_row.queue_name) == (
        "in_progress",
        alice.pk,
        "high",
    )
    new = rows["b-new"]
    assert (new.status, new.result, new.duration_ms, new.args, new.kwargs) == (
        "success", "7", 5, [1, 2], {"x": 1},
    )  # fmt: skip


@pytest.mark.django_db
def test_missing_fields_get_the_column_defaults_and_enqueue_time_falls_back() -> None:
    start = T0 + dt.timedelta(seconds=2)
    bare = {"job_id": "bare", "status": "in_progress", "start_time": to_ms(start)}
    upsert_records([bare])
    row = TaskLog.objects.get(job_id="bare")
    assert (row.task_name, row.queue_name, row.args, row.kwargs) == ("", "", [], {})
    assert (row.job_retry, row.job_retries, row.job_retry_after) == (0, 0, 0)
    assert row.enqueue_time == start and row.start_time == start
    assert row.finish_time is None and row.user_id is None


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 4), st.sampled_from(STATUSES), st.integers(0, 2)),
                 min_size=1, max_size=8),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_copy_and_values_paths_store_the_same_rows(
    batches: list[list[tuple[int, str, int]]],
) -> None:
    """The same batches through both statements give the same rows, field for field."""
    prefixes = {"copy": uuid.uuid4().hex[:8], "values": uuid.uuid4().hex[:8]}
    try:
        for batch in batches:
            for path, prefix in prefixes.items():
                events = [
                    event(f"{prefix}-{job}", status, retries, result=f"r{n}", worker_id=f"w{n}")
                    for n, (job, status, retries) in enumerate(batch)
                ]
                records = fold(events)
                original = upsert.COPY_MIN_ROWS
                upsert.COPY_MIN_ROWS = 1 if path == "copy" else 10**9
                try:
                    upsert_records(records)
                finally:
                    upsert.COPY_MIN_ROWS = original
        fields = [f for f in upsert.FIELDS if f != "job_id"]

        def rows(prefix: str) -> dict[str, dict[str, Any]]:
            qs = TaskLog.objects.filter(job_id__startswith=prefix).values("job_id", *fields)
            return {r.pop("job_id").split("-", 1)[1]: r for r in qs}

        assert rows(prefixes["copy"]) == rows(prefixes["values"])
    finally:
        for prefix in prefixes.values():
            TaskLog.objects.filter(job_id__startswith=prefix).delete()


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_in_opposite_orders_neither_deadlock_nor_lose_updates() -> None:
    """Two collectors upserting overlapping batches at once: rows are locked in key order."""
    if connections["default"].vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    job_ids = [uuid.uuid4().hex for _ in range(200)]
    errors: list[BaseException] = []

    def writer(kind: str) -> None:
        try:
            ids = job_ids if kind == "finish" else list(reversed(job_ids))
            for start in range(0, len(ids), 50):
                part = ids[start : start + 50]
                if kind == "finish":
                    upsert_records([event(j, "success", success=True, result="done") for j in part])
                else:
                    upsert_records([event(j, "in_progress", worker_id="w") for j in part])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    for _ in range(3):
        threads = [threading.Thread(target=writer, args=(k,)) for k in ("finish", "start")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    rows = TaskLog.objects.filter(job_id__in=job_ids)
    assert rows.count() == 200
    assert rows.filter(status="success", result="done").count() == 200
