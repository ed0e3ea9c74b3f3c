"""PostgreSQL settings for one kind of read, set for its transaction only and put back.

Two reads need them (docs/performance.md): the rollup reads (:mod:`rearq_tasks.queries.rollup`),
whose defaults cost these short aggregate queries more than the queries themselves, and the
searches' counts and sorted pages (:mod:`rearq_tasks.queries.counting`), whose TID bitmaps
must stay exact. :func:`local_settings` is the one way both are set and put back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from django.db import connections, transaction

# Read the settings first (``OFFSET 0`` keeps the subquery from being inlined past the
# set_config calls), then raise work_mem (and turn JIT off), for this transaction only.
_RAISE_SQL = (
    "SELECT s.mem, s.jit, set_config('work_mem', GREATEST(s.kb, %s)::text || 'kB', true)"
    "{jit} FROM (SELECT current_setting('work_mem') AS mem, current_setting('jit') AS jit, "
    "setting::bigint AS kb FROM pg_settings WHERE name = 'work_mem' OFFSET 0) s"
)
_JIT_OFF = ", set_config('jit', 'off', true)"
READ_WORK_MEM_KB = 32 * 1024


@contextmanager
def local_settings(using: str, work_mem_kb: int, jit_off: bool = False) -> Iterator[None]:
    """Statements inside run with ``work_mem`` ≥ ``work_mem_kb`` (and without JIT if
    ``jit_off``) on PostgreSQL. Outside a transaction, in one of their own that the commit
    ends; inside a caller's, in a savepoint, set back at once (an error rolls the savepoint,
    and with it the settings, back). Elsewhere nothing changes."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(_RAISE_SQL.format(jit=_JIT_OFF if jit_off else ""), [work_mem_kb])
        mem, jit = cursor.fetchone()[:2]
        yield
        if not outermost:  # else the commit ends the settings
            cursor.execute(
                "SELECT set_config('work_mem', %s, true), set_config('jit', %s, true)",
                [mem, jit],
            )


def tuned_for_rollups(using: str) -> AbstractContextManager[None]:
    """Rollup reads on PostgreSQL run without JIT and with ``work_mem`` ≥ 32 MB.

    The planner compiles a query costed over ``jit_above_cost`` (bitmap scans of a few
    10,000 rollup rows are) to machine code first: 15–90 ms measured, two to five times the
    query itself. With the default 4 MB it sorts a timeline's ~30,000 hour rows (by status,
    in the database's collation: 30 ms) where a hash aggregate takes 12 ms in all.
    """
    return local_settings(using, READ_WORK_MEM_KB, jit_off=True)
