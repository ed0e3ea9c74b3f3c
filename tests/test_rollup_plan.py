"""How a period is cut into rollup buckets (queries.rollup._plan): at most three quarters
and a day's hours besides whole days, or the first day minus the hours before the period
when that reads fewer rows, and every way gives the figures the rows give."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from rearq_tasks import queries
from rearq_tasks.models import TaskLog
from rearq_tasks.queries import Scope
from rearq_tasks.queries.rollup import _plan, histograms
from tests.test_rollup_property import assert_same

DAY = dt.timedelta(days=1)


def _jobs(now: dt.datetime) -> None:
    """Finished and unfinished jobs every 23 minutes over the last two days and a half."""
    logs = []
    for i in range(160):
        enqueued = now - dt.timedelta(minutes=23 * i + 1)
        status = ("success", "failed", "canceled", "expired", "in_progress")[i % 5]
        ran = status in ("success", "failed", "in_progress")
        logs.append(
            TaskLog(
                job_id=f"plan-{i}", task_name=("a", "b")[i % 2], queue_name="q",
                status=status, success={"success": True, "failed": False}.get(status),
                enqueue_time=enqueued,
                start_time=enqueued + dt.timedelta(seconds=i % 11) if ran else None,
                duration_ms=37 * i + 3 if ran and status != "in_progress" else None,
                job_retries=i % 3,
            )
        )  # fmt: skip
    TaskLog.objects.bulk_create(logs)


def _since(now: dt.datetime, hour: int, minute: int) -> dt.datetime:
    """Yesterday (UTC) at ``hour:minute``:17."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAY
    return day.replace(hour=hour, minute=minute, second=17)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hour", "minute", "subtracts"),
    [(0, 0, True), (0, 50, True), (2, 10, True), (8, 59, True), (10, 5, False),
     (12, 0, False), (20, 10, False), (23, 59, False)],
)  # fmt: skip
def test_every_cut_of_a_period_gives_the_rows_figures(hour, minute, subtracts) -> None:
    now = timezone.now()
    _jobs(now)
    since = _since(now, hour, minute)
    scope = Scope(since)
    assert (_plan(scope).minus is not None) is subtracts
    rows = scope.rows()
    assert_same(queries.summary(scope), queries.summary(rows), f"since {since}")
    got, want = queries.by_task(scope, "task_name", None), queries.by_task(rows, "task_name", None)
    assert_same(got, want, f"by_task since {since}")
    for task in ("a", "b"):
        narrowed = Scope(since, task_name=task)
        assert_same(queries.summary(narrowed), queries.summary(narrowed.rows()), task)


@pytest.mark.django_db
def test_a_subtracted_histogram_holds_no_negative_or_empty_bin() -> None:
    now = timezone.now()
    _jobs(now)
    scope = Scope(_since(now, 2, 10))
    assert _plan(scope).minus is not None
    for bins in histograms(scope, ("task_name",)).values():
        assert bins and all(n > 0 for n in bins.values())


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's settings")
def test_rollup_reads_put_jit_and_work_mem_back_in_the_callers_transaction() -> None:
    from rearq_tasks.queries.read_settings import tuned_for_rollups

    def settings() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('jit'), current_setting('work_mem')")
            return cursor.fetchone()

    before = settings()
    with tuned_for_rollups("default"):
        inside = settings()
    assert inside == ("off", "32MB") if before[1] == "4MB" else inside[0] == "off"
    assert settings() == before
    queries.summary(Scope(timezone.now() - DAY))
    assert settings() == before


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's settings")
def test_an_error_in_a_rollup_read_propagates_and_the_settings_are_back() -> None:
    """The read's own error, not one from putting the settings back in an aborted
    transaction; the caller's transaction stays usable (the savepoint is rolled back)."""
    from django.db import DatabaseError

    from rearq_tasks.queries.read_settings import tuned_for_rollups

    def settings() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('jit'), current_setting('work_mem')")
            return cursor.fetchone()

    before = settings()
    with pytest.raises(DatabaseError, match="division by zero"), tuned_for_rollups("default"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    assert settings() == before
