"""Job history: raw events -> TaskEvent rows, idempotence, reconcile, API, admin, stats."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks.capture import history_writer as capture_history
from rearq_tasks.capture import worker_hooks
from rearq_tasks.capture.collector import _write
from rearq_tasks.capture.events import fold, to_ms
from rearq_tasks.capture.history_writer import insert_rows, rows_from_event, rows_from_rearq
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog
from rearq_tasks.ops.retention import purge
from rearq_tasks.payloads import payload_rules
from rearq_tasks.queries.history import job_history
from rearq_tasks.queue.reconcile import mark_lost_jobs, write_batch

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
BASE = "/cfg/tasks/logs/"


def at(seconds: float) -> float:
    return to_ms(T0 + dt.timedelta(seconds=seconds))


def event(job_id: str, status: str, retries: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "job_id": job_id, "task_name": "charge", "queue_name": "default", "args": [1],
        "kwargs": {}, "status": status, "job_retry": 2, "job_retries": retries,
        "job_retry_after": 1, "enqueue_time": at(0), **fields,
    }  # fmt: skip


def fails_twice_then_succeeds(job_id: str = "j1") -> list[dict[str, Any]]:
    """What the hooks send for a job whose first two attempts raise (starts coalesced)."""
    events = [event(job_id, "queued")]
    for attempt in (1, 2):
        start = at(10 * attempt)
        events.append(
            event(job_id, "deferred", attempt, start_time=start, worker_id=f"w-{attempt}",
                  duration_ms=200, event_time=start + 200,
                  error_message=f"Run job error in NO.{attempt - 1} times, exc: boom {attempt}",
                  traceback=f"Traceback (most recent call last):\nValueError: boom {attempt}\n")
        )  # fmt: skip
    events.append(
        event(job_id, "success", 2, start_time=at(30), finish_time=at(30.5), duration_ms=500,
              worker_id="w-3", success=True, result="ok")
    )  # fmt: skip
    return events


def capture(events: list[dict[str, Any]]) -> None:
    _write(fold(events), events)


def history(job_id: str) -> list[tuple[int, str, str | None]]:
    """The history as every reader shows it: stored rows and the ones the row implies."""
    log = TaskLog.objects.get(job_id=job_id)
    return [(e.attempt, e.event, e.worker_id) for e in job_history(log)]


def stored(job_id: str) -> list[tuple[int, str]]:
    return list(TaskEvent.objects.filter(job_id=job_id).values_list("attempt", "event"))


# --- raw events -> rows -----------------------------------------------------------------


def test_each_raw_event_maps_to_its_stored_history_rows() -> None:
    assert rows_from_event(event("a", "queued")) == []  # TaskLog.enqueue_time says it
    assert [r["event"] for r in rows_from_event(event("a", "deferred"))] == ["deferred"]
    started = rows_from_event(event("a", "in_progress", 1, start_time=at(5), worker_id="w"))
    assert [(r["event"], r["attempt"], r["worker_id"]) for r in started] == [("started", 2, "w")]
    assert rows_from_event(event("a", "in_progress", 0, start_time=at(5), worker_id="w")) == []
    clean = event("a", "success", 0, start_time=at(5), finish_time=at(6), worker_id="w",
                  duration_ms=1000, success=True)  # fmt: skip
    assert rows_from_event(clean) == []
    first_failed = rows_from_event(
        event("a", "failed", 0, start_time=at(5), finish_time=at(6), worker_id="w",
              duration_ms=1000, error_message="x", success=False)
    )  # fmt: skip
    assert [(r["event"], r["attempt"]) for r in first_failed] == [("started", 1), ("failed", 1)]
    coalesced = rows_from_event(
        event("a", "failed", 2, start_time=at(5), finish_time=at(6), worker_id="w",
              duration_ms=1000, error_message="x", success=False)
    )  # fmt: skip
    assert [(r["event"], r["attempt"], r["timestamp"]) for r in coalesced] == [
        ("started", 3, at(5)), ("failed", 3, at(6))
    ]  # fmt: skip
    disabled = event("a", "queued", error_message="task 'x' is disabled")
    assert rows_from_event(disabled) == []
    assert rows_from_event(event("a", "deferred", 1)) == []  # a re-queued retry


def test_a_job_failing_twice_is_three_attempts_with_two_errors() -> None:
    capture(fails_twice_then_succeeds())
    assert history("j1") == [
        (1, "enqueued", None), (1, "started", "w-1"), (1, "retry_scheduled", "w-1"),
        (2, "started", "w-2"), (2, "retry_scheduled", "w-2"),
        (3, "started", "w-3"), (3, "succeeded", "w-3"),
    ]  # fmt: skip
    assert (1, "enqueued") not in stored("j1") and len(stored("j1")) == 6
    errors = TaskEvent.objects.filter(job_id="j1", event="retry_scheduled")
    assert [e.traceback.splitlines()[-1] for e in errors] == ["ValueError: boom 1",
                                                             "ValueError: boom 2"]  # fmt: skip
    assert [e.duration_ms for e in errors] == [200, 200]
    log = TaskLog.objects.get(job_id="j1")
    assert (log.status, log.job_retries, log.worker_id) == ("success", 2, "w-3")


def test_duplicate_events_never_make_a_second_row() -> None:
    events = fails_twice_then_succeeds()
    capture(events + events)  # twice in one batch
    capture(events)  # and replayed (a collector died before XACK)
    capture([event("j1", "in_progress", 0, start_time=at(10), worker_id="w-1")])  # late start
    capture([event("j1", "in_progress", 2, start_time=at(30), worker_id="w-3")])  # late start
    assert TaskEvent.objects.filter(job_id="j1").count() == 6
    first = fails_twice_then_succeeds()[1]
    assert insert_rows(rows_from_event(first)) == 2  # ignored by the database
    assert TaskEvent.objects.filter(job_id="j1").count() == 6
    assert len(history("j1")) == 7


@pytest.mark.django_db(transaction=True)
def test_history_is_written_in_the_upsert_transaction(monkeypatch) -> None:
    from rearq_tasks.capture import history_writer as history_mod

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("database gone")

    monkeypatch.setattr(history_mod, "insert_rows", broken)
    with pytest.raises(RuntimeError):
        capture(fails_twice_then_succeeds("atomic"))
    assert not TaskLog.objects.filter(job_id="atomic").exists()  # rolled back with it


def test_tracebacks_are_bounded_redacted_and_nul_safe(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "PAYLOAD_MAX_BYTES": 300}
    text = 'Traceback\n  charge(password="hunter2")\nValueError: \x00 card 4111 1111 1111 1111\n'
    capture([event("tb", "failed", 0, start_time=at(1), finish_time=at(2), worker_id="w",
                   error_message="boom", success=False, traceback=text + "x" * 5000)])  # fmt: skip
    stored = TaskEvent.objects.get(job_id="tb", event="failed").traceback
    assert "hunter2" not in stored and "4111" not in stored and "\x00" not in stored
    assert 'password="[redacted]"' in stored and "[truncated:" in stored
    assert len(stored.encode()) < 400


def test_the_task_function_keeps_the_failing_attempts_traceback() -> None:
    async def task(secret_token: str) -> None:
        raise KeyError(f"token={secret_token}")

    class Task:  # ReArq's Task: a plain object whose attributes ReArq reads
        function = None

    original = Task()
    original.function = task
    job = rearq_job("tb-1", "in_progress", 0)
    started: list[tuple] = []
    runtime = SimpleNamespace(emitter=SimpleNamespace(started=lambda *a: started.append(a)),
                              canceled={}, rules=payload_rules())  # fmt: skip
    ctx = worker_hooks._JobContext(job, "rearq:queue:default", "w-1", runtime)
    view = worker_hooks._captured_view(original)
    assert isinstance(view, Task) and view.function is not task
    original.name = "renamed"  # the view shares the task's attributes
    assert view.name == "renamed"
    wrapped = view.function

    async def run() -> None:
        worker_hooks._running.set(ctx)
        await wrapped("s3cr3t")

    with pytest.raises(KeyError):
        asyncio.run(run())
    assert "in task" in ctx.traceback and "KeyError" in ctx.traceback
    assert "s3cr3t" not in ctx.traceback and "token=[redacted]" in ctx.traceback
    assert [s[:3] for s in started] == [(job, "rearq:queue:default", "w-1")]
    assert started[0][3] == ctx.start_ms


# --- reconcile --------------------------------------------------------------------------


def rearq_job(job_id: str, status: str, retries: int) -> SimpleNamespace:
    return SimpleNamespace(
        job_id=job_id, task="charge", args=[1], kwargs={}, status=status, job_retry=2,
        job_retries=retries, job_retry_after=1, enqueue_time=T0, expire_time=None,
    )  # fmt: skip


def rearq_result(n: int, success: bool, text: str) -> SimpleNamespace:
    start = T0 + dt.timedelta(seconds=10 * n)
    return SimpleNamespace(worker=f"w-{n}", success=success, result=text, start_time=start,
                           finish_time=start + dt.timedelta(milliseconds=250))  # fmt: skip


def test_reconcile_rebuilds_history_from_rearq_results_idempotently() -> None:
    from rearq_tasks.queue.reconcile import record_from_rearq

    job = rearq_job("r1", "success", 2)
    results = [rearq_result(1, False, "exc: a"), rearq_result(2, False, "exc: b"),
               rearq_result(3, True, "ok")]  # fmt: skip
    rows = rows_from_rearq(job, results)
    for _ in range(2):
        write_batch([record_from_rearq(job, results[-1], "rearq:queue:default")], rows)
    assert history("r1") == [
        (1, "enqueued", None), (1, "started", "w-1"), (1, "retry_scheduled", "w-1"),
        (2, "started", "w-2"), (2, "retry_scheduled", "w-2"),
        (3, "started", "w-3"), (3, "succeeded", "w-3"),
    ]  # fmt: skip
    assert list(
        TaskEvent.objects.filter(job_id="r1", event="retry_scheduled").values_list(
            "error_message", "duration_ms"
        )
    ) == [("exc: a", 250), ("exc: b", 250)]
    assert not TaskEvent.objects.filter(job_id="r1", event="repaired").exists()  # imported
    assert len(stored("r1")) == 6  # enqueued is the row's enqueue_time


def test_reconcile_stores_nothing_for_a_clean_first_attempt() -> None:
    from rearq_tasks.queue.reconcile import record_from_rearq

    job = rearq_job("r0", "success", 0)
    results = [rearq_result(1, True, "ok")]
    assert rows_from_rearq(job, results) == []
    write_batch([record_from_rearq(job, results[0], "rearq:queue:default")], [])
    assert stored("r0") == []
    events = job_history(TaskLog.objects.get(job_id="r0"))
    assert [(e.attempt, e.event, e.worker_id, e.duration_ms) for e in events] == [
        (1, "enqueued", None, None), (1, "started", "w-1", None), (1, "succeeded", "w-1", 250)
    ]  # fmt: skip
    assert [e.timestamp for e in events] == [
        T0, results[0].start_time, results[0].finish_time
    ]  # fmt: skip


def test_reconcile_marks_a_missed_end_as_repaired() -> None:
    from rearq_tasks.queue.reconcile import record_from_rearq

    TaskLogFactory(job_id="r2", task_name="charge", status="in_progress", job_retries=0)
    job = rearq_job("r2", "failed", 0)
    results = [rearq_result(1, False, "Run job error, exc: gone")]
    write_batch([record_from_rearq(job, results[0], None)], rows_from_rearq(job, results))
    repaired = TaskEvent.objects.get(job_id="r2", event="repaired")
    assert repaired.attempt == 1 and "in_progress -> failed" in repaired.error_message
    assert TaskEvent.objects.get(job_id="r2", event="failed").error_message.endswith("gone")


def test_a_lost_job_closes_its_started_event_as_lost(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "LOST_JOB_GRACE_SECONDS": 0}
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=1)
    capture([event("lost1", "in_progress", 1, start_time=to_ms(start), worker_id="w-9",
                   enqueue_time=to_ms(start))])  # fmt: skip
    assert mark_lost_jobs({}, now=now) == 1
    assert history("lost1") == [(1, "enqueued", None), (2, "started", "w-9"), (2, "lost", "w-9")]
    assert stored("lost1") == [(2, "started"), (2, "lost")]  # enqueued: the row's enqueue_time
    lost = TaskEvent.objects.get(job_id="lost1", event="lost")
    assert lost.error_message.startswith("lost:") and lost.duration_ms >= 3_600_000
    assert mark_lost_jobs({}, now=now) == 0


def test_a_lost_first_attempt_stores_its_started_with_lost(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "LOST_JOB_GRACE_SECONDS": 0}
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=1)
    capture([event("lost0", "queued", enqueue_time=to_ms(start)),
             event("lost0", "in_progress", 0, start_time=to_ms(start), worker_id="w-9",
                   enqueue_time=to_ms(start))])  # fmt: skip
    assert stored("lost0") == []
    assert history("lost0") == [(1, "enqueued", None), (1, "started", "w-9")]  # while running
    assert mark_lost_jobs({}, now=now) == 1
    assert stored("lost0") == [(1, "started"), (1, "lost")]
    assert history("lost0") == [(1, "enqueued", None), (1, "started", "w-9"), (1, "lost", "w-9")]
    assert mark_lost_jobs({}, now=now) == 0
    assert len(stored("lost0")) == 2


# --- implicit rows: stored less, shown the same -------------------------------------------

SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "clean": [event("s", "queued"),
              event("s", "in_progress", 0, start_time=at(1), worker_id="w"),
              event("s", "success", 0, start_time=at(1), finish_time=at(1.25), worker_id="w",
                    duration_ms=250, success=True, result="ok")],
    "clean-coalesced": [event("s", "queued"),
                        event("s", "success", 0, start_time=at(1), finish_time=at(1),
                              worker_id="w", duration_ms=0, success=True)],
    "running": [event("s", "queued"),
                event("s", "in_progress", 0, start_time=at(1), worker_id="w")],
    "waiting": [event("s", "queued")],
    "deferred-then-clean": [event("s", "deferred"),
                            event("s", "success", 0, start_time=at(5), finish_time=at(6),
                                  worker_id="w", duration_ms=1000, success=True)],
    "failed-once": [event("s", "queued"),
                    event("s", "in_progress", 0, start_time=at(1), worker_id="w"),
                    event("s", "failed", 0, start_time=at(1), finish_time=at(2), worker_id="w",
                          duration_ms=1000, success=False, error_message="boom",
                          traceback="Traceback\nValueError: boom\n")],
    "canceled-running": [event("s", "queued"),
                         event("s", "in_progress", 0, start_time=at(1), worker_id="w"),
                         event("s", "canceled", 0, start_time=at(1), finish_time=at(3),
                               worker_id="w", duration_ms=2000, error_message="canceled")],
    "expired": [event("s", "queued"),
                event("s", "expired", 0, finish_time=at(9), success=False,
                      error_message="expired before it ran")],
    "retried-running": fails_twice_then_succeeds("s")[:3]
    + [event("s", "in_progress", 2, start_time=at(30), worker_id="w-3")],
    "retried": fails_twice_then_succeeds("s"),
}  # fmt: skip


def shown(log: TaskLog) -> list[dict[str, Any]]:
    fields = ("attempt", "event", "timestamp", "worker_id", "duration_ms", "error_message",
              "traceback", "queue_wait_ms")  # fmt: skip
    return [{f: getattr(e, f) for f in fields} for e in job_history(log)]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_history_shown_is_what_storing_every_row_showed(name: str, monkeypatch) -> None:
    """The same events, captured with every row stored (as before implicit rows) and with
    the implicit ones left out, read back identically, bar the derived rows' null id."""
    capture(SCENARIOS[name])
    log = TaskLog.objects.get(job_id="s")
    lean, lean_rows = shown(log), TaskEvent.objects.count()
    derived = [e.id for e in job_history(log)].count(None)
    TaskEvent.objects.all().delete()
    monkeypatch.setattr(capture_history, "is_implicit", lambda *args: False)
    capture(SCENARIOS[name])
    full_rows = TaskEvent.objects.count()
    assert shown(log) == lean
    assert derived == full_rows - lean_rows
    assert [e.id for e in job_history(log)].count(None) == 0
    if name.startswith("clean"):
        assert lean_rows == 0 and [e["event"] for e in lean] == [
            "enqueued", "started", "succeeded"
        ]  # fmt: skip
    assert full_rows - lean_rows <= 3


