"""The audit log and the bulk operations in the admin: read-only, filterable (by date with a
range filter, not date_hierarchy: that needs MySQL's time zone tables).

Nobody edits or deletes an audit entry here; ``cleanup_task_logs`` drops entries past
``AUDIT_RETENTION_DAYS``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from rearq_tasks.audit import redacted_filters
from rearq_tasks.operation_models import AuditEntry, TaskOperation


class _ReadOnly(ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(_ReadOnly):
    list_display = (
        "created_at", "username", "action", "source", "ip", "matched", "done", "skipped",
        "failed", "operation_link",
    )  # fmt: skip
    list_filter = ("action", "source", ("username", admin.AllValuesFieldListFilter), "created_at")
    search_fields = ("username", "ip")
    readonly_fields = (
        "created_at", "user", "username", "action", "source", "ip", "job_ids", "filters",
        "operation", "matched", "done", "skipped", "failed",
    )  # fmt: skip

    @admin.display(description=_("operation"))
    def operation_link(self, entry: AuditEntry) -> str:
        if entry.operation_id is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:tasks_tasklog_operation", args=[entry.operation_id])
        return format_html('<a href="{}">#{}</a>', url, entry.operation_id)


@admin.register(TaskOperation)
class TaskOperationAdmin(_ReadOnly):
    list_display = (
        "id", "action", "state", "matched", "done", "skipped", "failed", "source", "user",
        "created_at", "finished_at",
    )  # fmt: skip
    list_filter = ("action", "state", "created_at")
    readonly_fields = (
        "action", "state", "scope", "shown_filters", "bound", "cursor", "matched", "done",
        "skipped", "failed", "skip_reasons", "errors", "message", "lease_owner", "lease_expires",
        "source", "user", "created_at", "updated_at", "finished_at",
    )  # fmt: skip
    fields = readonly_fields  # the stored ``filters`` only through ``shown_filters``

    @admin.display(description=_("filters"))
    def shown_filters(self, operation: TaskOperation) -> Any:
        """Redacted, as on the audit entry: a running operation keeps the real filters."""
        return redacted_filters(operation.filters)
