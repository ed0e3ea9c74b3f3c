"""The lifecycle table is the one rule: Python's guard and the SQL guard agree on every move."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection

from rearq_tasks import lifecycle
from rearq_tasks.lifecycle import (
    TERMINAL_STATUSES,
    StatusChoices,
    can_transition,
    duration_ms,
    guard_sql,
    may_replace,
    new_attempt_sql,
    starts_new_attempt,
)
from rearq_tasks.models import TaskLog

STATES = [(status.value, retries) for status in StatusChoices for retries in (0, 1, 2)]


def _sql_guard_allows(old: tuple[str, int], new: tuple[str, int]) -> bool:
    guard = guard_sql(lambda c: f"o_{c}", lambda c: f"n_{c}")
    sql = (
        f"SELECT CASE WHEN {guard} THEN 1 ELSE 0 END FROM (SELECT %s AS o_status, "
        "%s AS o_job_retries, %s AS n_status, %s AS n_job_retries) t"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [old[0], old[1], new[0], new[1]])
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db
def test_sql_guard_and_python_guard_agree_on_every_move() -> None:
    disagreements = [
        (old, new)
        for old, new in itertools.product(STATES, STATES)
        if _sql_guard_allows(old, new) != may_replace(old[0], old[1], new[0], new[1])
    ]
    assert disagreements == []


def _sql_new_attempt(old: tuple[str, int], new: tuple[str, int]) -> bool:
    fresh = new_attempt_sql(lambda c: f"o_{c}", lambda c: f"n_{c}")
    sql = (
        f"SELECT CASE WHEN {fresh} THEN 1 ELSE 0 END FROM (SELECT %s AS o_status, "
        "%s AS o_job_retries, %s AS n_status, %s AS n_job_retries) t"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [old[0], old[1], new[0], new[1]])
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db
def test_sql_and_python_agree_on_which_event_starts_a_new_attempt() -> None:
    disagreements = [
        (old, new)
        for old, new in itertools.product(STATES, STATES)
        if _sql_new_attempt(old, new) != starts_new_attempt(old[0], old[1], new[0], new[1])
    ]
    assert disagreements == []


def test_a_retry_waiting_holds_the_previous_attempt_and_its_start_a_new_one() -> None:
    assert not starts_new_attempt("in_progress", 0, "deferred", 1)  # attempt 1 failed
    assert starts_new_attempt("deferred", 1, "in_progress", 1)  # attempt 2 starts
    assert starts_new_attempt("deferred", 1, "success", 1)  # attempt 2 ended, start unseen
    assert not starts_new_attempt("in_progress", 1, "success", 1)
    assert not starts_new_attempt("queued", 0, "queued", 0)


def test_may_replace_never_moves_a_terminal_row() -> None:
    for old, new in itertools.product(STATES, STATES):
        allowed = may_replace(old[0], old[1], new[0], new[1])
        if old[0] in TERMINAL_STATUSES:
            assert allowed == (new[0] == old[0]), (old, new)
        if allowed:
            assert can_transition(old[0], new[0]), (old, new)


def test_a_later_attempt_outranks_an_earlier_one_and_running_outranks_waiting() -> None:
    assert may_replace("in_progress", 0, "deferred", 1)  # the retry of attempt 1
    assert not may_replace("in_progress", 1, "deferred", 1)  # a late deferred of the same try
    assert not may_replace("in_progress", 0, "queued", 0)  # a late queued
    assert may_replace("queued", 0, "in_progress", 0)
    assert may_replace("deferred", 3, "failed", 0)  # a terminal event always lands


@pytest.mark.django_db
def test_the_model_uses_the_same_rule() -> None:
    log = TaskLog.objects.create(
        job_id="j1",
        task_name="t",
        queue_name="q",
        enqueue_time="2026-01-01T00:00:00Z",
        status="success",
    )
    assert log.mark_failed("late") is False
    log.refresh_from_db()
    assert log.status == "success"


def test_duration_is_never_negative_and_takes_datetimes_or_milliseconds() -> None:
    import datetime as dt

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert duration_ms(start, start + dt.timedelta(milliseconds=1500)) == 1500
    assert duration_ms(start, start - dt.timedelta(seconds=1)) == 0
    assert duration_ms(1000.0, 2500.4) == 1500
    assert duration_ms(None, start) is None
    assert lifecycle.order("in_progress", 1) > lifecycle.order("success", 0)