# --- API ----------------------------------------------------------------------------------


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    user = staff_viewer(username="viewer")
    assert user.has_perm("tasks.view_tasklog")
    client.force_authenticate(user)
    return client


def test_events_endpoint_ordered_with_waits_and_durations(api) -> None:
    capture(fails_twice_then_succeeds())
    log = TaskLog.objects.get(job_id="j1")
    body = api.get(f"{BASE}{log.pk}/events/").json()
    assert [(e["attempt"], e["event"]) for e in body] == [
        (1, "enqueued"), (1, "started"), (1, "retry_scheduled"), (2, "started"),
        (2, "retry_scheduled"), (3, "started"), (3, "succeeded"),
    ]  # fmt: skip
    waits = [e["queue_wait_ms"] for e in body if e["event"] == "started"]
    assert waits == [10_000, 20_000 - 10_200, 30_000 - 20_200]
    assert [e["duration_ms"] for e in body if e["event"] != "started"] == [None, 200, 200, 500]
    assert body[2]["traceback"].endswith("ValueError: boom 1\n")
    assert api.get(f"{BASE}{log.pk}/related/").json() == []  # attempts stay in events/
    assert body[0]["id"] is None and all(e["id"] for e in body[1:])  # enqueued is the row's


def test_events_endpoint_shows_a_clean_job_that_stored_no_event(api) -> None:
    capture([event("c1", "queued"),
             event("c1", "success", 0, start_time=at(1), finish_time=at(1.5), worker_id="w",
                   duration_ms=500, success=True, result="ok")])  # fmt: skip
    assert stored("c1") == []
    log = TaskLog.objects.get(job_id="c1")
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"{BASE}{log.pk}/events/").json()
    assert len(queries) <= 3  # the row and the (empty) events query (+ auth)
    assert [(e["id"], e["attempt"], e["event"], e["worker_id"]) for e in body] == [
        (None, 1, "enqueued", None), (None, 1, "started", "w"), (None, 1, "succeeded", "w")
    ]  # fmt: skip
    assert [e["queue_wait_ms"] for e in body] == [None, 1000, None]
    assert [e["duration_ms"] for e in body] == [None, None, 500]
    assert [e["event_display"] for e in body] == ["Enqueued", "Started", "Succeeded"]


