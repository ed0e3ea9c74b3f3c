"""Distinct values of an indexed TaskLog column without a table-wide ``SELECT DISTINCT``.

A recursive CTE walks the index from one value to the next (a "loose index scan"), so the
cost grows with the number of distinct values, not with the number of rows. The query is
portable (PostgreSQL, SQLite, MariaDB/MySQL 8): ``MIN(col) WHERE col > previous`` is one
index seek on each of them. The admin's list filters and the API's name search both use it.
"""

from __future__ import annotations

from django.db import connections

from rearq_tasks.models import TaskLog

_WALK_SQL = (
    "WITH RECURSIVE walk(v) AS ("
    " SELECT MIN({col}) FROM {table}"
    " UNION ALL"
    " SELECT (SELECT MIN(t.{col}) FROM {table} t WHERE t.{col} > walk.v)"
    " FROM walk WHERE walk.v IS NOT NULL"
    ") SELECT v FROM walk WHERE v IS NOT NULL"
)


def distinct_values(field: str, limit: int | None = None, using: str = "default") -> list[str]:
    """The distinct non-null values of ``field`` in order, the first ``limit`` if given."""
    connection = connections[using]
    sql = _WALK_SQL.format(
        col=connection.ops.quote_name(TaskLog._meta.get_field(field).column),
        table=connection.ops.quote_name(TaskLog._meta.db_table),
    )
    params: list[int] = []
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
