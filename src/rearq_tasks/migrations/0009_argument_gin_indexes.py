"""PostgreSQL-only GIN indexes on ``args`` and ``kwargs`` (``jsonb_path_ops``); a no-op on
SQLite and MariaDB.

They serve the containment filters (``?kwargs={"order_id": 123}``, ``kwargs.order_id:123``
in a search), which compile to ``col @> value``: the only operator ``jsonb_path_ops``
indexes, and the one it indexes smallest and fastest. Built ``CONCURRENTLY`` (the migration
is not atomic) so a big table keeps taking writes; not model state (Django's ``GinIndex``
lives in ``django.contrib.postgres``), so ``makemigrations`` stays clean.
"""

from __future__ import annotations

from django.db import migrations

from rearq_tasks.migrations import _concurrently as concurrently

INDEXES = {
    "tasklog_kwargs_gin_idx": "kwargs",
    "tasklog_args_gin_idx": "args",
}


def create_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("tasks", "TaskLog")
    table = model._meta.db_table
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        concurrently.drop_invalid_indexes(cursor, table, INDEXES)
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        existing = {name for (name,) in cursor.fetchall()}
        for name, column in INDEXES.items():
            if name in existing:
                continue
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY {quote(name)} ON {quote(table)}"
                f" USING gin ({quote(column)} jsonb_path_ops)"
            )


def drop_indexes(apps, schema_editor) -> None:
    concurrently.drop_indexes(schema_editor, INDEXES)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("tasks", "0008_stat_rollups")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
