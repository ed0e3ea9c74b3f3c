"""The changelist's search box (the search language) and its Export button.

The search box speaks the API's language (:mod:`rearq_tasks.queries.language`); plain words
keep the admin's meaning: an exact job id, task name, worker or user name/e-mail, or words
of the error message. A search that cannot run shows a message naming the fault and an
empty list, never a 500. Export streams the rows of the current changelist (filters, search,
ordering) as CSV or JSON Lines through :mod:`rearq_tasks.queries.export`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from unfold.views import ChangeList

from rearq_tasks.admin.filters import FiltersOnlyChangeList, cached_choices
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import Source
from rearq_tasks.queries import export, language
from rearq_tasks.queries.window import window_first

EXPORT_PARAM = "format"
DEFERRED_ATTR = "_rearq_tasks_deferred"  # the changelist's request: where its search defers
SUGGESTED = (
    "status:failed", "status:expired", "status:in_progress", "error:", "id:", "user:",
    "worker:", "kwargs.", "args:", "after:-2h", "after:-7d", "before:",
)  # fmt: skip


def suggestions() -> list[str]:
    """What the search box offers: qualifiers, then ``task:``/``queue:`` with known names."""
    names = [f"task:{name}" for name in cached_choices("task_name")]
    queues = [f"queue:{name}" for name in cached_choices("queue_name")]
    return [*SUGGESTED, *(f'"{s}"' if " " in s else s for s in names + queues)]


def _user_ids(term: str) -> list[Any]:
    User = get_user_model()
    fields = [f.name for f in User._meta.get_fields() if f.name in ("username", "email")]
    match = Q()
    for name in fields:
        match |= Q(**{f"{name}__iexact": term})
    if not fields:
        return []
    return list(User._default_manager.filter(match).values_list("pk", flat=True)[:100])


def words_q(term: str) -> Q:
    """The admin's plain search: a job id alone if one matches (answered by the unique
    index); else a task name, worker or user, or words of the error message."""
    if TaskLog.objects.filter(job_id=term).exists():
        return Q(job_id=term)
    match = Q(task_name=term) | Q(worker_id=term) | Q(error_message__icontains=term)
    user_ids = _user_ids(term)
    if user_ids:
        match |= Q(user_id__in=user_ids)
    return match


def search_condition(term: str, using: str = "default") -> Q | None:
    """The condition of a search box term (None when there is nothing to search for);
    :class:`~rearq_tasks.queries.language.QueryError` when it cannot run."""
    query = language.parse(term.strip())
    return language.query_q(query, words_q, using) if query else None


class TaskLogChangeList(FiltersOnlyChangeList):
    """Only the filters' own lookups (:class:`FiltersOnlyChangeList`); with ``kwargs.``/``args:``
    in the search, a page comes from the newest rows or, when
    they do not hold it, from the GIN index's sorted matches
    (:func:`~rearq_tasks.queries.window.window_first`), never from a walk of the table."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet:
        deferred: dict[str, Q] = {}
        setattr(request, DEFERRED_ATTR, deferred)
        try:
            queryset = super().get_queryset(request, *args, **kwargs)
        finally:
            delattr(request, DEFERRED_ATTR)
        if "q" not in deferred:
            return queryset
        return window_first(queryset, deferred["q"])


class SearchExportMixin:
    """For the TaskLog ModelAdmin: language search, suggestions and the export view."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        try:
            query = language.parse(search_term.strip())
            if not query:
                return queryset, False
            columns, deferred = language.query_parts(query, words_q, queryset.db)
        except language.QueryError as exc:
            messages.error(request, f"Search: {exc}")
            return queryset.none(), False
        found = getattr(request, DEFERRED_ATTR, None)
        if query.uses_arguments and found is not None:  # our changelist applies them last
            found["q"] = deferred
            return queryset.filter(columns), False
        return queryset.filter(columns & deferred), False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskLogChangeList

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.export_view)  # type: ignore[attr-defined]
        return [
            path("export/", view, name="tasks_tasklog_export"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The current changelist's rows, streamed; ``?format=csv`` (default) or ``jsonl``."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        params = request.GET.copy()
        fmt = params.pop(EXPORT_PARAM, ["csv"])[-1]
        changelist_url = reverse(f"{self.admin_site.name}:tasks_tasklog_changelist")  # type: ignore[attr-defined]
        back = HttpResponseRedirect(f"{changelist_url}?{params.urlencode()}")
        if fmt not in export.FORMATS:
            messages.error(request, f"Export: format must be one of {', '.join(export.FORMATS)}.")
            return back
        try:
            search_condition(params.get(SEARCH_VAR, ""))
        except language.QueryError as exc:
            messages.error(request, f"Search: {exc}")
            return back
        request.GET = params
        changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        chunks = export.audited_stream(
            changelist.queryset, fmt, source=Source.ADMIN, request=request, filters=params.dict()
        )
        response = StreamingHttpResponse(chunks, content_type=export.FORMATS[fmt][0])
        response["Content-Disposition"] = f'attachment; filename="{export.filename(fmt)}"'
        return response
