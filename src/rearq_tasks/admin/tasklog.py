"""Admin for TaskLog on django-unfold: logs are records, not forms.

Nothing can be added or edited; delete is for superusers. Retry and Cancel go through
ReArq (:mod:`rearq_tasks.queue.jobs`) from the row menu, the detail page or as bulk actions,
always as a POST with CSRF, and report per row what happened. They need their own
permissions, ``tasks.retry_tasklog`` and ``tasks.cancel_tasklog`` (superusers hold both).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin
from unfold.decorators import action, display
from unfold.paginator import InfinitePaginator

from rearq_tasks import audit
from rearq_tasks.admin import display as show
from rearq_tasks.admin.actions import (  # noqa: F401 - part of this module's interface
    CANCEL_PERMISSION,
    DELETE_PERMISSION,
    RETRY_PERMISSION,
    JobActionsMixin,
    can_operate,
)
from rearq_tasks.admin.bulk import BulkAdminMixin
from rearq_tasks.admin.filters import (
    QueueNameFilter,
    QuickFilter,
    TaskNameFilter,
)
from rearq_tasks.admin.search import SearchExportMixin
from rearq_tasks.admin.workers import WorkersAdminMixin
from rearq_tasks.conf import conf
from rearq_tasks.models import TaskLog

RELATED_WINDOW_DAYS = 3
RELATED_LIMIT = 10
LINK_CLASSES = "text-primary-600 dark:text-primary-500 hover:underline"


@admin.register(TaskLog)
class TaskLogAdmin(
    SearchExportMixin, BulkAdminMixin, WorkersAdminMixin, JobActionsMixin, ModelAdmin
):
    list_display = (
        "task_name",
        "queue_display",
        "status_display",
        "user_display",
        "duration_display",
        "retries_display",
        "created_at",
        "finish_time",
    )
    list_display_links = ("task_name",)
    list_filter = (QuickFilter, "status", TaskNameFilter, QueueNameFilter)
    date_hierarchy = "created_at"
    search_fields = (
        "=job_id", "=task_name", "=worker_id", "error_message", "=user__username", "=user__email"
    )  # fmt: skip
    search_help_text = _(
        "task: queue: status: worker: user: id: error: kwargs.<key>: args: after:-2h before: "
        "or an exact job id, task, worker, user, or words of the error"
    )
    list_select_related = ("user",)
    list_per_page = 50
    show_full_result_count = False
    paginator = InfinitePaginator
    ordering = ("-enqueue_time",)
    actions = ("retry_selected", "cancel_selected")
    actions_row = ("retry_job", "cancel_job")
    actions_detail = ("retry_job", "cancel_job")
    actions_list = ("dashboard_link", "workers_link")
    readonly_fields = (
        "id", "job_id", "task_name", "queue_display", "status_badge", "user_display",
        "related_runs", "rearq_link", "args_pretty", "kwargs_pretty", "performance",
        "enqueue_time", "start_time", "finish_time", "created_at", "updated_at", "worker_id",
        "error_details", "result_pretty", "attempt_timeline",
    )  # fmt: skip

    # --- permissions: records, not forms ---
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The same rule as "Delete all matching" (tasks.delete_tasklog), not superusers only.
        return can_operate(request, DELETE_PERMISSION)

    def has_retry_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_operate(request, RETRY_PERMISSION)

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_operate(request, CANCEL_PERMISSION)

    def get_autocomplete_fields(self, request: HttpRequest) -> tuple[str, ...]:
        """Autocomplete the user only where the user admin can search (else a plain select)."""
        user_admin = self.admin_site._registry.get(get_user_model())
        return ("user",) if user_admin is not None and user_admin.search_fields else ()

    # --- changelist ---
    def get_list_filter(self, request: HttpRequest) -> list:
        """Adds a user filter that autocompletes (never lists every user) when it can."""
        filters = list(super().get_list_filter(request))
        if apps.is_installed("unfold.contrib.filters") and self.get_autocomplete_fields(request):
            from unfold.contrib.filters.admin import AutocompleteSelectFilter

            filters.append(("user", AutocompleteSelectFilter))
        return filters

    @display(description=_("queue"), ordering="queue_name")
    def queue_display(self, obj: TaskLog) -> SafeString:
        return show.queue_badge(obj.queue_name)

    @display(description=_("status"), ordering="status", label=show.STATUS_LABEL_TYPES)
    def status_display(self, obj: TaskLog) -> tuple[str, SafeString]:
        return show.status_label(obj.status)

    @display(description=_("status"))
    def status_badge(self, obj: TaskLog) -> SafeString:
        return show.status_badge(obj.status)

    @display(description=_("user"), ordering="user__username")
    def user_display(self, obj: TaskLog) -> SafeString | None:
        user = obj.user
        if user is None:
            return None
        opts = user._meta
        try:
            url = reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[quote(user.pk)],
            )
        except NoReverseMatch:
            return format_html("{}", user.get_username())
        return format_html('<a href="{}" class="{}">{}</a>', url, LINK_CLASSES, user.get_username())

    @display(description=_("duration"), ordering="duration_ms")
    def duration_display(self, obj: TaskLog) -> SafeString | None:
        return show.duration_badge(obj)

    @display(description=_("retries"), ordering="job_retries")
    def retries_display(self, obj: TaskLog) -> SafeString:
        return show.retries_badge(obj)

    # --- detail page ---
    def get_fieldsets(self, request: HttpRequest, obj: TaskLog | None = None) -> list:
        info = ["id", "job_id", "task_name", "queue_display", "status_badge", "user_display",
                "reruns", "related_runs"]  # fmt: skip
        if conf.REARQ_UI_URL:
            info.append("rearq_link")
        fieldsets: list = [
            (_("Task information"), {"fields": info}),
            (_("Arguments"), {"classes": ["collapse"], "fields": ["args_pretty", "kwargs_pretty"]}),
            (
                _("Performance"),
                {
                    "fields": [
                        "performance",
                        "enqueue_time",
                        "start_time",
                        "finish_time",
                        "created_at",
                        "updated_at",
                        "worker_id",
                    ]
                },  # fmt: skip
            ),
        ]
        if obj is not None:
            fieldsets.append((_("Attempts"), {"fields": ["attempt_timeline"]}))
        if obj is not None and obj.is_failed:
            fieldsets.append((_("Error details"), {"fields": ["error_details"]}))
        fieldsets.append((_("Result"), {"fields": ["result_pretty"]}))
        return fieldsets

    @display(description=_("args"))
    def args_pretty(self, obj: TaskLog) -> SafeString:
        return show.pretty_json(obj.args)

    @display(description=_("kwargs"))
    def kwargs_pretty(self, obj: TaskLog) -> SafeString:
        return show.pretty_json(obj.kwargs)

    @display(description=_("summary"))
    def performance(self, obj: TaskLog) -> SafeString:
        return show.performance_summary(obj)

    @display(description=_("error"))
    def error_details(self, obj: TaskLog) -> SafeString:
        return show.error_panel(obj)

    @display(description=_("timeline"))
    def attempt_timeline(self, obj: TaskLog) -> SafeString:
        """Memoised on the instance (one events query per page, however often it renders)."""
        if not hasattr(obj, "_attempt_timeline_html"):
            from rearq_tasks.queries.history import job_history

            events = job_history(obj)
            obj._attempt_timeline_html = show.attempt_timeline(obj, events)  # type: ignore[attr-defined]
        return obj._attempt_timeline_html  # type: ignore[attr-defined]

    @display(description=_("result"))
    def result_pretty(self, obj: TaskLog) -> SafeString | None:
        return show.pretty_result(obj.result)

    @display(description=_("ReArq"))
    def rearq_link(self, obj: TaskLog) -> SafeString | None:
        base = conf.REARQ_UI_URL
        if not base:
            return None
        url = f"{base.rstrip('/')}/job?{urlencode({'job_id': obj.job_id})}"
        return format_html(
            '<a href="{}" class="{}" target="_blank" rel="noopener noreferrer">{}</a>',
            url,
            LINK_CLASSES,
            _("Open this job in ReArq's web UI"),
        )

    @display(description=_("re-runs"))
    def reruns(self, obj: TaskLog) -> SafeString | None:
        """The job this one runs again (``retry_of``) and the jobs that run it again."""
        rows: list[tuple[Any, str | None, str]] = []
        if obj.retry_of:
            original = TaskLog.objects.filter(job_id=obj.retry_of).only("pk").first()
            url = self._change_url(original) if original is not None else None
            rows.append((_("retry of"), url, obj.retry_of))
        again = TaskLog.objects.filter(retry_of=obj.job_id).only("pk", "job_id").order_by("pk")
        rows += [(_("run again as"), self._change_url(o), o.job_id) for o in again[:RELATED_LIMIT]]
        return show.rerun_links(rows, LINK_CLASSES) if rows else None

    @display(description=_("same task and arguments"))
    def related_runs(self, obj: TaskLog) -> SafeString | None:
        """Other runs of this task with the same arguments: a retry and its original.

        Memoised on the instance: the read-only field renders its value more than once.
        """
        if not hasattr(obj, "_related_runs_html"):
            obj._related_runs_html = self._related_runs(obj)  # type: ignore[attr-defined]
        return obj._related_runs_html  # type: ignore[attr-defined]

    def _related_runs(self, obj: TaskLog) -> SafeString | None:
        import datetime as dt

        window = dt.timedelta(days=RELATED_WINDOW_DAYS)
        others = (
            TaskLog.objects.filter(
                task_name=obj.task_name,
                enqueue_time__gte=obj.enqueue_time - window,
                enqueue_time__lte=obj.enqueue_time + window,
                args=obj.args,
                kwargs=obj.kwargs,
            )
            .exclude(pk=obj.pk)
            .only("pk", "job_id", "status", "enqueue_time")
            .order_by("-enqueue_time")[:RELATED_LIMIT]
        )
        rows = [
            (self._change_url(other), other.job_id, show.status_badge(other.status))
            for other in others
        ]
        if not rows:
            return None
        return format_html(
            '<ul class="flex flex-col gap-1">{}</ul>',
            format_html_join(
                "", '<li><a href="{}" class="' + LINK_CLASSES + '">{}</a> · {}</li>', rows
            ),
        )

    def delete_model(self, request: HttpRequest, obj: TaskLog) -> None:
        """A row's history goes with it (events have no database-level cascade)."""
        from rearq_tasks.models import TaskEvent

        with transaction.atomic():
            TaskEvent.objects.filter(job_id=obj.job_id).delete()
            super().delete_model(request, obj)
            audit.record("delete", source="admin", request=request, job_ids=[obj.job_id],
                         matched=1, done=1)  # fmt: skip

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        from rearq_tasks.models import TaskEvent

        with transaction.atomic():
            job_ids = list(queryset.values_list("job_id", flat=True))
            TaskEvent.objects.filter(job_id__in=job_ids).delete()
            super().delete_queryset(request, queryset)
            audit.record("delete", source="admin", request=request, job_ids=job_ids,
                         matched=len(job_ids), done=len(job_ids))  # fmt: skip

    def _change_url(self, obj: TaskLog) -> str:
        return reverse(f"{self.admin_site.name}:tasks_tasklog_change", args=[quote(obj.pk)])

    # --- actions ---
    @admin.action(description=_("Retry selected jobs"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._operate(request, "retry", queryset)

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._operate(request, "cancel", queryset)

    @action(description=_("Retry"), url_path="retry", permissions=["retry"], icon="replay")
    def retry_job(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm_or_run(request, object_id, "retry")

    @action(description=_("Cancel"), url_path="cancel", permissions=["cancel"], icon="cancel")
    def cancel_job(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm_or_run(request, object_id, "cancel")

    @action(description=_("Dashboard"), url_path="dashboard-link", icon="monitoring")
    def dashboard_link(self, request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tasks_tasklog_dashboard"))

    @action(description=_("Workers"), url_path="workers-link", icon="dns")
    def workers_link(self, request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tasks_tasklog_workers"))

    # --- dashboard ---
    def get_urls(self) -> list[URLPattern]:
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="tasks_tasklog_dashboard",
        )
        return [dashboard, *self.bulk_urls(), *self.workers_urls(), *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        from rearq_tasks.admin.dashboard import dashboard_context

        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Tasks dashboard"),
            "changelist_url": reverse(f"{self.admin_site.name}:tasks_tasklog_changelist"),
            **dashboard_context(),
        }
        return TemplateResponse(request, "rearq_tasks/admin/dashboard.html", context)
