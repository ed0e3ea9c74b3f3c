"""Template tags of the TaskLog admin."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.views.main import PAGE_VAR
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString, mark_safe

from rearq_tasks.admin.filters import bounded_date_hierarchy
from rearq_tasks.admin.search import suggestions

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def tasklog_date_hierarchy(cl: Any) -> dict[str, Any]:
    """Django's date drill-down, computed without ``SELECT DISTINCT date_trunc``."""
    return bounded_date_hierarchy(cl)


SUGGESTIONS_ID = "tasklog-search-suggestions"


@register.simple_tag(takes_context=True)
def tasklog_search_box(context: template.Context) -> SafeString:
    """Unfold's own search form, whatever its version's markup (0.91 binds Alpine components
    that 0.110 dropped: a copy of one breaks the other), with its input tied to the
    suggestions. When the input is not found the box works without suggestions."""
    html = render_to_string("admin/search_form.html", context.flatten())
    marker = 'id="searchbar"'
    tied = f'{marker} list="{SUGGESTIONS_ID}" autocomplete="off"'
    return mark_safe(html.replace(marker, tied, 1))  # noqa: S308 - a rendered template


@register.inclusion_tag("rearq_tasks/admin/search_suggestions.html")
def tasklog_search_suggestions() -> dict[str, Any]:
    """Qualifiers, task and queue names for the search box (the cached index walk)."""
    return {"suggestions": suggestions()}


@register.inclusion_tag("rearq_tasks/admin/export_links.html")
def tasklog_export_links(cl: Any) -> dict[str, Any]:
    """Export buttons for the changelist's current filters, search and ordering."""
    try:
        url = reverse(f"{cl.model_admin.admin_site.name}:tasks_tasklog_export")
    except NoReverseMatch:
        return {"export_url": None}
    query = cl.get_query_string(remove=[PAGE_VAR])
    return {"export_url": url, "query": query + ("&" if len(query) > 1 else "")}
