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

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from rearq_tasks.queries.read_settings import local_settings

COUNT_WORK_MEM_KB = 32 * 1024  # exact bitmaps for ≈ 500,000 heap pages (4 GB of table)


def exact_bitmaps(using: str) -> AbstractContextManager[None]:
    """Statements inside run with ``work_mem`` ≥ :data:`COUNT_WORK_MEM_KB` on PostgreSQL."""
    if not COUNT_WORK_MEM_KB:
        return nullcontext()
    return local_settings(using, COUNT_WORK_MEM_KB)


def capped_count(queryset: Any, cap: int) -> int:
    """The number of rows of ``queryset``, counting at most ``cap + 1`` (no filter, no
    bitmap: the plain list's count keeps its single statement)."""
    capped = queryset.order_by()[: cap + 1]
    if not queryset.query.where:
        return capped.count()
    with exact_bitmaps(queryset.db):
        return capped.count()
