"""PostgreSQL-only indexes for the API at a million rows; a no-op on SQLite and MariaDB.

- ``tasklog_enq_cover_idx``: ``enqueue_time`` INCLUDE the columns the stats, timeline and
  overview aggregate, so a period is read from the index alone (index-only scan).
- ``tasklog_worker_idx``: ``worker_id``, for the worker filters and the loose index scan
  that lists distinct workers for ``search`` (see :mod:`rearq_tasks.search`).
- ``tasklog_error_message_trgm_idx``: a pg_trgm GIN index on ``UPPER(error_message::text)``,
  the exact expression Django's ``icontains`` produces, so ``search`` stops walking the
  table for error text. It needs the pg_trgm extension: it is created when the database
  user may do so; otherwise the index is skipped with a warning and search still works,
  only slower (ask a superuser for ``CREATE EXTENSION pg_trgm``, then
  ``migrate tasks 0001`` and ``migrate`` again). Task, queue and worker names get no
  trigram index: they have few distinct values, and a trigram estimate there misled the
  planner into slower plans.

Indexes are built ``CONCURRENTLY`` (the migration is not atomic) so a big, busy table keeps
taking writes. They are not model state: ``makemigrations`` stays clean on every database.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, migrations, transaction

from rearq_tasks.migrations import _concurrently as concurrently

logger = logging.getLogger("rearq_tasks")

TABLE = "django_cfg_task_log"
COVER = (
    "tasklog_enq_cover_idx",
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS tasklog_enq_cover_idx ON {TABLE} "
    "(enqueue_time) INCLUDE (status, success, duration_ms, start_time, job_retries, queue_name)",
)
TRIGRAM_COLUMNS = ("error_message",)
WORKER = (
    "tasklog_worker_idx",
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS tasklog_worker_idx ON {TABLE} (worker_id)",
)


def trigram_index(column: str) -> tuple[str, str]:
    name = f"tasklog_{column}_trgm_idx"
    return name, (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {TABLE} "
        f"USING gin (UPPER({column}::text) gin_trgm_ops)"
    )


def has_trigram_extension(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    if cursor.fetchone():
        return True
    try:
        with transaction.atomic(using=cursor.db.alias):  # a savepoint when in a transaction
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        logger.warning(
            "pg_trgm is not available (%s): the TaskLog search indexes are skipped; "
            "search works but scans the table. See docs/performance.md.",
            str(exc).strip().splitlines()[0],
        )
        return False
    return True


def create_indexes(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        concurrently.drop_invalid_indexes(cursor, TABLE, index_names())
        cursor.execute(COVER[1])
        cursor.execute(WORKER[1])
        if has_trigram_extension(cursor):
            for column in TRIGRAM_COLUMNS:
                cursor.execute(trigram_index(column)[1])


def index_names() -> list[str]:
    return [COVER[0], WORKER[0], *(trigram_index(column)[0] for column in TRIGRAM_COLUMNS)]


def drop_indexes(apps, schema_editor) -> None:
    concurrently.drop_indexes(schema_editor, index_names())


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("tasks", "0001_initial")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