def test_attempts_min_and_had_retry_error_filters(api) -> None:
    S = StatusChoices
    TaskLogFactory(job_id="once", status=S.SUCCESS, success=True, job_retries=0)
    TaskLogFactory(job_id="recovered", status=S.SUCCESS, success=True, job_retries=2)
    TaskLogFactory(job_id="gave-up", status=S.FAILED, success=False, job_retries=2)
    TaskLogFactory(job_id="waiting-retry", status=S.DEFERRED, job_retries=2)
    TaskLogFactory(job_id="never-ran", status=S.QUEUED, job_retries=0)

    def ids(query: str) -> set[str]:
        return {r["job_id"] for r in api.get(f"{BASE}?{query}").json()["results"]}

    assert ids("had_retry_error=true") == {"recovered"}
    assert ids("attempts_min=3") == {"recovered", "gave-up"}
    assert ids("attempts_min=2") == {"recovered", "gave-up", "waiting-retry"}
    assert ids("attempts_min=1") == {"once", "recovered", "gave-up", "waiting-retry"}
    assert api.get(f"{BASE}?attempts_min=-1").json() == {
        "attempts_min": ["Ensure this value is greater than or equal to 0."]
    }
    for log in TaskLog.objects.all():  # the model property mirrors the query
        expected = TaskLog.objects.attempts_min(3).filter(pk=log.pk).exists()
        assert (log.attempts >= 3) is expected, log.job_id


