"""Find jobs by what they were called with: JSON containment on ``args`` and ``kwargs``.

``kwargs ⊇ {"order_id": 123}`` means what PostgreSQL's ``@>`` means, on every database:
objects match key by key (nested objects included), every element of a wanted array is
contained in some element of the stored array, a bare scalar is found inside a top-level
array, and scalars compare by type and value (the number ``123`` is not the string
``"123"``; ``true`` is not ``1``).

- PostgreSQL: ``col @> value::jsonb``, served by the ``jsonb_path_ops`` GIN indexes of
  migration 0009.
- MariaDB/MySQL: ``JSON_CONTAINS(col, value)`` (no index: a scan of the rows the other
  filters leave), plus a ``JSON_TYPE`` check where a scalar is wanted at an object path,
  because ``JSON_CONTAINS`` also finds a scalar inside an array there. One difference
  remains: an element of a wanted *array* is also found inside a nested array on MariaDB
  (``args=[1]`` matches ``[[1, 2]]``); docs/api.md says so.
- SQLite: a deterministic SQL function, :func:`json_contains`, registered on the
  connection; the same rule as PostgreSQL, in Python, over every candidate row.

Wanted values are checked first (:func:`parse_containment`): valid JSON of the expected
shape, no NUL (PostgreSQL's ``jsonb`` refuses it), finite 64-bit numbers, bounded size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db import connections
from django.db.models import F, JSONField, OrderBy, Q, QuerySet
from django.db.models.fields.json import DataContains
from django.db.models.functions import Coalesce

from rearq_tasks.models import TaskLog

MAX_JSON_LENGTH = 4096
MAX_DEPTH = 16
MAX_INTEGER = 2**63 - 1
SQLITE_FUNCTION = "rearq_json_contains"


class ArgumentError(ValueError):
    """A wanted value that cannot be searched for; the message says why."""


def _check(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ArgumentError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ArgumentError("may not contain NUL (\\u0000)")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_INTEGER:
            raise ArgumentError("numbers must fit in 64 bits")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ArgumentError("numbers must be finite")
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)


def _no_constant(name: str) -> Any:
    raise ArgumentError(f"{name} is not JSON")


def parse_containment(text: str, shape: type[dict] | type[list]) -> Any:
    """``text`` as JSON of ``shape`` (``dict`` for kwargs, ``list`` for args), checked."""
    if len(text) > MAX_JSON_LENGTH:
        raise ArgumentError(f"at most {MAX_JSON_LENGTH} characters")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ArgumentError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ArgumentError(f"not valid JSON ({exc})") from None
    if not isinstance(value, shape):
        raise ArgumentError("must be a JSON object" if shape is dict else "must be a JSON array")
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Raise :class:`ArgumentError` if ``value`` cannot be searched for on every database."""
    _check(value)


def _same_scalar(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(wanted, numbers):
        return stored == wanted
    return type(stored) is type(wanted) and stored == wanted


def contains(stored: Any, wanted: Any, top: bool = True) -> bool:
    """PostgreSQL's ``stored @> wanted`` for decoded JSON values."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            key in stored and contains(stored[key], item, top=False) for key, item in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(stored, list) and all(
            any(contains(have, item, top=False) for have in stored) for item in wanted
        )
    if isinstance(stored, list) and top:
        scalars = (have for have in stored if not isinstance(have, (dict, list)))
        return any(_same_scalar(have, wanted) for have in scalars)
    if isinstance(stored, (dict, list)):
        return False
    return _same_scalar(stored, wanted)


def json_contains(stored_text: str | None, wanted_text: str | None) -> int | None:
    """The SQLite function: 1 if the stored JSON text contains the wanted one."""
    if stored_text is None or wanted_text is None:
        return None
    try:
        return int(contains(json.loads(stored_text), json.loads(wanted_text)))
    except ValueError:
        return 0


class JSONContains(DataContains):
    """``contains`` on every database (Django's refuses SQLite)."""

    lookup_name = "rearq_contains"

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        connection.ensure_connection()
        connection.connection.create_function(SQLITE_FUNCTION, 2, json_contains, deterministic=True)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{SQLITE_FUNCTION}({lhs}, {rhs}) = 1", (*lhs_params, *rhs_params)

    def as_mysql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        """``JSON_CONTAINS`` also finds a scalar inside a nested array (PostgreSQL does not):
        a scalar wanted at an object path must not meet an array there."""
        sql, params = super().as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        for path in _scalar_paths(self.rhs):
            sql += f" AND COALESCE(JSON_TYPE(JSON_EXTRACT({lhs}, %s)), '') <> 'ARRAY'"
            params = (*params, *lhs_params, path)
        return sql, params


def _scalar_paths(wanted: Any, path: str = "$") -> Iterator[str]:
    """JSON paths (through object keys only) at which ``wanted`` holds a scalar."""
    if not isinstance(wanted, dict):
        return
    for key, item in wanted.items():
        here = f"{path}.{json.dumps(key)}"
        if isinstance(item, dict):
            yield from _scalar_paths(item, here)
        elif not isinstance(item, list):
            yield here


for _name in ("args", "kwargs"):
    _field = TaskLog._meta.get_field(_name)
    assert isinstance(_field, JSONField)
    _field.register_lookup(JSONContains)


def _unindexed(item: Any) -> Any:
    if isinstance(item, str) and item != "?":
        name = item.lstrip("-")
        expression = Coalesce(F(name), F(name))
        return expression.desc() if item.startswith("-") else expression.asc()
    if isinstance(item, OrderBy) and isinstance(item.expression, F):
        name = item.expression.name
        return OrderBy(
            Coalesce(F(name), F(name)),
            descending=item.descending,
            nulls_first=item.nulls_first,
            nulls_last=item.nulls_last,
        )
    return item


def index_first(queryset: QuerySet[TaskLog]) -> QuerySet[TaskLog]:
    """The same rows in the same order, sorted from the argument matches on PostgreSQL.

    Ordered by a b-tree column under ``LIMIT 50``, the planner prefers walking that index
    (``enqueue_time``) and checking each row against ``@>``, betting that matches come soon
    (it estimates 0.1 % of the table per containment); for a rare value they never do, and
    the walk reads the whole table (seconds at a million rows). ``COALESCE(col, col)`` orders
    identically but no b-tree serves it, so the GIN index finds the matches and they are
    sorted: bounded by the number of matches, not the table.
    """
    if connections[queryset.db].vendor != "postgresql":
        return queryset
    query = queryset.query
    ordering = query.order_by or (TaskLog._meta.ordering if query.default_ordering else ())
    return queryset.order_by(*(_unindexed(item) for item in ordering))


def kwargs_q(wanted: dict[str, Any]) -> Q:
    """Jobs whose kwargs contain ``wanted`` (index-served on PostgreSQL)."""
    return Q(kwargs__rearq_contains=wanted)


def args_q(wanted: list[Any]) -> Q:
    """Jobs whose positional args contain every element of ``wanted``."""
    return Q(args__rearq_contains=wanted)
