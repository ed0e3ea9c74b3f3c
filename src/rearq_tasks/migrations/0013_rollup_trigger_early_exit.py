# The PostgreSQL rollup trigger functions return before their upserts when a statement holds
# no terminal row (old or new): most capture statements (queued, started events) hold none.
# Only the function bodies change (CREATE OR REPLACE FUNCTION, instant, no table lock beyond
# the catalog); the triggers stay. Reversing restores the bodies 0008 installed. SQLite and
# MariaDB row triggers already test the row in their WHEN / IF: nothing to do there.

from __future__ import annotations

from django.db import migrations

from rearq_tasks.rollup_sql import postgres_functions_sql
from rearq_tasks.rollups import SPANS_0008


def _replace(schema_editor, early_exit: bool) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for _event, statement in postgres_functions_sql(early_exit, SPANS_0008):
            cursor.execute(statement)


def forwards(apps, schema_editor) -> None:
    _replace(schema_editor, early_exit=True)


def backwards(apps, schema_editor) -> None:
    _replace(schema_editor, early_exit=False)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0012_workers_page"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
