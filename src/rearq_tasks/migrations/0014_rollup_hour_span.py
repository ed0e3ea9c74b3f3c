# Rollups gain a third bucket span, the UTC hour, so that a period reads at most three
# 15-minute buckets and 23 hours before its whole days instead of up to 96 quarters: the
# rows a figure reads then depend on the period, not on the job rate (docs/performance.md).
#
# The triggers are replaced to write the hour too, and the hour rows of the past are added
# up from the 15-minute rows already kept (no TaskLog row is read: the work is bounded by
# the rollup tables, about one row per job-bin and quarter). Exactly once: no job may finish
# between the backfill's read and the new triggers, so writes to the job table wait for the
# few seconds this takes (PostgreSQL: SHARE lock on the table, in the migration's
# transaction; MariaDB: LOCK TABLES; SQLite: its database lock). Capture keeps its events in
# Redis meanwhile. Reversing restores the two-span triggers and deletes the hour rows.

from __future__ import annotations

from django.db import migrations

from rearq_tasks.rollup_sql import (
    BIN_TABLE,
    LOG_TABLE,
    STAT_TABLE,
    create_triggers_sql,
    drop_triggers_sql,
    postgres_functions_sql,
    regroup_sql,
)
from rearq_tasks.rollups import HOUR, QUARTER, SPANS, SPANS_0008


def _triggers(vendor: str, spans: tuple[int, ...]) -> list[str]:
    if vendor == "postgresql":  # only the function bodies change
        return [sql for _event, sql in postgres_functions_sql(True, spans)]
    return drop_triggers_sql(vendor) + create_triggers_sql(vendor, spans=spans)


def _run(schema_editor, statements: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {LOG_TABLE} IN SHARE MODE")
        elif vendor == "mysql":  # not transactional: hold the tables until the end
            cursor.execute(
                f"LOCK TABLES {LOG_TABLE} WRITE, {STAT_TABLE} WRITE, {STAT_TABLE} AS qs READ, "
                f"{BIN_TABLE} WRITE, {BIN_TABLE} AS qb READ"
            )
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            if vendor == "mysql":
                cursor.execute("UNLOCK TABLES")


def forwards(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    _run(schema_editor, _triggers(vendor, SPANS) + regroup_sql(vendor, QUARTER, HOUR))


def backwards(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    deletes = [f"DELETE FROM {table} WHERE span = {HOUR}" for table in (STAT_TABLE, BIN_TABLE)]
    _run(schema_editor, _triggers(vendor, SPANS_0008) + deletes)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0013_rollup_trigger_early_exit"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
