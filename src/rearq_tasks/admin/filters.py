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
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from unfold.views import ChangeList

from rearq_tasks.conf import conf
from rearq_tasks.queries.distinct import distinct_values

CACHE_PREFIX = "rearq_tasks:admin:choices:"


def cached_choices(column: str) -> list[str]:
    """``distinct_values`` cached for ``ADMIN_CHOICES_CACHE_SECONDS``."""
    key = f"{CACHE_PREFIX}{connection.alias}:{column}"
    values = cache.get(key)
    if values is None:
        values = distinct_values(column, conf.ADMIN_CHOICES_LIMIT, using=connection.alias)
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


class FiltersOnlyChangeList(ChangeList):
    """A changelist that accepts only the lookups its own filters offer.

    Django applies every query parameter no filter consumed as a lookup on the model, so
    ``?job_id__regex=…`` (catastrophic backtracking in the database) or
    ``?args__contains=x`` (a 500 on SQLite) would reach the database from any user who may
    view the list. Here a parameter left over after the filters and the date hierarchy took
    theirs is refused before any query runs: Django's invalid-lookup path redirects to
    ``?e=1`` (the plain list) and an admin message names what was ignored. Search, ordering,
    pagination and the admin's own switches are not lookups and pass as usual.
    """

    def get_filters(self, request: HttpRequest) -> tuple[Any, ...]:
        asked = set(self.get_filters_params())
        try:
            specs, has_filters, remaining, duplicates, active = super().get_filters(request)
        except DisallowedModelAdminLookup as exc:  # a lookup through a relation
            self._refuse(request, sorted(asked))
            raise IncorrectLookupParameters(exc) from exc
        unknown = sorted(set(remaining) & asked)  # not what the date hierarchy derived
        if unknown:
            self._refuse(request, unknown)
            raise IncorrectLookupParameters(f"no filter offers {', '.join(unknown)}")
        return specs, has_filters, remaining, duplicates, active

    def _refuse(self, request: HttpRequest, names: list[str]) -> None:
        self.model_admin.message_user(
            request,
            _("Ignored %(names)s: only the filters in the sidebar, search and ordering apply.")
            % {"names": ", ".join(name[:60] for name in names[:5])},
            messages.WARNING,
        )


def bounded_date_hierarchy(cl: Any) -> dict[str, Any]:
    """What Django's ``date_hierarchy`` tag returns, without a DISTINCT over the table.

    Years come from MIN/MAX of the whole table (two index seeks, whatever the filters);
    months and days from the calendar, clipped to those bounds. A link may lead to an
    empty page; no view costs a table scan.
    """
    levels = _Levels(cl, cl.date_hierarchy)
    year, month, day = levels.value("year"), levels.value("month"), levels.value("day")
    if year and month and day:
        return levels.chosen_day(year, month, day)
    field = levels.field
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
        return levels.days(year, month, first, last)
    if year:
        return levels.months(year, first, last)
    return levels.years(first, last)


@dataclass(frozen=True)
class _Levels:
    """The drill-down levels of one changelist's ``date_hierarchy`` (year, month, day).

    Each method returns the tag's context for one level; the links keep the changelist's
    other filters and replace the hierarchy's own parameters.
    """

    cl: Any
    field: str

    def name(self, part: str) -> str:
        return f"{self.field}__{part}"

    def value(self, part: str) -> int | None:
        """The chosen year, month or day; None when absent or not a number."""
        raw = self.cl.params.get(self.name(part))
        if isinstance(raw, list):
            raw = raw[-1] if raw else None
        try:
            return int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def link(self, filters: dict[str, Any]) -> str:
        return self.cl.get_query_string(filters, [f"{self.field}__"])

    def chosen_day(self, year: int, month: int, day: int) -> dict[str, Any]:
        try:
            chosen = dt.date(year, month, day)
        except ValueError:
            return {"show": False}
        return {
            "show": True,
            "back": {
                "link": self.link({self.name("year"): year, self.name("month"): month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }

    def days(self, year: int, month: int, first: dt.date, last: dt.date) -> dict[str, Any]:
        if not 1 <= month <= 12:
            return {"show": False}
        days = [
            dt.date(year, month, d)
            for d in range(1, calendar.monthrange(year, month)[1] + 1)
            if first <= dt.date(year, month, d) <= last
        ]
        year_month = {self.name("year"): year, self.name("month"): month}
        return {
            "show": True,
            "back": {"link": self.link({self.name("year"): year}), "title": str(year)},
            "choices": [
                {
                    "link": self.link({**year_month, self.name("day"): d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }

    def months(self, year: int, first: dt.date, last: dt.date) -> dict[str, Any]:
        months = [
            dt.date(year, m, 1)
            for m in range(1, 13)
            if (first.year, first.month) <= (year, m) <= (last.year, last.month)
        ]
        return {
            "show": True,
            "back": {"link": self.link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": self.link({self.name("year"): year, self.name("month"): m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }

    def years(self, first: dt.date, last: dt.date) -> dict[str, Any]:
        return {
            "show": True,
            "choices": [
                {"link": self.link({self.name("year"): str(y)}), "title": str(y)}
                for y in range(first.year, last.year + 1)
            ],
        }
