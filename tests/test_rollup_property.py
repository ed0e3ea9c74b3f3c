"""Rollups equal rows: random job histories through the real write paths, then every
rollup-served figure compared with the same figure computed from the rows.

Write paths: the capture upsert (VALUES and, on PostgreSQL, COPY), with replays and
out-of-order batches; the model's ``mark_*`` helpers; seeding; retention deletes. Counts and
sums must be equal; percentiles within 1 % (plus the whole-millisecond rounding).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rearq_tasks import queries
from rearq_tasks.capture import upsert
from rearq_tasks.capture.events import fold, to_ms
from rearq_tasks.models import TaskLog, TaskStat, TaskStatBin
from rearq_tasks.ops import retention
from rearq_tasks.queries import Scope
from rearq_tasks.rollups import bin_of, bin_value

STORIES = ("success", "failed", "retried_success", "expired", "canceled", "canceled_running",
           "running", "queued", "deferred")  # fmt: skip
PERCENTILE_KEYS = {"p50_duration_ms", "p95_duration_ms", "p99_duration_ms", "p95_queue_wait_ms"}


def _events(job: dict[str, Any], story: str, rng: random.Random) -> list[dict[str, Any]]:
    enq = job["enqueue_time"]
    base = {k: job[k] for k in ("job_id", "task_name", "queue_name")} | {"enqueue_time": enq}
    wait, run = rng.randint(0, 90_000), rng.randint(1, 400_000)
    start, finish = enq + wait, enq + wait + run
    out = [base | {"status": "queued", "job_retries": 0}]
    if story == "queued":
        return out
    if story in ("expired", "canceled"):
        fields = {"success": False} if story == "expired" else {}
        return out + [base | {"status": story, "job_retries": 0, "finish_time": finish} | fields]
    retries = 0
    if story in ("retried_success", "deferred"):
        out.append(base | {"status": "in_progress", "start_time": start, "job_retries": 0})
        out.append(base | {"status": "deferred", "job_retries": 1, "duration_ms": run})
        retries = 1
        if story == "deferred":
            return out
        start, finish = finish + wait, finish + wait + run // 2
    out.append(base | {"status": "in_progress", "start_time": start, "job_retries": retries})
    end = {"job_retries": retries, "start_time": start, "finish_time": finish}
    end["duration_ms"] = finish - start
    if story in ("success", "retried_success"):
        out.append(base | end | {"status": "success", "success": True})
    elif story == "failed":
        out.append(base | end | {"status": "failed", "success": False, "error_message": "boom"})
    elif story == "canceled_running":
        out.append(base | end | {"status": "canceled"})
    return out


def _write(events: list[dict[str, Any]], rng: random.Random) -> None:
    """Shuffled batches with replays, each folded and upserted as the collector does."""
    events = events + rng.sample(events, len(events) // 3)  # replays
    rng.shuffle(events)
    while events:
        size = rng.randint(1, 12)
        batch, events = events[:size], events[size:]
        upsert.upsert_records(fold(batch))


def _via_model(job: dict[str, Any], story: str, now: dt.datetime) -> None:
    log = TaskLog.objects.create(
        job_id=job["job_id"],
        task_name=job["task_name"],
        queue_name=job["queue_name"],
        enqueue_time=now - dt.timedelta(milliseconds=to_ms(now) - job["enqueue_time"]),
    )
    start = log.enqueue_time + dt.timedelta(seconds=3)
    if story in ("expired", "canceled"):
        (log.mark_expired if story == "expired" else log.mark_canceled)(finish_time=start)
        return
    if story == "queued":
        return
    log.mark_started(worker_id="w", start_time=start)
    finish = start + dt.timedelta(milliseconds=1234)
    if story in ("retried_success", "deferred"):
        log.mark_retry_scheduled("boom", finish_time=finish)
        if story == "deferred":
            return
        log.mark_started(start_time=finish + dt.timedelta(seconds=1))
        finish += dt.timedelta(seconds=5)
    if story in ("success", "retried_success"):
        log.mark_completed(result=1, finish_time=finish)
        log.mark_completed(result=1, finish_time=finish)  # a replay changes nothing
    elif story == "failed":
        log.mark_failed("boom", finish_time=finish)
    elif story == "canceled_running":
        log.mark_canceled(finish_time=finish)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 0.01 * abs(b) + 1


def assert_same(rollup: Any, rows: Any, where: str) -> None:
    if isinstance(rollup, list):
        assert len(rollup) == len(rows), where
        for a, b in zip(rollup, rows, strict=True):
            assert_same(a, b, where)
        return
    for key, value in rows.items():
        if key in PERCENTILE_KEYS:
            assert _close(rollup[key], value), (where, key, rollup[key], value)
        elif key == "mean_attempts":
            assert rollup[key] == pytest.approx(value, abs=1e-3), (where, key)
        else:
            assert rollup[key] == value, (where, key, rollup[key], value)


def compare(now: dt.datetime, since_hours: float, task: str | None) -> None:
    scope = Scope(now - dt.timedelta(hours=since_hours), task_name=task)
    rows = scope.rows()
    where = f"since {since_hours} h, task {task}"
    assert_same(queries.summary(scope), queries.summary(rows), where)
    for order in ("task_name", "-failures", "-p95_duration_ms"):
        got, want = queries.by_task(scope, order, None), queries.by_task(rows, order, None)
        if order == "-p95_duration_ms":  # ties within 1 % may order differently
            got, want = sorted(got, key=_name), sorted(want, key=_name)
        assert_same(got, want, f"{where} by_task {order}")
    assert_same(
        queries.retries_by_task(scope, order_by="completed", limit=None),
        queries.retries_by_task(rows, order_by="completed", limit=None),
        where,
    )
    for interval in ("hour", "day"):
        plain = Scope(task_name=task)
        assert queries.timeline(plain, since_hours, interval, now=now) == queries.timeline(
            plain.rows(), since_hours, interval, now=now
        ), f"{where} timeline {interval}"


def _name(row: dict[str, Any]) -> str:
    return row["task_name"]


JOBS = st.lists(
    st.tuples(
        st.sampled_from(STORIES),
        st.sampled_from(["alpha", "beta", "gamma"]),
        st.sampled_from(["default", "low"]),
        st.integers(0, 50 * 3600 * 1000),  # enqueued this many ms ago
        st.booleans(),  # through the model helpers instead of the capture upsert
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(params=["values", "copy"] if connection.vendor == "postgresql" else ["values"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(upsert, "COPY_MIN_ROWS", 1 if request.param == "copy" else 10**9)
    return request.param


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=JOBS, seed=st.integers(0, 2**16), since=st.floats(0.3, 60), tz=st.sampled_from(
    ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York"]))  # fmt: skip
def test_rollup_figures_equal_row_figures(write_path, jobs, seed, since, tz) -> None:
    TaskLog.objects.all().delete()
    TaskStat.objects.all().delete()
    TaskStatBin.objects.all().delete()
    rng = random.Random(seed)
    now = timezone.now()
    events: list[dict[str, Any]] = []
    for n, (story, task, queue, ago, by_model) in enumerate(jobs):
        job = {"job_id": f"j{n}", "task_name": task, "queue_name": queue}
        job["enqueue_time"] = int(to_ms(now)) - ago
        if by_model:
            _via_model(job, story, now)
        else:
            events += _events(job, story, rng)
    _write(events, rng)
    with timezone.override(tz):
        for task in (None, "alpha"):
            compare(now, since, task)
        assert_same(queries.overview(Scope()), queries.overview(TaskLog.objects.all()), "all")
    # Retention deletes rows, never their rollups.
    before = sorted(TaskStat.objects.values_list("span", "bucket", "task_name", "status", "jobs"))
    bins = TaskStatBin.objects.count()
    retention.purge(days=1, now=now)
    after = sorted(TaskStat.objects.values_list("span", "bucket", "task_name", "status", "jobs"))
    assert after == before and TaskStatBin.objects.count() == bins


@given(st.integers(1, 10**9))
def test_a_bin_stands_for_its_values_within_one_percent(value: int) -> None:
    assert abs(bin_value(bin_of(value)) - value) <= 0.01 * value
