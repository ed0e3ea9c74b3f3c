"""PostgreSQL settings for the rollup reads (:mod:`rearq_tasks.queries.rollup`), set for
one transaction and put back: the defaults cost these short aggregate queries more than
the queries themselves (docs/performance.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from django.db import connections, transaction

# Read the settings first (``OFFSET 0`` keeps the subquery from being inlined past the
# set_config calls), then turn JIT off and raise work_mem, for this transaction only.
_TUNE_SQL = (
    "SELECT s.jit, s.mem, set_config('jit', 'off', true), "
    "set_config('work_mem', GREATEST(s.kb, %s)::text || 'kB', true) FROM "
    "(SELECT current_setting('jit') AS jit, current_setting('work_mem') AS mem, "
    "setting::bigint AS kb FROM pg_settings WHERE name = 'work_mem' OFFSET 0) s"
)
READ_WORK_MEM_KB = 32 * 1024


@contextmanager
def tuned_for_rollups(using: str) -> Iterator[None]:
    """Rollup reads on PostgreSQL run without JIT and with ``work_mem`` ≥ 32 MB.

    The planner compiles a query costed over ``jit_above_cost`` (bitmap scans of a few
    10,000 rollup rows are) to machine code first: 15–90 ms measured, two to five times the
    query itself. With the default 4 MB it sorts a timeline's ~30,000 hour rows (by status,
    in the database's collation: 30 ms) where a hash aggregate takes 12 ms in all. Set for
    this transaction only, and put back at once inside a caller's transaction: one
    statement in autocommit, two inside a transaction.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using) if outermost else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_TUNE_SQL, [READ_WORK_MEM_KB])
            jit, mem = cursor.fetchone()[:2]
        try:
            yield
        finally:
            if not outermost:  # else the commit ends the settings
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('jit', %s, true), set_config('work_mem', %s, true)",
                        [jit, mem],
                    )
