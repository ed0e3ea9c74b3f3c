from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import (
    TERMINAL_STATUSES,
    StatusChoices,
    TaskLog,
    can_transition,
    stuck_q,
)

pytestmark = pytest.mark.django_db

ALL_STATUSES = [choice.value for choice in StatusChoices]


def test_status_choices_are_rearq_job_statuses() -> None:
    from rearq.enums import JobStatus

    assert ALL_STATUSES == [status.value for status in JobStatus]


def test_status_labels_are_exactly_the_seeds() -> None:
    """The API's ``status_display`` and the admin show these; clients compare them."""
    assert [str(choice.label) for choice in StatusChoices] == [
        "Deferred", "Queued", "In Progress", "Success", "Failed", "Expired", "Canceled"
    ]  # fmt: skip
    row = TaskLogFactory(status=StatusChoices.IN_PROGRESS)
    assert row.get_status_display() == "In Progress"


def test_meta_matches_the_seed_schema() -> None:
    meta = TaskLog._meta
    assert meta.db_table == "django_cfg_task_log"
    assert meta.ordering == ["-enqueue_time"]
    assert meta.app_label == "tasks"
    indexed = {tuple(index.fields) for index in meta.indexes}
    assert indexed == {
        ("task_name", "-enqueue_time"),
        ("status", "-enqueue_time"),
        ("queue_name", "status"),
        ("success", "-enqueue_time"),
        ("-created_at",),
        ("retry_of",),
        ("finish_time", "worker_id"),  # the workers page's last hour (migration 0012)
    }
    assert meta.get_field("job_id").unique and meta.get_field("job_id").max_length == 100
    assert meta.get_field("task_name").db_index and meta.get_field("task_name").max_length == 200
    assert meta.get_field("queue_name").db_index and meta.get_field("queue_name").max_length == 100
    assert meta.get_field("status").db_index and meta.get_field("status").max_length == 20
    assert meta.get_field("enqueue_time").db_index
    assert meta.get_field("worker_id").null and meta.get_field("worker_id").max_length == 100
    for name in ("duration_ms", "success", "result", "error_message", "expire_time",
                 "start_time", "finish_time", "user"):  # fmt: skip
        assert meta.get_field(name).null, name
    assert meta.get_field("user").remote_field.on_delete.__name__ == "SET_NULL"
    assert meta.get_field("created_at").auto_now_add
    assert meta.get_field("updated_at").auto_now


def test_field_defaults() -> None:
    log = TaskLog.objects.create(
        job_id="j1", task_name="t", queue_name="default", enqueue_time=timezone.now()
    )
    log.refresh_from_db()
    assert log.args == []
    assert log.kwargs == {}
    assert log.status == StatusChoices.QUEUED
    assert (log.job_retry, log.job_retries, log.job_retry_after) == (0, 0, 60)
    assert log.success is None and log.duration_ms is None
    assert log.result is None and log.error_message is None and log.worker_id is None
    assert log.start_time is None and log.finish_time is None and log.expire_time is None
    assert log.user is None
    assert log.created_at is not None and log.updated_at is not None


def test_job_id_is_unique() -> None:
    TaskLogFactory(job_id="same")
    with pytest.raises(IntegrityError):
        TaskLogFactory(job_id="same")


def test_json_payloads_round_trip() -> None:
    log = TaskLogFactory(args=[1, "two", {"three": [3]}], kwargs={"a": None, "ü": 1.5})
    log.refresh_from_db()
    assert log.args == [1, "two", {"three": [3]}]
    assert log.kwargs == {"a": None, "ü": 1.5}


def test_deleting_the_user_keeps_the_log() -> None:
    user = UserFactory()
    log = TaskLogFactory(user=user)
    user.delete()
    log.refresh_from_db()
    assert log.user_id is None


def test_default_ordering_is_newest_enqueued_first() -> None:
    now = timezone.now()
    old = TaskLogFactory(enqueue_time=now - dt.timedelta(hours=2))
    new = TaskLogFactory(enqueue_time=now)
    assert list(TaskLog.objects.all()) == [new, old]


# --- transition helpers -------------------------------------------------------


def test_mark_started_saves_only_its_fields(django_assert_num_queries) -> None:
    log = TaskLogFactory()
    start = timezone.now()
    with CaptureQueriesContext(connection) as ctx:
        assert log.mark_started(worker_id="host-1", start_time=start)
    assert len(ctx.captured_queries) == 1
    sql = ctx.captured_queries[0]["sql"]
    assert "worker_id" in sql and "start_time" in sql and "task_name" not in sql
    log.refresh_from_db()
    assert log.status == StatusChoices.IN_PROGRESS
    assert log.start_time == start and log.worker_id == "host-1"


