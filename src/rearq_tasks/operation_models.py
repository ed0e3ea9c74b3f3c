"""The rows behind bulk operations and the audit log: ``TaskOperation`` and ``AuditEntry``.

An operation is a database row, not a request: it holds the action, the frozen filter, the
bound of the matched set (the largest TaskLog id when it was created, so jobs enqueued later
are not swept in), its counters, its state and a cursor. Whatever runs it
(:mod:`rearq_tasks.queue.operations`) holds a lease on it; a runner that dies leaves a lease
that expires, and the next runner resumes from the cursor.

An audit entry says who did what to which jobs, from where, and with what outcome. Both
models import nothing of ``models.py`` (which imports them, so Django registers them).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    RETRY = "retry", _("Retry")
    CANCEL = "cancel", _("Cancel")
    DELETE = "delete", _("Delete")
    EXPORT = "export", _("Export")
    REPAIR = "repair", _("Repair a dead worker's jobs")


# What a bulk operation may do (export is not an operation: it is audited only).
BULK_ACTIONS: tuple[str, ...] = (Action.RETRY, Action.CANCEL, Action.DELETE)
# The permission each action needs (besides tasks.view_tasklog).
ACTION_PERMISSIONS: dict[str, str] = {
    Action.RETRY: "tasks.retry_tasklog",
    Action.CANCEL: "tasks.cancel_tasklog",
    Action.DELETE: "tasks.delete_tasklog",
    Action.EXPORT: "tasks.view_tasklog",
    # The workers page's repair fails a dead worker's jobs: cancel's permission.
    Action.REPAIR: "tasks.cancel_tasklog",
}


class OperationState(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


# States a runner picks up; the others are final.
ACTIVE_STATES: tuple[str, ...] = (
    OperationState.PENDING,
    OperationState.RUNNING,
    OperationState.PAUSED,
)


class Source(models.TextChoices):
    ADMIN = "admin", _("Admin")
    API = "api", _("API")
    COMMAND = "command", _("Command")


def _user() -> models.ForeignKey:
    """Who acted; the row outlives the user (SET_NULL; the audit entry keeps the username)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )


def _token() -> str:
    return uuid.uuid4().hex


class TaskOperation(models.Model):
    """One bulk retry/cancel/delete over everything a filter matched, run in chunks."""

    State = OperationState

    # Seeds the operation's retry job ids: unique even where ids restart (a new database
    # beside an old ReArq one), the same on every replay of a chunk.
    token = models.CharField(_("token"), max_length=32, default=_token, editable=False)
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    scope = models.CharField(_("filter language"), max_length=20, default=Source.API)
    filters = models.JSONField(_("filter"), default=dict, blank=True)
    bound = models.BigIntegerField(_("highest TaskLog id"), default=0)
    cursor = models.BigIntegerField(_("cursor (last TaskLog id done)"), default=0)
    state = models.CharField(
        _("state"),
        max_length=20,
        choices=OperationState.choices,
        default=OperationState.PENDING,
        db_index=True,
    )
    matched = models.IntegerField(_("matched"), default=0)
    done = models.IntegerField(_("done"), default=0)
    skipped = models.IntegerField(_("skipped"), default=0)
    failed = models.IntegerField(_("failed"), default=0)
    skip_reasons = models.JSONField(_("skipped, by reason"), default=dict, blank=True)
    errors = models.JSONField(_("failures, by reason"), default=dict, blank=True)
    message = models.TextField(_("message"), blank=True, default="")
    lease_owner = models.CharField(_("runner"), max_length=100, blank=True, default="")
    lease_expires = models.DateTimeField(_("lease expires"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=20, choices=Source.choices)
    user = _user()
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        db_table = "django_cfg_task_operation"
        ordering = ["-id"]
        verbose_name = _("task operation")
        verbose_name_plural = _("task operations")

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} {self.state}"

    @property
    def progress(self) -> float:
        """Share of the matched jobs handled (done, skipped or failed), 0..1."""
        if self.state == OperationState.DONE or not self.matched:
            return 1.0 if self.state == OperationState.DONE else 0.0
        return min(1.0, (self.done + self.skipped + self.failed) / self.matched)


class AuditEntry(models.Model):
    """Who retried, canceled, deleted or exported which jobs, from where, with what result."""

    action = models.CharField(_("action"), max_length=20, choices=Action.choices, db_index=True)
    source = models.CharField(_("source"), max_length=20, choices=Source.choices)
    user = _user()
    username = models.CharField(_("username"), max_length=150, blank=True, default="")
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    job_ids = models.JSONField(_("job ids"), default=list, blank=True)
    filters = models.JSONField(_("filter"), null=True, blank=True)
    operation = models.ForeignKey(
        TaskOperation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
        verbose_name=_("operation"),
    )
    matched = models.IntegerField(_("matched"), default=0)
    done = models.IntegerField(_("done"), default=0)
    skipped = models.IntegerField(_("skipped"), default=0)
    failed = models.IntegerField(_("failed"), default=0)

    class Meta:
        db_table = "django_cfg_task_audit"
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")

    def __str__(self) -> str:
        return f"{self.username or '?'} {self.action} {self.created_at:%Y-%m-%d %H:%M}"
