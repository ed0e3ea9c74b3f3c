"""A page of an argument search from the newest rows first: a bounded walk, then the sort.

:func:`~rearq_tasks.queries.arguments.index_first` makes PostgreSQL find the argument
matches through the GIN index and sort them all: bounded by the matches, which is what a
rare value needs, but a value held by 1 % of 10M rows is a 100,000-row fetch and sort for a
page of 50. :func:`window_first` first reads the newest :data:`WINDOW_ROWS` rows that pass
the other filters (the b-tree order, an inner ``LIMIT``: no filter, a walk of exactly that
many rows; column filters, the plan of any list page that long, e.g. the failed rows' partial
index for ``status:failed``) and applies every condition to that window. A window holding
``offset + limit`` matches holds the newest ones, since any newer match would be in it:
that page is returned as it is.
Otherwise the page is read the GIN way, exactly as before. The rows and their order are the
same either way (ties in ``enqueue_time`` have no defined order on either path).

PostgreSQL only, for the default order (newest enqueued first; the admin's adds ``-pk``,
which the window then follows too) and pages within
:data:`MAX_WINDOW_PAGE_END`; counts, exports and every other database are unaffected. When
a count has already found at most :data:`FEW_MATCHES` matches (:func:`sorted_if_few`), the
sort is cheap and a window would only be a miss: a rare value goes straight to the sort.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.query import Query

from rearq_tasks.models import TaskLog, TaskLogQuerySet
from rearq_tasks.queries.arguments import index_first
from rearq_tasks.queries.counting import exact_bitmaps

WINDOW_ROWS = 20_000
MAX_WINDOW_PAGE_END = WINDOW_ROWS // 20  # deeper pages would rarely fit: go straight to the sort
FEW_MATCHES = 1_000  # an exact count this low: sorting the matches costs less than a window
NEWEST_FIRST = (("-enqueue_time",), ("-enqueue_time", "-pk"), ("-enqueue_time", "-id"))


class WindowTable(BaseTable):
    """The task table in ``FROM``, replaced by its newest rows (a subquery, same alias), so
    every column, join and condition of the outer query reads as before."""

    def __init__(self, table_name: str, alias: str, inner: Query) -> None:
        super().__init__(table_name, alias)
        self.inner = inner

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        sql, params = self.inner.get_compiler(connection=connection).as_sql()
        return f"({sql}) {compiler.quote_name_unless_alias(self.table_alias)}", list(params)

    def relabeled_clone(self, change_map: dict[str, str]) -> WindowTable:
        return self.__class__(
            self.table_name, change_map.get(self.table_alias, self.table_alias), self.inner
        )

    @property
    def identity(self) -> tuple[Any, ...]:
        return (*super().identity, id(self.inner))


class WindowFirstQuerySet(TaskLogQuerySet):
    """A queryset whose sliced evaluation tries the window first (see the module)."""

    _window: tuple[QuerySet[TaskLog], tuple[str, ...]] | None = None  # (rows, their order)

    def _clone(self) -> WindowFirstQuerySet:
        clone = super()._clone()
        clone._window = self._window
        return clone

    def _fetch_all(self) -> None:
        if self._result_cache is None and self._window is not None:
            self._result_cache = self._from_window()
        if self._result_cache is None:  # the sort reads the matches through bitmaps
            with exact_bitmaps(self.db):
                super()._fetch_all()
        else:
            super()._fetch_all()

    def _from_window(self) -> list[Any] | None:
        """The page if the window holds it, else ``None`` (the caller sorts the matches)."""
        low, high = self.query.low_mark, self.query.high_mark
        if high is None or high > MAX_WINDOW_PAGE_END or high <= low:
            return None
        assert self._window is not None
        rows_before, order = self._window
        inner = rows_before.order_by(*order)
        inner.query.clear_deferred_loading()
        inner.query.select_related = False
        inner = inner[:WINDOW_ROWS]
        outer = self._chain()
        outer._window = None
        outer.query.clear_ordering(force=True)
        outer.query.add_ordering(*order)
        alias = outer.query.get_initial_alias()
        table = outer.query.alias_map[alias].table_name
        outer.query.alias_map[alias] = WindowTable(table, alias, inner.query)
        page = list(outer)
        return page if len(page) == high - low else None


def _newest_first(queryset: QuerySet[TaskLog]) -> tuple[str, ...] | None:
    """The queryset's order if it is newest enqueued first (the list's default), else None."""
    query = queryset.query
    order = tuple(query.order_by) if query.order_by else ()
    if not order and query.default_ordering:
        order = tuple(TaskLog._meta.ordering)
    order = tuple(dict.fromkeys(order))  # a repeated key orders nothing more
    return order if order in NEWEST_FIRST else None


def window_first(queryset: QuerySet[TaskLog], deferred: Q) -> QuerySet[TaskLog]:
    """``queryset`` filtered by ``deferred`` (the argument and text conditions), in the same
    order as ``queryset``; its pages on PostgreSQL read the newest rows of ``queryset``
    first, the GIN-sorted matches (:func:`index_first`) when those do not hold the page."""
    matched = index_first(queryset.filter(deferred))
    order = _newest_first(queryset)
    if connections[queryset.db].vendor != "postgresql" or order is None:
        return matched
    windowed = matched._chain()
    windowed.__class__ = WindowFirstQuerySet
    windowed._window = (queryset, order)  # type: ignore[attr-defined]
    return windowed


def sorted_if_few(queryset: Any, count: int) -> Any:
    """``queryset`` without its window when an exact ``count`` says the matches are few."""
    if isinstance(queryset, WindowFirstQuerySet) and count <= FEW_MATCHES:
        plain = queryset._chain()
        plain._window = None
        return plain
    return queryset
