"""Changelist filters that stay cheap on a table of millions of rows.

Django's field filters list their choices with ``SELECT DISTINCT`` over the whole table
and ``date_hierarchy`` runs ``SELECT DISTINCT date_trunc(...)`` per level, on every view.
Here choices come from an index skip-scan (one index seek per distinct value), are
bounded and cached; the date drill-down is computed from the calendar and two
index-served MIN/MAX lookups.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from django.contrib import admin
from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rearq_tasks.conf import conf
from rearq_tasks.models import TaskLog

CACHE_PREFIX = "rearq_tasks:admin:choices:"


def distinct_values(column: str, limit: int) -> list[str]:
    """Up to ``limit`` distinct values of an indexed column, without a table-wide DISTINCT.

    A recursive CTE walks the index from one value to the next (a "loose index scan"),
    so the cost grows with the number of distinct values, not with the number of rows.
    """
    table = connection.ops.quote_name(TaskLog._meta.db_table)
    col = connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE walk(v) AS ("
        f" SELECT MIN({col}) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN(t.{col}) FROM {table} t WHERE t.{col} > walk.v)"
        f" FROM walk WHERE walk.v IS NOT NULL"
        f") SELECT v FROM walk WHERE v IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def cached_choices(column: str) -> list[str]:
    """``distinct_values`` cached for ``ADMIN_CHOICES_CACHE_SECONDS``."""
    key = f"{CACHE_PREFIX}{connection.alias}:{column}"
    values = cache.get(key)
    if values is None:
        values = distinct_values(column, conf.ADMIN_CHOICES_LIMIT)
        cache.set(key, values, conf.ADMIN_CHOICES_CACHE_SECONDS)
    return values


class _ColumnChoicesFilter(admin.SimpleListFilter):
    column: str

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = cached_choices(self.column)
        selected = self.value()
        if selected and selected not in values:
            values = [*values, selected]
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.column: value}) if value else queryset


class TaskNameFilter(_ColumnChoicesFilter):
    title = _("task name")
    parameter_name = "task_name"
    column = "task_name"


class QueueNameFilter(_ColumnChoicesFilter):
    title = _("queue name")
    parameter_name = "queue_name"
    column = "queue_name"


class QuickFilter(admin.SimpleListFilter):
    """One-click views built on the query vocabulary."""

    title = _("quick filters")
    parameter_name = "quick"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("failed", _("Failed only")),
            ("stuck", _("Stuck")),
            ("in_flight", _("In flight")),
            ("retried", _("Retried")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "failed":
            return queryset.failed()
        if value == "stuck":
            return queryset.stuck()
        if value == "in_flight":
            return queryset.in_flight()
        if value == "retried":
            return queryset.retried()
        return queryset


def bounded_date_hierarchy(cl: Any) -> dict[str, Any]:
    """What Django's ``date_hierarchy`` tag returns, without a DISTINCT over the table.

    Years come from MIN/MAX of the whole table (two index seeks, whatever the filters);
    months and days from the calendar, clipped to those bounds. A link may lead to an
    empty page; no view costs a table scan.
    """
    from django.utils import formats
    from django.utils.text import capfirst

    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    params = cl.params

    def value(name: str) -> int | None:
        raw = params.get(name)
        if isinstance(raw, list):
            raw = raw[-1] if raw else None
        try:
            return int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    year, month, day = value(year_field), value(month_field), value(day_field)

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        try:
            chosen = dt.date(year, month, day)
        except ValueError:
            return {"show": False}
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.model._default_manager.order_by().aggregate(first=Min(field), last=Max(field))
    if not bounds["first"]:
        return {"show": False}
    first = timezone.localtime(bounds["first"]).date()
    last = timezone.localtime(bounds["last"]).date()
    if not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        if not 1 <= month <= 12:
            return {"show": False}
        days = [
            dt.date(year, month, d)
            for d in range(1, calendar.monthrange(year, month)[1] + 1)
            if first <= dt.date(year, month, d) <= last
        ]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        months = [
            dt.date(year, m, 1)
            for m in range(1, 13)
            if (first.year, first.month) <= (year, m) <= (last.year, last.month)
        ]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }
    return {
        "show": True,
        "choices": [
            {"link": link({year_field: str(y)}), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ],
    }
