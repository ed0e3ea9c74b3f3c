"""TaskLog: one row per ReArq job; TaskEvent, its history; AlertState.

What "failed", "completed", "stuck" or "in the last N hours" means is defined once, as the
named ``Q`` expressions of :mod:`rearq_tasks.vocabulary` (importable from here too), wrapped
by :class:`TaskLogQuerySet` methods, so the API, admin, health checks and alerts agree and
the predicates also work inside ``Count(filter=...)``. The model properties mirror the same
definitions for one row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rearq_tasks.conf import conf
from rearq_tasks.lifecycle import (
    FAILED_STATUSES,
    RETRYABLE_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    EventType,
    StatusChoices,
    can_transition,
    duration_ms,
)
from rearq_tasks.vocabulary import (  # noqa: F401 - the vocabulary, importable from here too
    ACTIVE,
    ATTEMPT_ERROR,
    CANCELED,
    COMPLETED,
    DEFERRED,
    FAILED,
    IN_FLIGHT,
    NOT_RUN_YET,
    QUEUED,
    RECOVERED,
    RETRIED,
    RETRYABLE,
    RUNNING,
    SUCCESSFUL,
    WAITING,
    WITH_ERROR,
    attempts_min_q,
    since_q,
    stuck_q,
)


class TaskLogQuerySet(models.QuerySet["TaskLog"]):
    """The one query vocabulary for TaskLog."""

    def completed(self) -> TaskLogQuerySet:
        return self.filter(COMPLETED)

    def successful(self) -> TaskLogQuerySet:
        return self.filter(SUCCESSFUL)

    def failed(self) -> TaskLogQuerySet:
        return self.filter(FAILED)

    def canceled(self) -> TaskLogQuerySet:
        return self.filter(CANCELED)

    def waiting(self) -> TaskLogQuerySet:
        return self.filter(WAITING)

    def running(self) -> TaskLogQuerySet:
        return self.filter(RUNNING)

    def in_flight(self) -> TaskLogQuerySet:
        return self.filter(IN_FLIGHT)

    def retryable(self) -> TaskLogQuerySet:
        return self.filter(RETRYABLE)

    def with_error(self) -> TaskLogQuerySet:
        return self.filter(WITH_ERROR)

    def retried(self) -> TaskLogQuerySet:
        return self.filter(RETRIED)

    def recovered(self) -> TaskLogQuerySet:
        return self.filter(RECOVERED)

    def attempts_min(self, n: int) -> TaskLogQuerySet:
        return self.filter(attempts_min_q(n))

    def stuck(self, older_than: dt.timedelta | int | None = None) -> TaskLogQuerySet:
        """In progress longer than ``older_than`` (default ``STUCK_AFTER_SECONDS``)."""
        if older_than is None:
            older_than = conf.STUCK_AFTER_SECONDS
        return self.filter(stuck_q(older_than))

    def since(self, period: dt.datetime | dt.timedelta | int | float) -> TaskLogQuerySet:
        """Enqueued in the last ``period`` hours (int/float/timedelta) or since a datetime."""
        return self.filter(since_q(period))

    def for_task(self, task_name: str | None) -> TaskLogQuerySet:
        return self.filter(task_name=task_name) if task_name else self


class TaskLog(models.Model):
    """One ReArq job: its latest state, payload, outcome and timings."""

    StatusChoices = StatusChoices

    job_id = models.CharField(_("job id"), max_length=100, unique=True)
    task_name = models.CharField(_("task name"), max_length=200, db_index=True)
    queue_name = models.CharField(_("queue name"), max_length=100, db_index=True)
    args = models.JSONField(_("args"), default=list, blank=True)
    kwargs = models.JSONField(_("kwargs"), default=dict, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=StatusChoices.choices,
        default=StatusChoices.QUEUED,
        db_index=True,
    )
    duration_ms = models.IntegerField(_("duration (ms)"), null=True, blank=True)
    job_retry = models.IntegerField(_("retry limit"), default=0)
    job_retries = models.IntegerField(_("retries"), default=0)
    job_retry_after = models.IntegerField(_("retry after (s)"), default=60)
    success = models.BooleanField(_("success"), null=True, blank=True)
    result = models.TextField(_("result"), null=True, blank=True)
    error_message = models.TextField(_("error message"), null=True, blank=True)
    worker_id = models.CharField(_("worker"), max_length=100, null=True, blank=True)
    enqueue_time = models.DateTimeField(_("enqueued at"), db_index=True)
    expire_time = models.DateTimeField(_("expires at"), null=True, blank=True)
    start_time = models.DateTimeField(_("started at"), null=True, blank=True)
    finish_time = models.DateTimeField(_("finished at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="task_logs",
        verbose_name=_("user"),
    )
    # The job this one runs again (an operator's retry, or the recovery of a job ReArq
    # dropped): a job id, not a foreign key, so it survives retention and import order.
    retry_of = models.CharField(_("retry of"), max_length=100, null=True, blank=True)

    objects = TaskLogQuerySet.as_manager()

    class Meta:
        db_table = "django_cfg_task_log"
        ordering = ["-enqueue_time"]
        verbose_name = _("task log")
        verbose_name_plural = _("task logs")
        permissions = [
            ("retry_tasklog", "Can retry task jobs"),
            ("cancel_tasklog", "Can cancel task jobs"),
        ]
        indexes = [
            models.Index(fields=["task_name", "-enqueue_time"], name="tasklog_task_enq_idx"),
            models.Index(fields=["status", "-enqueue_time"], name="tasklog_status_enq_idx"),
            models.Index(fields=["queue_name", "status"], name="tasklog_queue_status_idx"),
            models.Index(fields=["success", "-enqueue_time"], name="tasklog_success_enq_idx"),
            models.Index(fields=["-created_at"], name="tasklog_created_idx"),
            models.Index(fields=["retry_of"], name="tasklog_retry_of_idx"),
            # The workers page: jobs each worker finished in the last hour.
            models.Index(fields=["finish_time", "worker_id"], name="tasklog_finish_worker_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} [{self.job_id}] {self.status}"

    # Mirrors of the vocabulary for one instance (tests prove they agree).
    @property
    def is_completed(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_successful(self) -> bool:
        return self.status == StatusChoices.SUCCESS and self.success is True

    @property
    def is_retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.status in FAILED_STATUSES or self.success is False

    @property
    def attempts(self) -> int:
        """Attempts made (the rule of ``attempts_min_q``)."""
        not_run = (
            self.status in WAITING_STATUSES
            or self.status == StatusChoices.EXPIRED
            or (self.status == StatusChoices.CANCELED and self.start_time is None)
        )
        return self.job_retries if not_run else self.job_retries + 1

    @property
    def duration_seconds(self) -> float | None:
        return None if self.duration_ms is None else round(self.duration_ms / 1000, 3)

    @property
    def queue_wait_ms(self) -> int | None:
        if self.start_time is None or self.enqueue_time is None:
            return None
        return duration_ms(self.enqueue_time, self.start_time)

    # Lifecycle. Every helper goes through _advance: one place decides what may move.
    def _advance(self, status: str, **fields: Any) -> bool:
        """Move to ``status`` with ``fields`` and save only those columns.

        Returns False (and changes nothing) when the row is already in a different
        terminal state, so out-of-order events cannot undo a finished job.
        """
        if not can_transition(self.status, status):
            return False
        self.status = status
        for name, value in fields.items():
            setattr(self, name, value)
        if self.pk is None:
            self.save()
        else:
            self.save(update_fields=["status", *fields, "updated_at"])
        return True

    def mark_started(
        self, worker_id: str | None = None, start_time: dt.datetime | None = None
    ) -> bool:
        fields: dict[str, Any] = {"start_time": start_time or timezone.now()}
        if worker_id is not None:
            fields["worker_id"] = worker_id
        return self._advance(StatusChoices.IN_PROGRESS, **fields)

    def mark_completed(self, result: Any = None, finish_time: dt.datetime | None = None) -> bool:
        finish = finish_time or timezone.now()
        return self._advance(
            StatusChoices.SUCCESS,
            success=True,
            result=None if result is None else str(result),
            finish_time=finish,
            duration_ms=self._duration_to(finish),
        )

    def mark_failed(self, error_message: str, finish_time: dt.datetime | None = None) -> bool:
        finish = finish_time or timezone.now()
        return self._advance(
            StatusChoices.FAILED,
            success=False,
            error_message=error_message,
            finish_time=finish,
            duration_ms=self._duration_to(finish),
        )

    def mark_retry_scheduled(
        self, error_message: str, retries: int | None = None, finish_time: dt.datetime | None = None
    ) -> bool:
        """An attempt failed and ReArq deferred the job for another try.

        ``success`` stays unset: the job has not failed yet, so it does not count as failed.
        """
        finish = finish_time or timezone.now()
        return self._advance(
            StatusChoices.DEFERRED,
            error_message=error_message,
            job_retries=self.job_retries + 1 if retries is None else retries,
            duration_ms=self._duration_to(finish),
        )

    def mark_expired(self, finish_time: dt.datetime | None = None) -> bool:
        return self._advance(
            StatusChoices.EXPIRED, success=False, finish_time=finish_time or timezone.now()
        )

    def mark_canceled(
        self, reason: str | None = None, finish_time: dt.datetime | None = None
    ) -> bool:
        finish = finish_time or timezone.now()
        fields: dict[str, Any] = {"finish_time": finish, "duration_ms": self._duration_to(finish)}
        if reason is not None:
            fields["error_message"] = reason
        return self._advance(StatusChoices.CANCELED, **fields)

    def _duration_to(self, finish: dt.datetime) -> int | None:
        return duration_ms(self.start_time, finish)


class AlertState(models.Model):
    """What ``check_task_alerts`` last said about one alert, shared by every cron run.

    ``key`` names the alert and its subject (``failure_rate:send_email``, ``backlog:default``);
    the row survives resolution so a flapping alert keeps its history.
    """

    key = models.CharField(_("key"), max_length=255, unique=True)
    rule = models.CharField(_("rule"), max_length=50, db_index=True)
    firing = models.BooleanField(_("firing"), default=False)
    value = models.FloatField(_("value"), null=True, blank=True)
    threshold = models.FloatField(_("threshold"), null=True, blank=True)
    message = models.TextField(_("message"), blank=True, default="")
    sent_value = models.FloatField(_("value last sent"), null=True, blank=True)
    first_seen_at = models.DateTimeField(_("firing since"), null=True, blank=True)
    last_sent_at = models.DateTimeField(_("last sent at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "django_cfg_task_alert_state"
        ordering = ["key"]
        verbose_name = _("alert state")
        verbose_name_plural = _("alert states")

    def __str__(self) -> str:
        return f"{self.key} ({'firing' if self.firing else 'ok'})"


class TaskEvent(models.Model):
    """One transition of one attempt of a job: the append-only history behind a TaskLog row.

    ``job`` joins on ``TaskLog.job_id`` without a database constraint: events are written by
    the capture's raw SQL in the same transaction as the row, and retention deletes both
    tables in batches itself (no per-row cascade in Python). ``(job, attempt, event)`` is
    unique, so a duplicate event is ignored, never a second row.
    """

    EventType = EventType

    job = models.ForeignKey(
        TaskLog,
        to_field="job_id",
        db_column="job_id",
        db_constraint=False,
        db_index=False,  # the unique constraint's index leads with job_id
        on_delete=models.DO_NOTHING,
        related_name="events",
        verbose_name=_("job"),
    )
    event = models.CharField(_("event"), max_length=20, choices=EventType.choices)
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    timestamp = models.DateTimeField(_("time"))
    worker_id = models.CharField(_("worker"), max_length=100, null=True, blank=True)
    duration_ms = models.IntegerField(_("attempt duration (ms)"), null=True, blank=True)
    error_message = models.TextField(_("error message"), null=True, blank=True)
    traceback = models.TextField(_("traceback"), null=True, blank=True)

    class Meta:
        db_table = "django_cfg_task_event"
        ordering = ["attempt", "timestamp", "id"]
        verbose_name = _("task event")
        verbose_name_plural = _("task events")
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "event"], name="taskevent_job_attempt_event_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.attempt} {self.event}"


# Registered with the app here: the operation and audit rows live in their own module.
from rearq_tasks.operation_models import AuditEntry, TaskOperation  # noqa: E402, F401

# The rollup models live beside their bucket arithmetic; importing them here registers them.
from rearq_tasks.rollups import TaskStat, TaskStatBin  # noqa: E402, F401
