"""The workers page in the admin, and the one-click repair of a dead worker's jobs.

The page shows :func:`rearq_tasks.queue.workers.workers_page` (the API's data): flagged
workers first, each with its queues, last heartbeat, alive/dead, running jobs (links to
their rows) and the last hour's finished and failed jobs. The repair is a POST with CSRF
that needs ``tasks.cancel_tasklog``; it is audited by :func:`repair_worker`.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from rearq_tasks.admin.actions import CANCEL_PERMISSION, can_operate
from rearq_tasks.queue import workers


class WorkersForm(forms.Form):
    """The page's query string; an invalid one is a 400 naming the parameter."""

    state = forms.ChoiceField(choices=[("", "")] + [(s, s) for s in workers.STATES],
                              required=False)  # fmt: skip
    search = forms.CharField(required=False, max_length=workers.MAX_NAME_LENGTH)
    seen_hours = forms.IntegerField(required=False, min_value=1, max_value=24 * 30)
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)


def _query(request: HttpRequest) -> workers.Query | HttpResponse:
    form = WorkersForm(request.GET)
    if not form.is_valid():
        names = ", ".join(sorted(form.errors))
        return HttpResponseBadRequest(f"Invalid parameter(s): {names}", content_type="text/plain")
    data = form.cleaned_data
    return workers.Query(
        state=data["state"] or None,
        search=data["search"] or "",
        seen_hours=data["seen_hours"] or workers.SEEN_HOURS,
        page=data["page"] or 1,
    )


class WorkersAdminMixin:
    """For TaskLog's ModelAdmin: the workers page and the repair of a dead worker."""

    def workers_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("workers/", wrap(self.workers_view), name="tasks_tasklog_workers"),
            path(
                "workers/<str:name>/repair/",
                wrap(self.worker_repair_view),
                name="tasks_tasklog_worker_repair",
            ),
        ]

    def workers_view(self, request: HttpRequest) -> HttpResponse:
        """Every worker seen recently; flagged (dead with jobs in progress) first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = _query(request)
        if isinstance(query, HttpResponse):
            return query
        data = workers.workers_page(query)
        site = self.admin_site.name
        # One reverse() for every link: "<...>/0/change/" with the id put in its place.
        head, _zero, tail = reverse(f"{site}:tasks_tasklog_change", args=[0]).rpartition("/0/")
        for row in data["results"]:
            for job in row["running_jobs"]:
                job["url"] = f"{head}/{quote(job['id'])}/{tail}"
            row["repair_url"] = reverse(f"{site}:tasks_tasklog_worker_repair", args=[row["name"]])
        params = {k: v for k, v in request.GET.items() if k != "page"}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("ReArq workers"),
            "page": data,
            "query": query,
            "states": workers.STATES,
            "can_repair": can_operate(request, CANCEL_PERMISSION),
            "page_query": urlencode(params),
            "changelist_url": reverse(f"{site}:tasks_tasklog_changelist"),
        }
        return TemplateResponse(request, "rearq_tasks/admin/workers.html", context)

    def worker_repair_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """POST only (CSRF): fail as lost the jobs the dead worker ``name`` left running."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_operate(request, CANCEL_PERMISSION):
            raise PermissionDenied
        from rearq_tasks.queue.loop import ReArqUnavailable

        try:
            report = workers.repair_worker(name, source="admin", request=request)
        except (LookupError, workers.RepairRefused, ReArqUnavailable) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, str(report), messages.SUCCESS)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tasks_tasklog_workers"))
