from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from harness.factories import TaskLogFactory
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.ops import seeding
from rearq_tasks.ops.retention import purge

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def insert(rows) -> int:
    """Bulk-insert generated rows: COPY on PostgreSQL, one executemany elsewhere."""
    if connection.vendor == "postgresql":
        return seeding._copy_postgres(rows, connection, 50_000, None)
    columns = seeding.COLUMNS
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {TaskLog._meta.db_table} ({', '.join(columns)}) VALUES ({placeholders})"
    times = {columns.index(c) for c in columns if c.endswith(("_time", "_at"))}
    adapt = connection.ops.adapt_datetimefield_value
    batch = [tuple(adapt(v) if i in times else v for i, v in enumerate(row)) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)
    return len(batch)


def age_days(row: tuple) -> float:
    return (NOW - row[seeding.COLUMNS.index("enqueue_time")]).total_seconds() / 86400


def is_failed(row: tuple) -> bool:
    status = row[seeding.COLUMNS.index("status")]
    return status in ("failed", "expired") or row[seeding.COLUMNS.index("success")] is False


@pytest.mark.slow
def test_cleanup_on_100k_rows_keeps_exactly_the_right_rows() -> None:
    rows = list(seeding.generate_rows(100_000, days=120, seed=7, now=NOW))
    assert insert(rows) == 100_000
    job_id = seeding.COLUMNS.index("job_id")
    expected = {
        r[job_id] for r in rows if age_days(r) <= 90 or (is_failed(r) and age_days(r) <= 105)
    }
    kept_failed = {r[job_id] for r in rows if is_failed(r) and 90 < age_days(r) <= 105}
    assert 20_000 < 100_000 - len(expected) < 30_000 and len(kept_failed) > 100

    seen: list[tuple[int, int]] = []
    result = purge(
        days=90, failed_days=105, batch_size=7_000, now=NOW, progress=lambda *a: seen.append(a)
    )
    remaining = set(TaskLog.objects.values_list("job_id", flat=True))
    assert remaining == expected
    assert result.deleted == result.matched == 100_000 - len(expected)
    assert result.batches == -(-result.deleted // 7_000)
    assert seen[-1] == (result.deleted, result.matched)
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_failed_retention_defaults_from_settings(settings) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "RETENTION_DAYS": 30,
        "FAILED_RETENTION_DAYS": 60,
    }
    old = NOW - dt.timedelta(days=45)
    ok = TaskLogFactory(status=StatusChoices.SUCCESS, success=True, enqueue_time=old)
    failed = TaskLogFactory(status=StatusChoices.FAILED, success=False, enqueue_time=old)
    expired = TaskLogFactory(status=StatusChoices.EXPIRED, success=False, enqueue_time=old)
    ancient = TaskLogFactory(
        status=StatusChoices.FAILED, success=False, enqueue_time=NOW - dt.timedelta(days=61)
    )
    recent = TaskLogFactory(enqueue_time=NOW - dt.timedelta(days=29))
    assert purge().deleted == 2
    assert set(TaskLog.objects.values_list("pk", flat=True)) == {failed.pk, expired.pk, recent.pk}
    assert not TaskLog.objects.filter(pk__in=[ok.pk, ancient.pk]).exists()


def cleanup(*args: str) -> str:
    out = StringIO()
    call_command("cleanup_task_logs", *args, stdout=out)
    return out.getvalue()


def test_command_dry_run_counts_only() -> None:
    TaskLogFactory.create_batch(3, enqueue_time=NOW - dt.timedelta(days=100))
    TaskLogFactory(enqueue_time=NOW - dt.timedelta(days=10))
    out = cleanup("--dry-run")
    assert "dry run: 3 rows would be deleted (enqueued before " in out
    assert TaskLog.objects.count() == 4


def test_command_deletes_with_progress_and_final_count() -> None:
    TaskLogFactory.create_batch(5, enqueue_time=NOW - dt.timedelta(days=20))
    TaskLogFactory.create_batch(2, enqueue_time=NOW - dt.timedelta(days=5))
    out = cleanup("--days", "7", "--batch-size", "2")
    assert "5/5 deleted (100 %)" in out
    assert "deleted 5 rows enqueued before" in out and "in 3 batch(es)" in out
    assert TaskLog.objects.count() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--days", "0"], "--days must be 1 or more, got 0"),
        (["--days", "-3"], "--days must be 1 or more, got -3"),
        (["--days", "ninety"], "--days expects a whole number, got 'ninety'"),
        (["--days", "1.5"], "--days expects a whole number, got '1.5'"),
        (["--batch-size", "0"], "--batch-size must be 1 or more, got 0"),
        (["--days", "30", "--failed-days", "10"], "must not be shorter than --days"),
    ],
)
def test_bad_options_delete_nothing(args, message) -> None:
    TaskLogFactory.create_batch(2, enqueue_time=NOW - dt.timedelta(days=400))
    with pytest.raises(CommandError) as exc:
        cleanup(*args)
    assert message in str(exc.value)
    assert TaskLog.objects.count() == 2


def test_delete_signals_still_fire_when_someone_listens() -> None:
    from django.db.models.signals import post_delete

    TaskLogFactory.create_batch(3, enqueue_time=NOW - dt.timedelta(days=100))
    seen: list[str] = []

    def receiver(sender, instance, **kwargs) -> None:
        seen.append(instance.job_id)

    post_delete.connect(receiver, sender=TaskLog)
    try:
        assert purge(days=90, batch_size=2).deleted == 3
    finally:
        post_delete.disconnect(receiver, sender=TaskLog)
    assert len(seen) == 3 and not TaskLog.objects.exists()


def test_cron_task_entry_point_applies_the_settings(settings) -> None:
    from rearq_tasks.ops.retention import purge_task_logs

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "RETENTION_DAYS": 10}
    TaskLogFactory.create_batch(2, enqueue_time=NOW - dt.timedelta(days=11))
    keep = TaskLogFactory(enqueue_time=NOW - dt.timedelta(days=9))
    assert purge_task_logs() == 2
    assert list(TaskLog.objects.values_list("pk", flat=True)) == [keep.pk]