def test_retries_endpoint_per_task_in_the_database(api) -> None:
    capture(fails_twice_then_succeeds("a1"))
    done = event("a2", "success", 0, start_time=at(1), finish_time=at(2), success=True,
                 worker_id="w")  # fmt: skip
    capture([event("a2", "queued"), done])
    capture([event("a3", "queued"),
             event("a3", "deferred", 1, start_time=at(1), worker_id="w", duration_ms=5,
                   error_message="Run job error in NO.0 times, exc: boom 1"),
             event("a3", "failed", 1, start_time=at(3), finish_time=at(4), worker_id="w",
                   success=False, error_message="Run job error, exc: boom 2")])  # fmt: skip
    TaskLog.objects.update(enqueue_time=dt.datetime.now(dt.UTC))
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"{BASE}retries/?period_hours=1").json()
    # The grouped query + one errors query per task (+ auth); on PostgreSQL the rollup read's
    # settings in the test's transaction: savepoint, set, put back, release (read_settings).
    assert len(queries) <= 3 + (4 if connection.vendor == "postgresql" else 0)
    assert body == [
        {
            "task_name": "charge", "completed": 3, "retried": 2, "recovered": 1,
            "retry_share": 66.67, "mean_attempts": round((3 + 1 + 2) / 3, 3),
            "first_attempt_errors": [
                {"error_message": "Run job error in NO.0 times, exc: boom 1", "count": 2}
            ],
        }
    ]  # fmt: skip
    assert api.get(f"{BASE}retries/?ordering=nope").status_code == 400


