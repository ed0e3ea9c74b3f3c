"""What the ``CONCURRENTLY`` index migrations (0002, 0005, 0009) share.

A ``CREATE INDEX CONCURRENTLY`` that is interrupted (a deploy timeout, a lost connection, a
deadlock, a duplicate in a unique build) leaves an *invalid* index behind: PostgreSQL keeps
maintaining it on every write but never uses it for a query. Django does not record the
non-atomic migration as applied, so ``migrate`` runs it again; ``IF NOT EXISTS`` (or a look
at ``pg_indexes``) would then find the name and skip it, and the table would stay without
its index for ever. Each of those migrations first drops its own invalid indexes.

The module's name starts with ``_``: Django's migration loader does not take it for one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def drop_invalid_indexes(cursor: Any, table: str, names: Iterable[str]) -> list[str]:
    """Drop those of ``names`` on ``table`` that an interrupted build left invalid; which."""
    cursor.execute(
        "SELECT c.relname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relname = %s AND pg_table_is_visible(t.oid) AND NOT i.indisvalid"
        " AND c.relname = ANY(%s)",
        [table, list(names)],
    )
    invalid = [name for (name,) in cursor.fetchall()]
    for name in invalid:
        cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    return invalid


def drop_indexes(schema_editor: Any, names: Iterable[str]) -> None:
    """The reverse of those migrations: drop ``names`` (PostgreSQL only) without blocking writes."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
