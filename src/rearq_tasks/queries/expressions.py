"""Database expressions the aggregates and filters share, portable across backends."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import (
    Aggregate,
    DateTimeField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Value,
)
from django.db.models.functions import Floor

if TYPE_CHECKING:
    from django.db.models import QuerySet


class MillisecondsBetween(Func):
    """``end - start`` in milliseconds as a float, on every supported database."""

    output_field = FloatField()
    # (template, whether the end expression comes first in it)
    templates: dict[str, tuple[str, bool]] = {
        "postgresql": ("(date_part('epoch', {} - {}) * 1000)", True),
        "sqlite": ("((julianday({}) - julianday({})) * 86400000.0)", True),
        "mysql": ("(TIMESTAMPDIFF(MICROSECOND, {}, {}) / 1000.0)", False),
    }

    def __init__(self, start: Any, end: Any, **extra: Any) -> None:
        super().__init__(start, end, **extra)

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        template, end_first = self.templates.get(connection.vendor, ("(({}) - ({}))", True))
        start = compiler.compile(self.source_expressions[0])
        end = compiler.compile(self.source_expressions[1])
        first, second = (end, start) if end_first else (start, end)
        return template.format(first[0], second[0]), (*first[1], *second[1])


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY expr)`` (one sort pass)."""

    function = "percentile_cont"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be within [0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def queue_wait_ms() -> MillisecondsBetween:
    """Start − enqueue of a row in milliseconds (NULL until it starts)."""
    return MillisecondsBetween(F("enqueue_time"), F("start_time"))


def hours_since(origin: dt.datetime, field: str, on_postgres: bool) -> Any:
    """``field``'s hour on the grid that starts at ``origin``: a datetime on PostgreSQL
    (``date_bin``), a whole number of hours elsewhere (epoch arithmetic)."""
    if on_postgres:
        # date_bin (PostgreSQL 14+, Django's minimum) is a C function: ~1/3 faster per row
        # than the epoch arithmetic.
        return Func(
            Value(dt.timedelta(hours=1)),
            F(field),
            Value(origin),
            function="date_bin",
            output_field=DateTimeField(),
        )
    return Floor(
        ExpressionWrapper(
            MillisecondsBetween(Value(origin), F(field)) / Value(3_600_000.0),
            output_field=FloatField(),
        ),
        output_field=IntegerField(),
    )


def vendor(qs: QuerySet[Any]) -> str:
    """The database vendor a queryset runs on (``postgresql``, ``sqlite``, ``mysql``)."""
    return connections[qs.db].vendor


def parse_order(order_by: str, allowed: tuple[str, ...]) -> tuple[str, bool]:
    """``"-failures"`` → ``("failures", True)``; ValueError naming ``allowed`` for any other
    field (the API's parameter validation reports it as HTTP 400)."""
    field = order_by.lstrip("-")
    if field not in allowed:
        raise ValueError(f"order_by must be one of {', '.join(allowed)}")
    return field, order_by.startswith("-")