# --- admin -------------------------------------------------------------------------------


def test_admin_timeline_escaped_and_one_query_for_any_number_of_events(client) -> None:
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    hostile = [event("h1", "queued"),
               event("h1", "failed", 0, start_time=at(1), finish_time=at(2), worker_id="<b>w</b>",
                     success=False, error_message="<script>alert(1)</script>",
                     traceback="Traceback\n<img src=x onerror=alert(1)>\n")]  # fmt: skip
    capture(hostile)
    capture(fails_twice_then_succeeds("many"))
    done = event("few", "success", 0, start_time=at(1), finish_time=at(2), success=True,
                 worker_id="w")  # fmt: skip
    capture([event("few", "queued"), done])

    def page(job_id: str) -> tuple[str, int]:
        pk = TaskLog.objects.get(job_id=job_id).pk
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/admin/tasks/tasklog/{pk}/change/")
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    html, _ = page("h1")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>w</b>" not in html and "<details" in html
    _, few = page("few")
    html, many = page("many")
    assert many == few  # 7 events or 3: the same queries
    assert html.count('data-attempt="') == 3
    assert "w-1" in html and "w-2" in html and "w-3" in html
    assert html.count('<details class="mt-2">') == 2  # the two failed attempts' tracebacks


# --- retention ----------------------------------------------------------------------------


