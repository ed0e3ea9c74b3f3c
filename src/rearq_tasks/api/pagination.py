"""Page-number pagination that does not count a million rows on every page.

The response keeps DRF's ``{count, next, previous, results}`` shape. ``count`` is exact
while the matching rows number at most ``COUNT_LIMIT`` (a ``COUNT`` over a ``LIMIT``-ed
subquery stops early); above that, on PostgreSQL, it is the planner's estimate for the
same query (``EXPLAIN``), never less than ``COUNT_LIMIT + 1``, and the response carries
``X-Count-Exact: false``. Elsewhere, and when ``COUNT_LIMIT`` is 0, it is always exact.
A filtered count runs with exact bitmaps on PostgreSQL (:mod:`rearq_tasks.queries.counting`),
and a count of at most 1,000 sends an argument search's page straight to the sort
(:func:`rearq_tasks.queries.window.sorted_if_few`).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from rearq_tasks.conf import conf
from rearq_tasks.queries.counting import capped_count
from rearq_tasks.queries.window import sorted_if_few


def estimated_count(queryset: Any) -> int | None:
    """PostgreSQL's row estimate for ``queryset`` (``None`` elsewhere or on failure)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class CappedCountPaginator(Paginator):
    """A Django paginator whose ``count`` is exact up to a limit, estimated above it."""

    def __init__(self, *args: Any, count_limit: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count_limit = count_limit
        self.count_is_exact = True

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not self.count_limit or not hasattr(queryset, "query"):
            exact = super().count
            self.object_list = sorted_if_few(queryset, exact)
            return exact
        capped = capped_count(queryset, self.count_limit)
        if capped <= self.count_limit:
            self.object_list = sorted_if_few(queryset, capped)
            return capped
        estimate = estimated_count(queryset)
        if estimate is None:
            return queryset.count()
        self.count_is_exact = False
        return max(estimate, self.count_limit + 1)


def _positive_int(param: str, raw: str, not_int: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({param: [not_int]}) from None
    if value < 1:
        raise ValidationError({param: ["Ensure this value is greater than or equal to 1."]})
    return value


class TaskLogPagination(PageNumberPagination):
    """``page`` and ``page_size`` (1..MAX_PAGE_SIZE; larger is clamped), bad values → 400."""

    page_size_query_param = "page_size"

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw in (None, ""):
            return conf.PAGE_SIZE
        return min(_positive_int("page_size", raw, "A valid integer is required."),
                   conf.MAX_PAGE_SIZE)  # fmt: skip

    def get_page_number(self, request: Request, paginator: Paginator) -> int | str:
        raw = request.query_params.get(self.page_query_param) or "1"
        if raw in self.last_page_strings:
            return paginator.num_pages
        return _positive_int("page", raw, 'A valid integer (or "last") is required.')

    def django_paginator_class(self, object_list: Any, per_page: int) -> CappedCountPaginator:  # type: ignore[override]
        return CappedCountPaginator(object_list, per_page, count_limit=conf.COUNT_LIMIT)

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)
        paginator = self.page.paginator
        response["X-Count-Exact"] = (
            "true" if getattr(paginator, "count_is_exact", True) else "false"
        )
        return response

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] in ("page", "page_size"):
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
