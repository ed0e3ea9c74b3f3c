"""The query vocabulary of TaskLog: what "failed", "completed", "stuck" or "in the last N
hours" means, as named ``Q`` expressions (they compose: ``Count("id", filter=FAILED)``).

Defined once here, from the statuses in :mod:`rearq_tasks.lifecycle`; the QuerySet methods and
the model properties in :mod:`rearq_tasks.models` mirror them (a test proves they agree), and
every surface filters with them instead of spelling a status condition itself.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from rearq_tasks.lifecycle import (
    ATTEMPT_ERROR_EVENTS,
    FAILED_STATUSES,
    RETRYABLE_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    StatusChoices,
)

# The vocabulary. Each is a plain Q so it composes: Count("id", filter=FAILED).
COMPLETED = Q(status__in=sorted(TERMINAL_STATUSES))
SUCCESSFUL = Q(status=StatusChoices.SUCCESS, success=True)
FAILED = Q(status__in=sorted(FAILED_STATUSES)) | Q(success=False)
CANCELED = Q(status=StatusChoices.CANCELED)
WAITING = Q(status__in=sorted(WAITING_STATUSES))
QUEUED = Q(status=StatusChoices.QUEUED)
DEFERRED = Q(status=StatusChoices.DEFERRED)
RUNNING = Q(status=StatusChoices.IN_PROGRESS)
IN_FLIGHT = WAITING | RUNNING
# What the statistics call "in progress" (the seed's figure): queued or running, not deferred.
ACTIVE = QUEUED | RUNNING
# Ended without succeeding: what an operator may run again.
RETRYABLE = Q(status__in=sorted(RETRYABLE_STATUSES))
WITH_ERROR = Q(error_message__isnull=False) & ~Q(error_message="")
RETRIED = Q(job_retries__gt=0)
# Succeeded after at least one failed attempt (ReArq only retries a job that raised).
RECOVERED = SUCCESSFUL & RETRIED
# The current attempt has not run: job_retries then counts the attempts made so far.
NOT_RUN_YET = WAITING | Q(status=StatusChoices.EXPIRED) | (CANCELED & Q(start_time__isnull=True))


def attempts_min_q(n: int) -> Q:
    """At least ``n`` attempts made: ``job_retries`` while the current attempt has not run,
    ``job_retries + 1`` once it has (see docs/history.md)."""
    if n <= 0:
        return Q()
    return (NOT_RUN_YET & Q(job_retries__gte=n)) | (~NOT_RUN_YET & Q(job_retries__gte=n - 1))


def stuck_q(older_than: dt.timedelta | int, now: dt.datetime | None = None) -> Q:
    """In progress for longer than ``older_than`` (seconds or timedelta).

    ReArq marks a fetched batch in_progress before the jobs run, so a row with no
    start_time yet is judged by its enqueue time.
    """
    if not isinstance(older_than, dt.timedelta):
        older_than = dt.timedelta(seconds=older_than)
    cutoff = (now or timezone.now()) - older_than
    return RUNNING & (
        Q(start_time__lt=cutoff) | Q(start_time__isnull=True, enqueue_time__lt=cutoff)
    )


def since_q(period: dt.datetime | dt.timedelta | int | float, now: dt.datetime | None = None) -> Q:
    """Enqueued within the last ``period`` hours (or timedelta), or at/after a datetime.

    Enqueue time is the job's own clock (imported history keeps it; ``created_at`` would be
    the import time) and is indexed together with status, task and success.
    """
    if isinstance(period, dt.datetime):
        cutoff = period
    else:
        delta = period if isinstance(period, dt.timedelta) else dt.timedelta(hours=period)
        cutoff = (now or timezone.now()) - delta
    return Q(enqueue_time__gte=cutoff)


# History events that end an attempt with an error.
ATTEMPT_ERROR = Q(event__in=sorted(ATTEMPT_ERROR_EVENTS))
