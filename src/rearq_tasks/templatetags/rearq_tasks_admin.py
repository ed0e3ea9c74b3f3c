"""Template tags of the TaskLog admin."""

from __future__ import annotations

from typing import Any

from django import template

from rearq_tasks.admin.filters import bounded_date_hierarchy

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def tasklog_date_hierarchy(cl: Any) -> dict[str, Any]:
    """Django's date drill-down, computed without ``SELECT DISTINCT date_trunc``."""
    return bounded_date_hierarchy(cl)
