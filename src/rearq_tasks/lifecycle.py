"""The lifecycle of a ReArq job, defined once: statuses, event types, which move is allowed.

Everything that decides whether a job's row may change — the model's ``mark_*`` helpers,
the collector folding a batch, the SQL guard of the capture upsert, reconcile — reads the
one table below (:data:`RANK`, :data:`TERMINAL_STATUSES`): :func:`may_replace` in Python and
:func:`guard_sql` in SQL are built from it, and ``tests/test_lifecycle.py`` proves they agree.

This module imports nothing of the package (it is the bottom floor) and no Django model:
capture hooks import it in processes where Django may not be set up yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _


class StatusChoices(TextChoices):
    """ReArq's ``JobStatus`` values, in lifecycle order."""

    DEFERRED = "deferred", _("Deferred")
    QUEUED = "queued", _("Queued")
    IN_PROGRESS = "in_progress", _("In Progress")
    SUCCESS = "success", _("Success")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
    CANCELED = "canceled", _("Canceled")


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {StatusChoices.SUCCESS, StatusChoices.FAILED, StatusChoices.EXPIRED, StatusChoices.CANCELED}
)
WAITING_STATUSES: frozenset[str] = frozenset({StatusChoices.QUEUED, StatusChoices.DEFERRED})
FAILED_STATUSES: frozenset[str] = frozenset({StatusChoices.FAILED, StatusChoices.EXPIRED})
# What an operator may run again: a job that ended without succeeding.
RETRYABLE_STATUSES: frozenset[str] = frozenset(
    {StatusChoices.FAILED, StatusChoices.EXPIRED, StatusChoices.CANCELED}
)


class EventType(TextChoices):
    """What happened to a job at one moment (see docs/history.md)."""

    ENQUEUED = "enqueued", _("Enqueued")
    DEFERRED = "deferred", _("Deferred")
    STARTED = "started", _("Started")
    RETRY_SCHEDULED = "retry_scheduled", _("Retry scheduled")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
    CANCELED = "canceled", _("Canceled")
    LOST = "lost", _("Lost")
    REPAIRED = "repaired", _("Repaired")


# The history event a terminal status is recorded as.
TERMINAL_EVENTS: dict[str, str] = {
    StatusChoices.SUCCESS: EventType.SUCCEEDED,
    StatusChoices.FAILED: EventType.FAILED,
    StatusChoices.EXPIRED: EventType.EXPIRED,
    StatusChoices.CANCELED: EventType.CANCELED,
}
# Events that end an attempt: the next attempt's queue wait runs from there.
ATTEMPT_END_EVENTS: frozenset[str] = frozenset(
    {
        EventType.RETRY_SCHEDULED,
        EventType.SUCCEEDED,
        EventType.FAILED,
        EventType.EXPIRED,
        EventType.CANCELED,
        EventType.LOST,
    }
)
# Events that end an attempt with an error; the first attempt's are "first-attempt errors".
ATTEMPT_ERROR_EVENTS: frozenset[str] = frozenset(
    {EventType.RETRY_SCHEDULED, EventType.FAILED, EventType.LOST}
)

# Within one attempt a job moves waiting -> in_progress -> terminal; a retry starts the next
# attempt (job_retries + 1) back at "waiting". Non-terminal events are ordered by this rank.
RANK: dict[str, int] = {
    StatusChoices.QUEUED: 0,
    StatusChoices.DEFERRED: 0,
    StatusChoices.IN_PROGRESS: 1,
}
TERMINAL_RANK = 2
# (job_retries, rank) compare as one number in SQL: retries * RANK_SPAN + rank.
RANK_SPAN = TERMINAL_RANK + 2


def can_transition(current: str | None, new: str) -> bool:
    """Whether a row in ``current`` may move to ``new`` by status alone.

    Events arrive late or twice: a terminal state is final, so a stale
    ``queued``/``in_progress``/``deferred`` never moves a finished job backwards.
    Everything else may move (a retried job goes in_progress → deferred → in_progress).
    """
    return current is None or current not in TERMINAL_STATUSES or current == new


def order(status: str, retries: int | None) -> int:
    """Where a status stands in a job's life: later attempts first, then the rank."""
    return (retries or 0) * RANK_SPAN + RANK.get(status, TERMINAL_RANK)


def may_replace(
    old_status: str, old_retries: int | None, new_status: str, new_retries: int | None
) -> bool:
    """Whether an event may replace a row's values: the guard of the upsert, in Python."""
    if old_status in TERMINAL_STATUSES:
        return old_status == new_status
    if new_status in TERMINAL_STATUSES:
        return True
    return order(new_status, new_retries) >= order(old_status, old_retries)


# Columns that describe one attempt: a row holds the values of the attempt it last heard of.
ATTEMPT_FIELDS: tuple[str, ...] = ("start_time", "finish_time", "duration_ms", "worker_id")


def start_attempt(status: str, retries: int | None) -> int:
    """The attempt (from 0) whose start, end and worker a row or event in ``status`` holds.

    A waiting job after a failed attempt (``deferred``, ``job_retries`` already counted up)
    holds the previous attempt's; a running or finished one its own.
    """
    return (retries or 0) - (1 if status in WAITING_STATUSES else 0)


def starts_new_attempt(
    old_status: str, old_retries: int | None, new_status: str, new_retries: int | None
) -> bool:
    """Whether an accepted event is about a later attempt than the row: the row's
    :data:`ATTEMPT_FIELDS` are then the event's, even the ones it does not know (NULL), so
    an earlier attempt's start never passes for the later one's."""
    return start_attempt(new_status, new_retries) > start_attempt(old_status, old_retries)


def _sql_list(values: frozenset[str]) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))


def _sql_order(status: str, retries: str) -> str:
    cases = " ".join(f"WHEN '{s}' THEN {r}" for s, r in sorted(RANK.items()))
    return f"({retries} * {RANK_SPAN} + CASE {status} {cases} ELSE {TERMINAL_RANK} END)"


def guard_sql(old: Callable[[str], str], new: Callable[[str], str]) -> str:
    """:func:`may_replace` as one SQL boolean; ``old``/``new`` turn a column into its SQL."""
    terminal = _sql_list(TERMINAL_STATUSES)
    return (
        f"(CASE WHEN {old('status')} IN ({terminal}) THEN {old('status')} = {new('status')} "
        f"WHEN {new('status')} IN ({terminal}) THEN 1 = 1 "
        f"ELSE {_sql_order(new('status'), new('job_retries'))} >= "
        f"{_sql_order(old('status'), old('job_retries'))} END)"
    )


def _sql_start_attempt(status: str, retries: str) -> str:
    waiting = _sql_list(WAITING_STATUSES)
    return f"(COALESCE({retries}, 0) - CASE WHEN {status} IN ({waiting}) THEN 1 ELSE 0 END)"


def new_attempt_sql(old: Callable[[str], str], new: Callable[[str], str]) -> str:
    """:func:`starts_new_attempt` as one SQL boolean (``old``/``new`` as for :func:`guard_sql`)."""
    return (
        f"({_sql_start_attempt(new('status'), new('job_retries'))} > "
        f"{_sql_start_attempt(old('status'), old('job_retries'))})"
    )


def duration_ms(start: dt.datetime | float | None, end: dt.datetime | float | None) -> int | None:
    """Milliseconds from ``start`` to ``end`` (datetimes, or epoch milliseconds), never negative.

    Clocks of different hosts disagree by a little; a negative duration is always that.
    """
    if start is None or end is None:
        return None
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0, round((end - start).total_seconds() * 1000))
    return max(0, round(float(end) - float(start)))  # type: ignore[arg-type]