def test_mark_started_defaults_start_time_to_now() -> None:
    log = TaskLogFactory()
    before = timezone.now()
    log.mark_started()
    assert before <= log.start_time <= timezone.now()
    assert log.worker_id is None


def test_mark_completed_computes_duration_from_start_to_finish() -> None:
    start = timezone.now() - dt.timedelta(seconds=3)
    log = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=start)
    finish = start + dt.timedelta(milliseconds=2345)
    assert log.mark_completed(result={"ok": 1}, finish_time=finish)
    log.refresh_from_db()
    assert log.status == StatusChoices.SUCCESS and log.success is True
    assert log.duration_ms == 2345
    assert log.finish_time == finish
    assert log.result == "{'ok': 1}"
    assert log.is_successful and log.is_completed and not log.is_failed


def test_mark_completed_without_start_has_no_duration() -> None:
    log = TaskLogFactory()
    log.mark_completed(result=None)
    log.refresh_from_db()
    assert log.duration_ms is None and log.result is None and log.status == "success"


def test_mark_failed_records_error_and_duration() -> None:
    start = timezone.now() - dt.timedelta(seconds=1)
    log = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=start)
    log.mark_failed("boom", finish_time=start + dt.timedelta(milliseconds=500))
    log.refresh_from_db()
    assert (log.status, log.success, log.error_message, log.duration_ms) == (
        "failed", False, "boom", 500,
    )  # fmt: skip
    assert log.is_failed and log.is_completed and not log.is_successful


def test_mark_retry_scheduled_counts_attempts_and_is_not_failed() -> None:
    log = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=timezone.now(), job_retry=3)
    log.mark_retry_scheduled("first try failed")
    log.refresh_from_db()
    assert log.status == StatusChoices.DEFERRED
    assert log.job_retries == 1 and log.error_message == "first try failed"
    assert log.success is None and not log.is_failed and not log.is_completed
    log.mark_started()
    log.mark_retry_scheduled("second", retries=2)
    log.refresh_from_db()
    assert log.job_retries == 2 and log.error_message == "second"


def test_mark_expired_and_canceled() -> None:
    expired = TaskLogFactory()
    expired.mark_expired()
    expired.refresh_from_db()
    assert expired.status == "expired" and expired.is_failed and expired.finish_time
    canceled = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=timezone.now())
    canceled.mark_canceled(reason="canceled by admin")
    canceled.refresh_from_db()
    assert canceled.status == "canceled" and canceled.error_message == "canceled by admin"
    assert canceled.is_completed and not canceled.is_failed and canceled.duration_ms is not None


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_late_events_never_move_a_terminal_row_backwards(terminal: str) -> None:
    log = TaskLogFactory(status=terminal, success=terminal == "success")
    assert log.mark_started(worker_id="late") is False
    assert log.mark_retry_scheduled("late") is False
    log.refresh_from_db()
    assert log.status == terminal and log.worker_id is None and log.error_message is None


def test_a_different_terminal_state_does_not_overwrite_the_first() -> None:
    log = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=timezone.now())
    assert log.mark_completed("ok")
    assert log.mark_failed("late duplicate failure") is False
    log.refresh_from_db()
    assert log.status == "success" and log.error_message is None


def test_repeating_the_same_terminal_event_is_harmless() -> None:
    log = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=timezone.now())
    assert log.mark_failed("boom")
    assert log.mark_failed("boom")
    log.refresh_from_db()
    assert log.status == "failed"


@given(current=st.sampled_from([None, *ALL_STATUSES]), new=st.sampled_from(ALL_STATUSES))
def test_can_transition_rule(current: str | None, new: str) -> None:
    expected = current is None or current not in TERMINAL_STATUSES or current == new
    assert can_transition(current, new) is expected


# --- the vocabulary: properties agree with queryset methods ---------------------

row_strategy = st.fixed_dictionaries(
    {
        "status": st.sampled_from(ALL_STATUSES),
        "success": st.sampled_from([None, True, False]),
        "error_message": st.sampled_from([None, "", "boom"]),
        "job_retries": st.integers(min_value=0, max_value=4),
        "start_offset": st.one_of(st.none(), st.integers(min_value=0, max_value=7200)),
        "enqueue_offset": st.integers(min_value=0, max_value=72 * 3600),
    }
)