def test_cleanup_deletes_a_jobs_events_with_it() -> None:
    capture(fails_twice_then_succeeds("old"))
    capture(fails_twice_then_succeeds("new"))
    TaskLog.objects.filter(job_id="old").update(
        enqueue_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    )
    TaskLog.objects.filter(job_id="new").update(enqueue_time=dt.datetime.now(dt.UTC))
    result = purge(days=30, failed_days=30, batch_size=1)
    assert result.deleted == 1
    assert not TaskEvent.objects.filter(job_id="old").exists()
    assert TaskEvent.objects.filter(job_id="new").count() == 6


def test_reconcile_keeps_the_captured_start_and_writes_nothing_twice() -> None:
    """ReArq's start is taken before the max_jobs slot; the capture's is the true one."""
    from rearq_tasks.capture.upsert import upsert_records
    from rearq_tasks.queue.reconcile import record_from_rearq

    job = rearq_job("r5", "success", 0)
    result = rearq_result(1, True, "ok")  # ReArq: started 10 s after T0, ran 250 ms
    true_start = result.finish_time  # the task function ran at once: 0 ms
    captured = record_from_rearq(job, result, "rearq:queue:default")
    upsert_records([{**captured, "start_time": true_start.timestamp() * 1000, "duration_ms": 0}])
    record = record_from_rearq(job, result, "rearq:queue:default")
    assert write_batch([record], []) == 0
    row = TaskLog.objects.get(job_id="r5")
    assert (row.start_time, row.duration_ms) == (true_start, 0)
    assert write_batch([record_from_rearq(job, result, "rearq:queue:default")], []) == 0


def test_reconcile_counts_only_rows_it_inserts_or_changes() -> None:
    from rearq_tasks.queue.reconcile import record_from_rearq

    start = T0 + dt.timedelta(seconds=5)
    TaskLogFactory(job_id="r6", task_name="charge", status="in_progress", job_retries=0,
                   start_time=start, enqueue_time=T0, args=[1], kwargs={})  # fmt: skip
    done = rearq_job("r6", "success", 0)
    fresh = rearq_job("r7", "success", 0)
    result = rearq_result(1, True, "ok")
    records = [record_from_rearq(j, result, "rearq:queue:default") for j in (done, fresh)]
    assert write_batch(records, []) == 2
    changed = TaskLog.objects.get(job_id="r6")
    assert changed.status == "success" and changed.start_time == start  # kept, not ReArq's
    assert changed.duration_ms == round((result.finish_time - start).total_seconds() * 1000)
    again = [record_from_rearq(j, result, "rearq:queue:default") for j in (done, fresh)]
    assert write_batch(again, []) == 0


