from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.ops.seeding import COLUMNS, generate_rows

pytestmark = pytest.mark.django_db


def test_generate_rows_is_deterministic_and_time_ordered() -> None:
    now = timezone.now()
    first = list(generate_rows(500, 3, seed=7, now=now))
    assert first == list(generate_rows(500, 3, seed=7, now=now))
    assert first != list(generate_rows(500, 3, seed=8, now=now))
    enqueue = [row[COLUMNS.index("enqueue_time")] for row in first]
    assert enqueue == sorted(enqueue)
    assert now - dt.timedelta(days=3) <= enqueue[0] and enqueue[-1] <= now


def test_seed_command_writes_a_realistic_mix() -> None:
    call_command("seed_task_logs", count="3000", days="2", seed="1", verbosity=0)
    assert TaskLog.objects.count() == 3000
    statuses = set(TaskLog.objects.values_list("status", flat=True).distinct().order_by())
    assert {"success", "failed"} <= statuses and len(statuses) >= 5
    assert TaskLog.objects.failed().with_error().exists()
    assert TaskLog.objects.filter(user__isnull=False).exists()
    assert TaskLog.objects.values("task_name").distinct().count() >= 8
    ok = TaskLog.objects.successful().first()
    assert ok.duration_ms is not None and ok.start_time <= ok.finish_time
    # created_at follows the job's own time, not the moment of seeding.
    oldest = TaskLog.objects.order_by("enqueue_time").first()
    assert oldest.created_at == oldest.enqueue_time
    assert TaskLog.objects.completed().filter(start_time__isnull=False, success=True).count() > 2000
    assert all(s in StatusChoices.values for s in statuses)


def test_seed_command_truncate_replaces_rows() -> None:
    call_command("seed_task_logs", count="50", days="1", verbosity=0)
    call_command("seed_task_logs", count="20", days="1", seed="3", truncate=True, verbosity=0)
    assert TaskLog.objects.count() == 20


@pytest.mark.parametrize(
    "options",
    [
        {"count": "0"},
        {"count": "-3"},
        {"count": "many"},
        {"days": "0"},
        {"days": "inf"},
        {"days": "x"},
        {"seed": "1.5"},
        {"batch_size": "0"},
    ],  # fmt: skip
)
def test_seed_command_rejects_bad_options(options) -> None:
    with pytest.raises(CommandError):
        call_command("seed_task_logs", verbosity=0, **options)
    assert TaskLog.objects.count() == 0


def test_copy_text_format_escapes_what_copy_would_misread() -> None:
    from rearq_tasks.ops.seeding import _copy_value

    assert _copy_value(None) == "\\N"
    assert (_copy_value(True), _copy_value(False)) == ("t", "f")
    assert _copy_value("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    moment = timezone.now()
    assert _copy_value(moment) == moment.isoformat()
    assert _copy_value(42) == "42"


def test_truncate_empties_the_table_and_reports_the_count() -> None:
    from rearq_tasks.ops.seeding import truncate

    call_command("seed_task_logs", count="30", days="1", verbosity=0)
    assert truncate() == 30
    assert TaskLog.objects.count() == 0


def test_generated_rows_carry_the_seed_marker() -> None:
    from rearq_tasks.ops.seeding import SEED_PREFIX, SEED_WORKER_PREFIX

    call_command("seed_task_logs", count="500", days="1", seed="2", verbosity=0)
    assert not TaskLog.objects.exclude(task_name__startswith=SEED_PREFIX).exists()
    workers = TaskLog.objects.filter(worker_id__isnull=False).values_list("worker_id", flat=True)
    assert workers and all(w.startswith(SEED_WORKER_PREFIX) for w in workers)
    users = TaskLog.objects.filter(user__isnull=False).values_list("user__username", flat=True)
    assert users and all(u.startswith("seed_user_") for u in users)


def test_seed_refuses_a_table_holding_rows_it_did_not_generate() -> None:
    from harness.factories import TaskLogFactory

    call_command("seed_task_logs", count="20", days="1", verbosity=0)
    call_command("seed_task_logs", count="20", days="1", seed="4", verbosity=0)  # its own: fine
    real = TaskLogFactory(task_name="send_email")  # no "seed." marker: a real job
    for extra in ({}, {"truncate": True}):
        with pytest.raises(CommandError, match=r"did not generate.*'seed\.'.*--force") as exc:
            call_command("seed_task_logs", count="20", days="1", verbosity=0, **extra)
        assert ("--truncate would delete them" in str(exc.value)) is bool(extra)
        assert TaskLog.objects.count() == 41 and TaskLog.objects.filter(pk=real.pk).exists()
    call_command("seed_task_logs", count="10", days="1", seed="5", force=True, verbosity=0)
    assert TaskLog.objects.count() == 51 and TaskLog.objects.filter(pk=real.pk).exists()


def test_truncate_also_clears_the_history() -> None:
    from rearq_tasks.models import TaskEvent
    from rearq_tasks.ops.seeding import SEED_PREFIX

    call_command("seed_task_logs", count="30", days="1", verbosity=0)
    log = TaskLog.objects.first()
    TaskEvent.objects.create(
        job_id=log.job_id, event="started", attempt=1, timestamp=timezone.now()
    )
    TaskEvent.objects.create(job_id="gone", event="failed", attempt=1, timestamp=timezone.now())
    call_command("seed_task_logs", count="5", days="1", truncate=True, verbosity=0)
    assert TaskEvent.objects.count() == 0
    assert TaskLog.objects.count() == 5
    assert TaskLog.objects.filter(task_name__startswith=SEED_PREFIX).count() == 5