class TestVocabularyAgreesWithProperties(HypothesisTestCase):
    @settings(max_examples=25, deadline=None)
    @given(rows=st.lists(row_strategy, min_size=1, max_size=12))
    def test_properties_match_queryset_methods(self, rows: list[dict]) -> None:
        TaskLog.objects.all().delete()
        now = timezone.now()
        for n, row in enumerate(rows):
            start = row.pop("start_offset")
            enqueue = row.pop("enqueue_offset")
            TaskLog.objects.create(
                job_id=f"h{n}",
                task_name="t",
                queue_name="q",
                enqueue_time=now - dt.timedelta(seconds=enqueue),
                start_time=None if start is None else now - dt.timedelta(seconds=start),
                **row,
            )
        logs = list(TaskLog.objects.all())
        ids = lambda qs: set(qs.values_list("pk", flat=True))  # noqa: E731
        assert ids(TaskLog.objects.completed()) == {x.pk for x in logs if x.is_completed}
        assert ids(TaskLog.objects.successful()) == {x.pk for x in logs if x.is_successful}
        assert ids(TaskLog.objects.failed()) == {x.pk for x in logs if x.is_failed}
        assert ids(TaskLog.objects.with_error()) == {x.pk for x in logs if x.error_message}
        assert ids(TaskLog.objects.in_flight()) == {
            x.pk for x in logs if x.status in ("queued", "deferred", "in_progress")
        }
        assert ids(TaskLog.objects.retried()) == {x.pk for x in logs if x.job_retries > 0}
        assert ids(TaskLog.objects.recovered()) == {
            x.pk for x in logs if x.is_successful and x.job_retries > 0
        }
        for n in range(0, 6):
            assert ids(TaskLog.objects.attempts_min(n)) == {x.pk for x in logs if x.attempts >= n}
        cutoff = now - dt.timedelta(hours=1)
        # The same ``now`` on both sides: a row exactly one hour old is not a race.
        assert ids(TaskLog.objects.filter(stuck_q(dt.timedelta(hours=1), now))) == {
            x.pk
            for x in logs
            if x.status == "in_progress" and (x.start_time or x.enqueue_time) < cutoff
        }
        recent = {x.pk for x in logs if x.enqueue_time >= now - dt.timedelta(hours=24)}
        assert ids(TaskLog.objects.since(24)) == recent
        assert ids(TaskLog.objects.since(dt.timedelta(hours=24))) == recent


def test_vocabulary_composes_inside_count_filter() -> None:
    from django.db.models import Count

    from rearq_tasks.models import COMPLETED, FAILED, SUCCESSFUL

    TaskLogFactory(status="success", success=True)
    TaskLogFactory(status="failed", success=False)
    TaskLogFactory(status="expired")
    TaskLogFactory(status="queued")
    figures = TaskLog.objects.aggregate(
        completed=Count("id", filter=COMPLETED),
        failed=Count("id", filter=FAILED),
        successful=Count("id", filter=SUCCESSFUL),
    )
    assert figures == {"completed": 3, "failed": 2, "successful": 1}


def test_stuck_uses_the_setting_by_default(settings) -> None:
    settings.REARQ_TASKS = {"STUCK_AFTER_SECONDS": 60}
    now = timezone.now()
    stuck = TaskLogFactory(status="in_progress", start_time=now - dt.timedelta(minutes=5))
    TaskLogFactory(status="in_progress", start_time=now - dt.timedelta(seconds=10))
    assert list(TaskLog.objects.stuck()) == [stuck]


def test_since_accepts_a_datetime_and_rejects_nothing_silently() -> None:
    now = timezone.now()
    old = TaskLogFactory(enqueue_time=now - dt.timedelta(days=3))
    new = TaskLogFactory(enqueue_time=now - dt.timedelta(hours=1))
    assert list(TaskLog.objects.since(now - dt.timedelta(days=1))) == [new]
    assert set(TaskLog.objects.since(now - dt.timedelta(days=4))) == {old, new}


def test_duration_seconds_and_queue_wait() -> None:
    now = timezone.now()
    log = TaskLogFactory(
        enqueue_time=now, start_time=now + dt.timedelta(milliseconds=250), duration_ms=1500
    )
    assert log.duration_seconds == 1.5
    assert log.queue_wait_ms == 250
    assert TaskLogFactory(duration_ms=None).duration_seconds is None
