"""Exact TID bitmaps for the searches' counts and sorted pages on PostgreSQL.

``COUNT(*)`` over a ``LIMIT``-ed subquery stops after ``cap + 1`` matches, but a search
through a GIN or trigram index and a status or queue b-tree (``kwargs.customer.plan:…
status:failed``, ``error:… queue:critical``) is a ``BitmapAnd``, and a TID bitmap larger
than ``work_mem`` turns *lossy*: it keeps whole pages instead of rows, so every row of
every such page is fetched and rechecked. With the default 4 MB that happens past about
65,000 heap pages, i.e. for a status or a queue held by a few per cent of 10M rows, and a
"capped" count then rechecks rows in proportion to the table, not to the cap. These
statements run with :data:`COUNT_WORK_MEM_KB` (this transaction only, set back at once) so
their bitmaps stay exact; the plans are the same (compared with ``EXPLAIN`` at 10M rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

COUNT_WORK_MEM_KB = 32 * 1024  # exact bitmaps for ≈ 500,000 heap pages (4 GB of table)


# One round trip: the setting as it was, and work_mem raised to at least the wanted size.
RAISE_SQL = (
    "SELECT s.old, set_config('work_mem', GREATEST(s.kb, %s)::text || 'kB', true) FROM "
    "(SELECT current_setting('work_mem') AS old, setting::bigint AS kb FROM pg_settings "
    "WHERE name = 'work_mem' OFFSET 0) s"
)


@contextmanager
def exact_bitmaps(using: str) -> Iterator[None]:
    """Statements inside run with ``work_mem`` ≥ :data:`COUNT_WORK_MEM_KB` on PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql" or not COUNT_WORK_MEM_KB:
        yield
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(RAISE_SQL, [COUNT_WORK_MEM_KB])
        (previous, _) = cursor.fetchone()
        yield  # an error rolls the savepoint, and with it the setting, back
        if not outermost:  # else the commit ends the setting
            cursor.execute("SELECT set_config('work_mem', %s, true)", [previous])


def capped_count(queryset: Any, cap: int) -> int:
    """The number of rows of ``queryset``, counting at most ``cap + 1`` (no filter, no
    bitmap: the plain list's count keeps its single statement)."""
    capped = queryset.order_by()[: cap + 1]
    if not queryset.query.where:
        return capped.count()
    with exact_bitmaps(queryset.db):
        return capped.count()