def test_reconcile_never_gives_the_last_attempt_an_earlier_attempts_start() -> None:
    """The capture saw attempt 1 fail (row deferred, its start and duration) and lost every
    event of attempt 2 (a killed worker, a restarted Redis): the row must get attempt 2's
    start and duration from ReArq, not keep attempt 1's (soak: "start_time before ReArq's")."""
    from rearq_tasks.queue.reconcile import record_from_rearq

    failed_once = event("r8", "deferred", 1, start_time=at(10), worker_id="w-1",
                        duration_ms=200, event_time=at(10.2), error_message="exc: a")  # fmt: skip
    capture([event("r8", "queued"), failed_once])
    job = rearq_job("r8", "failed", 1)
    last = rearq_result(2, False, "Run job error, exc: b")  # attempt 2: 20 s after T0
    assert write_batch([record_from_rearq(job, last, "rearq:queue:default")], []) == 1
    row = TaskLog.objects.get(job_id="r8")
    assert (row.status, row.start_time, row.finish_time) == (
        "failed", last.start_time, last.finish_time)  # fmt: skip
    assert (row.duration_ms, row.worker_id) == (250, "w-2")
    assert write_batch([record_from_rearq(job, last, "rearq:queue:default")], []) == 0


@pytest.mark.parametrize("row_from", ["capture", "before the fix"])
def test_reconcile_keeps_the_last_attempts_captured_start_but_not_the_earlier_duration(
    row_from: str,
) -> None:
    """The capture saw attempt 3 start and lost its end: the start is kept, the duration is
    the last attempt's, from that start to ReArq's finish (soak: "duration_ms 2 != finish -
    start"). The start event clears attempt 2's duration; a row written before it did keeps
    it, and reconcile must not take it for attempt 3's."""
    from rearq_tasks.queue.reconcile import record_from_rearq

    events = fails_twice_then_succeeds("r9")[:-1]
    true_start = at(30.1)  # after the max_jobs slot: later than ReArq's start
    capture([*events, event("r9", "in_progress", 2, start_time=true_start, worker_id="w-3")])
    assert TaskLog.objects.get(job_id="r9").duration_ms is None  # not attempt 2's
    if row_from == "before the fix":
        TaskLog.objects.filter(job_id="r9").update(duration_ms=200)
    job = rearq_job("r9", "success", 2)
    last = rearq_result(3, True, "ok")
    assert write_batch([record_from_rearq(job, last, "rearq:queue:default")], []) == 1
    row = TaskLog.objects.get(job_id="r9")
    kept = T0 + dt.timedelta(seconds=30.1)
    assert (row.status, row.start_time, row.worker_id) == ("success", kept, "w-3")
    assert row.duration_ms == round((last.finish_time - row.start_time).total_seconds() * 1000)
    assert write_batch([record_from_rearq(job, last, "rearq:queue:default")], []) == 0


def test_a_start_reconcile_writes_over_a_retry_is_not_the_previous_attempts() -> None:
    """ReArq shows the retry in progress (fetched) before the capture hears of its start:
    the row must not keep attempt 1's start then, or the retry would pass for started (never
    recovered if its worker dies) and a later reconcile keep that start for attempt 2."""
    from rearq_tasks.queue.reconcile import record_from_rearq

    failed_once = event("r10", "deferred", 1, start_time=at(10), worker_id="w-1",
                        duration_ms=200, event_time=at(10.2), error_message="exc: a")  # fmt: skip
    capture([event("r10", "queued"), failed_once])
    first = rearq_result(1, False, "exc: a")
    fetched = record_from_rearq(rearq_job("r10", "in_progress", 1), first, "rearq:queue:default")
    assert write_batch([fetched], []) == 1
    row = TaskLog.objects.get(job_id="r10")
    assert (row.status, row.job_retries, row.start_time, row.worker_id, row.duration_ms) == (
        "in_progress", 1, None, None, None)  # fmt: skip
    assert row.error_message == "exc: a"  # the last error stays until the attempt ends
    last = rearq_result(2, True, "ok")
    done = record_from_rearq(rearq_job("r10", "success", 1), last, "rearq:queue:default")
    assert write_batch([done], []) == 1
    row = TaskLog.objects.get(job_id="r10")
    assert (row.start_time, row.duration_ms, row.worker_id) == (last.start_time, 250, "w-2")
