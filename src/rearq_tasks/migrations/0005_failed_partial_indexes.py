"""PostgreSQL-only partial indexes over the failed rows; a no-op on SQLite and MariaDB.

Failed jobs are a few per cent of the table but the rows people open most: the changelist's
"failed" filter, ``is_failed`` in the API, the failure alerts. Without these indexes the
capped page count of ``?is_failed=true&task_name=…`` walks the table (≈ 35 ms at 1M rows).

- ``tasklog_failed_task_idx``: ``(task_name, enqueue_time DESC)`` for failures of a task,
  newest first;
- ``tasklog_failed_enq_idx``: ``(enqueue_time DESC)`` for failures in a period.

The predicate is ``models.FAILED``, the one definition of "failed", frozen here as
migrations must be (a test asserts the two are equal): the planner uses a partial index
only for queries whose condition implies its predicate. Built ``CONCURRENTLY``
(the migration is not atomic); not model state, so ``makemigrations`` stays clean.
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import Q

from rearq_tasks.migrations import _concurrently as concurrently

FAILED = Q(status__in=["expired", "failed"]) | Q(success=False)

INDEXES = {
    "tasklog_failed_task_idx": ["task_name", "-enqueue_time"],
    "tasklog_failed_enq_idx": ["-enqueue_time"],
}


def create_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("tasks", "TaskLog")
    with schema_editor.connection.cursor() as cursor:
        concurrently.drop_invalid_indexes(cursor, model._meta.db_table, INDEXES)
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s", [model._meta.db_table]
        )
        existing = {name for (name,) in cursor.fetchall()}
        for name, fields in INDEXES.items():
            if name in existing:
                continue
            index = models.Index(fields=fields, name=name, condition=FAILED)
            cursor.execute(str(index.create_sql(model, schema_editor, concurrently=True)))


def drop_indexes(apps, schema_editor) -> None:
    concurrently.drop_indexes(schema_editor, INDEXES)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("tasks", "0004_custom_action_permissions")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
