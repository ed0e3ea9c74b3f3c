""" "Retry/Cancel/Delete all matching" in the admin: confirm with the exact count and a sample,
then a progress page that refreshes itself while the operation runs in the background.

The operation stores the changelist's query string (its filters and search, not its page or
order) in the admin's own filter language; the runner rebuilds the same changelist queryset
from it (:func:`admin_scope`), for the user who started it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.test import RequestFactory
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from rearq_tasks.admin.actions import can_operate
from rearq_tasks.audit import redacted_filters
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import (
    ACTION_PERMISSIONS,
    ACTIVE_STATES,
    BULK_ACTIONS,
    TaskOperation,
)
from rearq_tasks.queue import operations

SCOPE = "admin"
# Changelist parameters that page, order or pop up: not part of the set.
NOT_FILTERS = ("p", "o", "all", "_popup", "_to_field", "e")
TITLES = {
    "retry": _("Retry all matching jobs?"),
    "cancel": _("Cancel all matching jobs?"),
    "delete": _("Delete all matching jobs?"),
}


def changelist_filters(request: HttpRequest) -> dict[str, str]:
    """The changelist's filters and search from a query string (last value of each)."""
    return {key: value for key, value in request.GET.items() if key not in NOT_FILTERS}


def _changelist_queryset(request: HttpRequest) -> QuerySet[TaskLog]:
    model_admin = admin.site._registry.get(TaskLog)
    if model_admin is None:
        raise LookupError("TaskLog is not registered in the default admin site")
    try:
        return model_admin.get_changelist_instance(request).queryset
    except IncorrectLookupParameters as exc:
        raise LookupError(f"the changelist filter is not valid: {exc}") from None


def admin_scope(filters: dict[str, Any], user: Any) -> QuerySet[TaskLog]:
    """The rows the changelist shows for ``filters`` (filters and search), seen by ``user``."""
    if user is None:
        raise LookupError("the user who started this operation no longer exists")
    request = RequestFactory().get("/", data=filters)
    request.user = user
    return _changelist_queryset(request)


operations.register_scope(SCOPE, admin_scope)


class BulkAdminMixin:
    """For TaskLog's ModelAdmin: the bulk confirmation and progress pages."""

    list_before_template = "rearq_tasks/admin/bulk_links.html"

    def bulk_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("bulk/<str:action>/", wrap(self.bulk_view), name="tasks_tasklog_bulk"),
            path(
                "operations/<int:pk>/",
                wrap(self.operation_view),
                name="tasks_tasklog_operation",
            ),
        ]

    def bulk_view(self, request: HttpRequest, action: str) -> HttpResponse:
        """GET: the exact count and a sample; POST (with CSRF): store and start the operation."""
        if action not in BULK_ACTIONS:
            raise Http404(f"no bulk action {action!r}")
        if not can_operate(request, ACTION_PERMISSIONS[action]):
            raise PermissionDenied
        filters = changelist_filters(request)
        changelist = reverse(f"{self.admin_site.name}:tasks_tasklog_changelist")
        try:
            if request.method == "POST":
                operation = operations.create(
                    action, SCOPE, filters, source="admin", request=request
                )
                url = reverse(
                    f"{self.admin_site.name}:tasks_tasklog_operation", args=[operation.pk]
                )
                return HttpResponseRedirect(url)
            found = operations.preview(action, SCOPE, filters, request.user)
        except LookupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": TITLES[action],
            "action": action,
            "filters": redacted_filters(filters),  # shown on the page: no credential
            "back_url": f"{changelist}?{urlencode(filters)}" if filters else changelist,
            **found,
        }
        return TemplateResponse(request, "rearq_tasks/admin/bulk_confirm.html", context)

    def operation_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """An operation's state and counters; the page refreshes itself while it is active."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        operation = get_object_or_404(TaskOperation, pk=pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Bulk %(action)s #%(pk)s") % {"action": operation.action, "pk": pk},
            "operation": operation,
            "percent": round(operation.progress * 100),
            "active": operation.state in ACTIVE_STATES,
            "changelist_url": reverse(f"{self.admin_site.name}:tasks_tasklog_changelist"),
        }
        return TemplateResponse(request, "rearq_tasks/admin/bulk_progress.html", context)
