"""The aggregate layer (rearq_tasks.queries.stats) on every database: exact figures, few queries."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from harness.factories import TaskLogFactory
from rearq_tasks import queries
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.queries import timeseries

pytestmark = pytest.mark.django_db

S = StatusChoices
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def make(status: str, *, minutes_ago: float = 10, duration_ms: int | None = None,
         wait_ms: int | None = None, **fields) -> TaskLog:  # fmt: skip
    enqueue = timezone.now() - dt.timedelta(minutes=minutes_ago)
    start = None if wait_ms is None else enqueue + dt.timedelta(milliseconds=wait_ms)
    success = {S.SUCCESS: True, S.FAILED: False, S.EXPIRED: False}.get(status)
    return TaskLogFactory(
        status=status, success=success, enqueue_time=enqueue, start_time=start,
        duration_ms=duration_ms, **fields,
    )  # fmt: skip


@pytest.fixture
def mixed() -> dict[str, list[int]]:
    durations = [100, 200, 300, 400, 5000]
    waits = [10, 20, 40, 80, 160, 320]
    for d, w in zip(durations, waits, strict=False):
        make(S.SUCCESS, duration_ms=d, wait_ms=w)
    make(S.FAILED, duration_ms=None, wait_ms=waits[5], job_retries=2, error_message="boom")
    make(S.EXPIRED)
    make(S.CANCELED, error_message="canceled")
    make(S.QUEUED)
    make(S.IN_PROGRESS, wait_ms=None)
    make(S.DEFERRED, job_retries=1, error_message="retry")
    return {"durations": durations, "waits": waits}


def test_summary_counts_rates_and_percentiles(mixed) -> None:
    result = queries.summary(TaskLog.objects.all())
    durations, waits = mixed["durations"], mixed["waits"]
    assert result["total"] == 11
    assert result["successful"] == 5
    assert result["failed"] == 2  # failed + expired
    assert result["in_progress"] == 2  # queued + in_progress, not deferred
    assert result["completed"] == 8
    # Of successful + failed, as the seed's view: the canceled job is neither.
    assert result["success_rate"] == round(5 * 100 / 7, 2)
    assert result["failure_rate"] == round(2 * 100 / 7, 2)
    assert result["retry_rate"] == round(2 * 100 / 11, 2)
    assert result["avg_duration_ms"] == round(sum(durations) / 5)
    assert result["avg_duration_seconds"] == round(sum(durations) / 5 / 1000, 2)
    assert result["p50_duration_ms"] == round(percentile_cont(durations, 0.5))
    assert result["p95_duration_ms"] == round(percentile_cont(durations, 0.95))
    assert result["p99_duration_ms"] == round(percentile_cont(durations, 0.99))
    assert result["avg_queue_wait_ms"] == round(sum(waits) / len(waits))
    assert result["p95_queue_wait_ms"] == round(percentile_cont(waits, 0.95))


def test_canceled_jobs_dilute_neither_rate() -> None:
    for _ in range(3):
        make(S.SUCCESS)
    make(S.FAILED, error_message="boom")
    for _ in range(4):
        make(S.CANCELED)
    result = queries.summary(TaskLog.objects.all())
    assert result["completed"] == 8
    assert (result["success_rate"], result["failure_rate"]) == (75.0, 25.0)
    (row,) = queries.by_task(TaskLog.objects.all())
    assert row["completed"] == 8 and row["successful"] == 3 and row["failure_rate"] == 25.0
    only_canceled = queries.summary(TaskLog.objects.canceled())
    assert only_canceled["success_rate"] == only_canceled["failure_rate"] == 0.0


def test_summary_of_nothing_is_zeros_not_errors() -> None:
    result = queries.summary(TaskLog.objects.all())
    assert result["total"] == result["completed"] == 0
    assert result["success_rate"] == result["failure_rate"] == result["retry_rate"] == 0.0
    assert result["avg_duration_ms"] == 0 and result["avg_duration_seconds"] == 0.0
    assert result["p50_duration_ms"] is None and result["p95_queue_wait_ms"] is None


def test_summary_respects_the_queryset(mixed) -> None:
    make(S.FAILED, minutes_ago=60 * 48, task_name="old")
    assert queries.summary(TaskLog.objects.since(24))["total"] == 11
    assert queries.summary(TaskLog.objects.for_task("old"))["failed"] == 1


def test_summary_is_one_query_on_postgres_and_bounded_elsewhere(mixed) -> None:
    with CaptureQueriesContext(connection) as ctx:
        queries.summary(TaskLog.objects.all())
    # PostgreSQL: one aggregate with percentile_cont. Elsewhere: the aggregate plus one
    # two-row OFFSET look-up per percentile (3 durations + 1 wait).
    expected = 1 if connection.vendor == "postgresql" else 5
    assert len(ctx.captured_queries) == expected
    if connection.vendor != "postgresql":
        assert all("LIMIT" in q["sql"] for q in ctx.captured_queries[1:])


def test_percentile_by_offset_matches_percentile_cont_on_one_value() -> None:
    make(S.SUCCESS, duration_ms=42)
    result = queries.summary(TaskLog.objects.all())
    assert result["p50_duration_ms"] == result["p99_duration_ms"] == 42


# --- timeline -----------------------------------------------------------------


def test_timeline_has_every_hour_with_zeros_and_sums_to_the_summary() -> None:
    now = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)

    def at(minutes: int, status: str, duration: int | None = None) -> None:
        TaskLogFactory(
            enqueue_time=now - dt.timedelta(minutes=minutes), status=status,
            success=status == S.SUCCESS if status in (S.SUCCESS, S.FAILED) else None,
            duration_ms=duration,
        )  # fmt: skip

    for minutes in (5, 6, 125, 60 * 20):
        at(minutes, S.SUCCESS, 100)
    at(7, S.FAILED)
    at(60 * 30, S.SUCCESS)  # outside the period
    series = queries.timeline(TaskLog.objects, 24, "hour", now=now)
    assert len(series) == 25  # 11:30 yesterday's hour … this 12:00 hour; both partial
    assert set(series[0]) == {"timestamp", "total", "successful", "failed", "avg_duration_ms"}
    stamps = [dt.datetime.fromisoformat(b["timestamp"]) for b in series]
    assert all(b - a == dt.timedelta(hours=1) for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[-1] == dt.datetime(2026, 3, 10, 13, 0, tzinfo=BERLIN)
    assert sum(b["total"] for b in series) == 5
    last = series[-1]
    assert (last["total"], last["successful"], last["failed"]) == (3, 2, 1)
    assert last["avg_duration_ms"] == 100
    assert [b["total"] for b in series].count(0) == 22


def test_timeline_buckets_are_in_the_project_time_zone() -> None:
    now = dt.datetime(2026, 7, 1, 12, 30, tzinfo=dt.UTC)
    make_at = dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC)  # 00:30 on July 1 in Berlin
    TaskLogFactory(enqueue_time=make_at)
    days = queries.timeline(TaskLog.objects, 48, "day", now=now)
    assert [d["timestamp"] for d in days] == [
        "2026-06-29T00:00:00+02:00",
        "2026-06-30T00:00:00+02:00",
        "2026-07-01T00:00:00+02:00",
    ]
    assert [d["total"] for d in days] == [0, 0, 1]
    hours = queries.timeline(TaskLog.objects, 24, "hour", now=now)
    assert hours[-1]["timestamp"] == "2026-07-01T14:00:00+02:00"


def test_timeline_keeps_both_hours_of_a_dst_change_apart() -> None:
    # Berlin leaves summer time on 2026-10-25 at 03:00 CEST (01:00 UTC): 02:xx happens twice.
    now = dt.datetime(2026, 10, 25, 6, 0, tzinfo=dt.UTC)
    TaskLogFactory(enqueue_time=dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC))  # 02:30 CEST
    TaskLogFactory(enqueue_time=dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC))  # 02:30 CET
    series = queries.timeline(TaskLog.objects, 6, "hour", now=now)
    two_am = [b for b in series if "T02:00:00" in b["timestamp"]]
    assert [b["timestamp"] for b in two_am] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]
    assert [b["total"] for b in two_am] == [1, 1]
    days = queries.timeline(TaskLog.objects, 30, "day", now=now)
    assert days[-1]["timestamp"] == "2026-10-25T00:00:00+02:00" and days[-1]["total"] == 2


def test_timeline_is_one_query(settings) -> None:
    make(S.SUCCESS)
    with CaptureQueriesContext(connection) as ctx:
        queries.timeline(TaskLog.objects, 24 * 7, "hour")
        queries.timeline(TaskLog.objects, 24 * 30, "day")
    assert len(ctx.captured_queries) == 2


def test_timeline_rejects_unknown_intervals() -> None:
    with pytest.raises(ValueError, match="interval"):
        queries.timeline(TaskLog.objects, 24, "week")


def test_bucket_starts_in_a_half_hour_zone() -> None:
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")
    end = dt.datetime(2026, 1, 1, 12, 10, tzinfo=dt.UTC)  # 17:40 IST
    starts = timeseries.bucket_starts(end - dt.timedelta(hours=2), end, "hour", kolkata)
    assert [s.strftime("%H:%M") for s in starts] == ["15:00", "16:00", "17:00"]


# --- overview and by task ---------------------------------------------------


def test_overview_shape_and_definitions(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "RECENT_HOURS": 24}
    make(S.SUCCESS, queue_name="default")
    make(S.FAILED, queue_name="default")
    make(S.QUEUED, queue_name="high")
    make(S.FAILED, queue_name="low", minutes_ago=60 * 48)  # neither recent nor active
    result = queries.overview(TaskLog.objects)
    assert result == {
        "total_tasks": 4,
        "active_queues": ["default", "high"],
        "recent_failures": 1,
        "tasks_by_queue": {"default": 2, "high": 1, "low": 1},
        "tasks_by_status": {"failed": 2, "queued": 1, "success": 1},
    }


def test_overview_is_two_grouped_queries_without_meta_ordering() -> None:
    for n in range(5):
        make(S.SUCCESS, queue_name="default", minutes_ago=n)
    with CaptureQueriesContext(connection) as ctx:
        result = queries.overview(TaskLog.objects)
    assert result["active_queues"] == ["default"]
    assert len(ctx.captured_queries) == 2
    assert all("enqueue_time" not in q["sql"].split("GROUP BY")[-1] for q in ctx.captured_queries)


def test_by_task_top_failing_and_slowest() -> None:
    for d in (100, 200, 300):
        make(S.SUCCESS, task_name="fast", duration_ms=d)
    make(S.FAILED, task_name="fast", error_message="old error", minutes_ago=30)
    make(S.FAILED, task_name="fast", error_message="newest error", minutes_ago=1)
    make(S.SUCCESS, task_name="slow", duration_ms=9000)
    make(S.FAILED, task_name="slow", error_message="slow error", duration_ms=8000)
    failing = queries.by_task(TaskLog.objects.all(), "-failures")
    assert [r["task_name"] for r in failing] == ["fast", "slow"]
    fast = failing[0]
    assert fast["total"] == 5 and fast["failures"] == 2 and fast["completed"] == 5
    assert fast["successful"] == 3
    assert fast["failure_rate"] == 40.0
    assert fast["avg_duration_ms"] == 200
    assert fast["p95_duration_ms"] == round(percentile_cont([100, 200, 300], 0.95))
    assert fast["latest_error"] == "newest error"
    slowest = queries.by_task(TaskLog.objects.all(), "-p95_duration_ms", limit=1)
    assert [r["task_name"] for r in slowest] == ["slow"]
    assert slowest[0]["latest_error"] == "slow error"
    by_rate = queries.by_task(TaskLog.objects.all(), "-failure_rate")
    assert [r["task_name"] for r in by_rate] == ["slow", "fast"]
    assert [r["task_name"] for r in queries.by_task(TaskLog.objects.all(), "task_name")] == [
        "fast",
        "slow",
    ]


def test_by_task_rejects_unknown_orderings() -> None:
    with pytest.raises(ValueError, match="order_by"):
        queries.by_task(TaskLog.objects.all(), "-latest_error")
