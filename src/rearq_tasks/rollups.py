"""Pre-aggregated statistics: what a terminal TaskLog row adds to its time bucket.

A job enters the rollup when its row first becomes terminal, and only then: database
triggers (:mod:`rearq_tasks.rollup_sql`) add the *difference* a write makes — the new row's
contribution minus the old row's, each counted only while terminal — so every write path
(capture upsert, reconcile, cancel, expiry, seeding, ``mark_*``, a manual edit) keeps the
rollup equal to the rows, and a replayed event changes nothing. Deleting rows (retention)
leaves their rollups in place. See docs/performance.md.

Three bucket spans are kept: 15 minutes (any time zone's local hour and day is a union of
them, India's +05:30 and Nepal's +05:45 included), the UTC hour and the UTC day. A period
reads at most three quarters and 23 hours before its whole days, so the number of rollup
rows it reads depends on its length, not on the job rate (docs/performance.md).
Durations and queue waits also go into log-bucketed histograms (:data:`GAMMA`), from which
a percentile is read with at most :data:`ALPHA` relative error.
"""

from __future__ import annotations

import datetime as dt
import math

from django.db import models
from django.utils.translation import gettext_lazy as _

QUARTER = 900
HOUR = 3_600
DAY = 86_400
SPANS: tuple[int, ...] = (QUARTER, HOUR, DAY)
# The spans migrations 0008 and 0013 installed (0014 added the hour).
SPANS_0008: tuple[int, ...] = (QUARTER, DAY)
# Relative accuracy of a percentile read from the histograms (DDSketch's alpha).
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
INV_LN_GAMMA = 1 / math.log(GAMMA)
DURATION, WAIT = 0, 1  # histogram kinds
# ``success`` as a key column: NULL cannot take part in a portable ON CONFLICT key.
OUTCOME_UNKNOWN, OUTCOME_FALSE, OUTCOME_TRUE = -1, 0, 1


def outcome_of(success: bool | None) -> int:
    """The ``outcome`` key of a row's ``success`` (True 1, False 0, unset -1)."""
    if success is None:
        return OUTCOME_UNKNOWN
    return OUTCOME_TRUE if success else OUTCOME_FALSE


def bin_of(milliseconds: int) -> int:
    """The histogram bin of a whole number of milliseconds (the triggers' SQL, in Python).

    Bin 0 holds 0 ms; bin ``i + 1`` holds ``(γ^(i-1), γ^i]``.
    """
    if milliseconds <= 0:
        return 0
    return 1 + math.ceil(math.log(milliseconds) * INV_LN_GAMMA - 1e-9)


def bin_value(index: int) -> float:
    """The value a bin stands for: within ``ALPHA`` of every value the bin holds."""
    if index <= 0:
        return 0.0
    return 2 * GAMMA ** (index - 1) / (GAMMA + 1)


def floor_bucket(instant: dt.datetime, span: int) -> dt.datetime:
    """The start (UTC) of the ``span``-second bucket holding ``instant``."""
    seconds = instant.astimezone(dt.UTC).timestamp()
    return dt.datetime.fromtimestamp(seconds - seconds % span, tz=dt.UTC)


def ceil_bucket(instant: dt.datetime, span: int) -> dt.datetime:
    """The first bucket start at or after ``instant``."""
    start = floor_bucket(instant, span)
    return start if start == instant else start + dt.timedelta(seconds=span)


class TaskStat(models.Model):
    """Terminal jobs of one bucket, task, queue, status and outcome: counts and sums."""

    span = models.IntegerField(_("bucket seconds"))
    bucket = models.DateTimeField(_("bucket start"))
    task_name = models.CharField(_("task name"), max_length=200)
    queue_name = models.CharField(_("queue name"), max_length=100)
    status = models.CharField(_("status"), max_length=20)
    outcome = models.SmallIntegerField(_("success"))
    jobs = models.BigIntegerField(_("jobs"), default=0)
    retried = models.BigIntegerField(_("retried jobs"), default=0)
    retries_sum = models.BigIntegerField(_("retries"), default=0)
    attempts_sum = models.BigIntegerField(_("attempts"), default=0)
    duration_count = models.BigIntegerField(_("jobs with a duration"), default=0)
    duration_sum = models.BigIntegerField(_("duration sum (ms)"), default=0)
    wait_count = models.BigIntegerField(_("jobs with a queue wait"), default=0)
    wait_sum = models.BigIntegerField(_("queue wait sum (ms)"), default=0)

    class Meta:
        db_table = "django_cfg_task_stat"
        verbose_name = _("task statistics bucket")
        verbose_name_plural = _("task statistics buckets")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "bucket", "task_name", "queue_name", "status", "outcome"],
                name="taskstat_key_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} +{self.span}s {self.task_name} {self.status}"


class TaskStatBin(models.Model):
    """One histogram bin of durations (kind 0) or queue waits (kind 1): a sparse sketch."""

    span = models.IntegerField(_("bucket seconds"))
    bucket = models.DateTimeField(_("bucket start"))
    task_name = models.CharField(_("task name"), max_length=200)
    queue_name = models.CharField(_("queue name"), max_length=100)
    kind = models.SmallIntegerField(_("kind"))
    bin = models.IntegerField(_("bin"))
    jobs = models.BigIntegerField(_("jobs"), default=0)

    class Meta:
        db_table = "django_cfg_task_stat_bin"
        verbose_name = _("task statistics histogram bin")
        verbose_name_plural = _("task statistics histogram bins")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "bucket", "task_name", "queue_name", "kind", "bin"],
                name="taskstatbin_key_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} +{self.span}s {self.task_name} bin {self.bin}"
