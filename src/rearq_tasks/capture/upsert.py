"""One guarded upsert of TaskLog rows, keyed by the unique job_id (PostgreSQL, SQLite, MySQL).

Events arrive late, twice, and from several collectors at once, so the decision whether a
row may move is taken *inside* the statement, against the row as it is in the database:

* a terminal row only accepts the same terminal status again;
* a terminal event always wins over a non-terminal row;
* non-terminal events are ordered by (job_retries, waiting < in_progress), so a late
  "queued" never hides a running job and a retry's "deferred" follows its attempt;
* an accepted event about a later attempt replaces the attempt's columns (start, finish,
  duration, worker) even where it has no value: a row never shows an earlier attempt's
  start as the current one's (:func:`rearq_tasks.lifecycle.starts_new_attempt`).

The rule is :func:`rearq_tasks.lifecycle.may_replace`, in SQL
:func:`rearq_tasks.lifecycle.guard_sql`.

Other fields an event does not know (NULL) keep their stored value; ``user_id`` and ``retry_of``
are filled once and never replaced. No read-modify-write, so concurrent writers cannot lose
an update.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from rearq_tasks.capture.events import FIELDS, FILL_ONCE, TIME_FIELDS, from_ms
from rearq_tasks.lifecycle import ATTEMPT_FIELDS, guard_sql, new_attempt_sql
from rearq_tasks.models import TaskLog
from rearq_tasks.payloads import dumps, payload_rules, prepare_record

TABLE = TaskLog._meta.db_table
COLUMNS: tuple[str, ...] = (*FIELDS, "created_at", "updated_at")
# Columns the guard decides; job_id is the key, the FILL_ONCE columns and created_at have
# their own rules.
GUARDED = tuple(c for c in COLUMNS if c not in {"job_id", "created_at", *FILL_ONCE})
NOT_NULL_DEFAULTS: dict[str, Any] = {
    "task_name": "",
    "queue_name": "",
    "args": [],
    "kwargs": {},
    "job_retry": 0,
    "job_retries": 0,
    "job_retry_after": 0,
}


def _queue_value(old: str, new: str) -> str:
    # An empty queue name means "not known here" (the task is not registered in that process).
    return f"CASE WHEN {new}queue_name = '' THEN {old}queue_name ELSE {new}queue_name END"


def build_sql(vendor: str, rows: int) -> str:
    cols = ", ".join(COLUMNS)
    json_cast = "::jsonb" if vendor == "postgresql" else ""
    one = ", ".join(f"%s{json_cast}" if c in ("args", "kwargs") else "%s" for c in COLUMNS)
    values = ", ".join(f"({one})" for _ in range(rows))
    head = f"INSERT INTO {TABLE} ({cols}) VALUES {values}"
    if vendor == "mysql":
        # MySQL applies assignments left to right and later ones see earlier results, so the
        # guard is decided once, by the first assignment (updated_at), and read back after;
        # the attempt's columns come before status and job_retries change.
        guard = guard_sql(lambda c: c, lambda c: f"VALUES({c})")
        marker = "updated_at <=> VALUES(updated_at)"
        fresh = new_attempt_sql(lambda c: c, lambda c: f"VALUES({c})")
        sets = [f"updated_at = IF({guard}, VALUES(updated_at), updated_at)"]
        for c in sorted(GUARDED, key=lambda c: c not in ATTEMPT_FIELDS):
            if c == "updated_at":
                continue
            if c == "queue_name":
                value = "IF(VALUES(queue_name) = '', queue_name, VALUES(queue_name))"
            elif c in ATTEMPT_FIELDS:
                value = f"IF({fresh}, VALUES({c}), COALESCE(VALUES({c}), {c}))"
            else:
                value = f"COALESCE(VALUES({c}), {c})"
            sets.append(f"{c} = IF({marker}, {value}, {c})")
        sets += [f"{c} = COALESCE({c}, VALUES({c}))" for c in FILL_ONCE]
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    old, new = f"{TABLE}.", "excluded."
    guard = guard_sql(lambda c: old + c, lambda c: new + c)
    fresh = new_attempt_sql(lambda c: old + c, lambda c: new + c)
    sets = []
    for c in GUARDED:
        value = _queue_value(old, new) if c == "queue_name" else f"COALESCE({new}{c}, {old}{c})"
        if c in ATTEMPT_FIELDS:  # a later attempt's event: never an earlier attempt's values
            value = f"CASE WHEN {fresh} THEN {new}{c} ELSE {value} END"
        sets.append(f"{c} = CASE WHEN {guard} THEN {value} ELSE {old}{c} END")
    sets += [f"{c} = COALESCE({old}{c}, {new}{c})" for c in FILL_ONCE]
    return f"{head} ON CONFLICT (job_id) DO UPDATE SET {', '.join(sets)}"


def _encoded(column: str, value: Any) -> Any:
    """A payload column as both write paths send it: JSON text for args/kwargs, text else."""
    if value is None:
        return None
    if column in ("args", "kwargs"):
        return dumps(value)
    if column in ("result", "error_message"):
        return str(value)
    return value


def _params(record: dict[str, Any], now: Any, ops: Any) -> list[Any]:
    out: list[Any] = []
    for c in COLUMNS:
        if c in ("created_at", "updated_at"):
            out.append(ops.adapt_datetimefield_value(now))
            continue
        value = record.get(c)
        if value is None and c in NOT_NULL_DEFAULTS:
            value = NOT_NULL_DEFAULTS[c]
        if c == "enqueue_time" and value is None:
            value = record.get("start_time") or record.get("finish_time")
        if c in TIME_FIELDS:
            value = ops.adapt_datetimefield_value(from_ms(value)) if value is not None else None
        else:
            value = _encoded(c, value)
        out.append(value)
    return out


# --- PostgreSQL: COPY the batch into a session temp table, then one guarded upsert -----------
# Binding thousands of parameters costs the collector more Python time and PostgreSQL more
# parse time than streaming the rows; the guard is the same statement text as the VALUES path.
STAGE = "rearq_tasks_upsert_stage"
COPY_MIN_ROWS = 8
_STAGE_TYPES = {
    "job_id": "text",
    "task_name": "text",
    "queue_name": "text",
    "args": "jsonb",
    "kwargs": "jsonb",
    "status": "text",
    "job_retry": "integer",
    "job_retries": "integer",
    "job_retry_after": "integer",
    "enqueue_time": "double precision",  # epoch ms, as events carry them
    "expire_time": "double precision",
    "start_time": "double precision",
    "finish_time": "double precision",
    "duration_ms": "integer",
    "success": "boolean",
    "result": "text",
    "error_message": "text",
    "worker_id": "text",
    "user_id": "integer",
    "retry_of": "text",
}
CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ("
    + ", ".join(f"{c} {t}" for c, t in _STAGE_TYPES.items())
    + ") ON COMMIT DELETE ROWS"
)
CLEAR_STAGE = f"DELETE FROM {STAGE}"
COPY_STAGE = f"COPY {STAGE} ({', '.join(FIELDS)}) FROM STDIN"


def _stage_value(column: str) -> str:
    if column in ("created_at", "updated_at"):
        return "%(now)s"
    if column == "enqueue_time":
        return "to_timestamp(COALESCE(s.enqueue_time, s.start_time, s.finish_time) / 1000)"
    if column in TIME_FIELDS:
        return f"to_timestamp(s.{column} / 1000)"
    if column in NOT_NULL_DEFAULTS:
        default = NOT_NULL_DEFAULTS[column]
        literal = (
            f"'{json.dumps(default)}'::jsonb" if column in ("args", "kwargs") else repr(default)
        )
        return f"COALESCE(s.{column}, {literal})"
    return f"s.{column}"


def build_copy_upsert_sql() -> str:
    """INSERT … SELECT from the stage, guarded exactly as :func:`build_sql` for PostgreSQL."""
    values_sql = build_sql("postgresql", 1)
    conflict = values_sql[values_sql.index(" ON CONFLICT ") :]
    select = ", ".join(_stage_value(c) for c in COLUMNS)
    # Rows in code point order of the key, as the VALUES path sorts them: concurrent batches
    # lock the job_ids they share in the same order, so they cannot deadlock.
    return (
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {select} FROM {STAGE} s "
        f'ORDER BY s.job_id COLLATE "C"{conflict}'
    )


_COPY_UPSERT = build_copy_upsert_sql()


def _copy_row(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_encoded(c, record.get(c)) for c in FIELDS)


def _copy_upsert(cursor: Any, records: Sequence[dict[str, Any]], now: Any) -> None:
    cursor.execute(CREATE_STAGE)
    # Empty already unless an enclosing transaction (no commit yet) used it before.
    cursor.execute(CLEAR_STAGE)
    with cursor.cursor.copy(COPY_STAGE) as copy:
        for record in records:
            copy.write_row(_copy_row(record))
    cursor.execute(_COPY_UPSERT, {"now": now})


def _job_id(record: dict[str, Any]) -> str:
    return str(record.get("job_id"))


def upsert_records(records: Sequence[dict[str, Any]], using: str = "default") -> int:
    """Write coalesced records (one per job_id) in as few statements as the driver allows.

    Payloads are redacted, bounded and made JSON-safe here, so the capture path and the
    reconcile path store the same thing. On PostgreSQL a batch is COPYed into a temporary
    table and upserted with one ``INSERT … SELECT``; elsewhere it is bound as VALUES.
    """
    if not records:
        return 0
    rules = payload_rules()
    records = sorted((prepare_record(record, rules) for record in records), key=_job_id)
    connection = connections[using]
    vendor = connection.vendor
    now = timezone.now()
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if vendor == "postgresql" and len(records) >= COPY_MIN_ROWS:
            _copy_upsert(cursor, records, now)
            return len(records)
        ops = connection.ops
        chunk = max(1, 20_000 // len(COLUMNS))
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            params: list[Any] = []
            for record in part:
                params.extend(_params(record, now, ops))
            cursor.execute(build_sql(vendor, len(part)), params)
    return len(records)
