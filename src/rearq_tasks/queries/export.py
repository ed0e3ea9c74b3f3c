"""Export of a filtered TaskLog list as CSV or JSON Lines, one chunk at a time.

The API's ``/logs/export/`` and the admin's Export button both stream :func:`stream` through
a ``StreamingHttpResponse``: rows are read with a server-side cursor on PostgreSQL, chunked
fetches on SQLite and an unbuffered ``SSCursor`` on MariaDB/MySQL, and encoded in batches,
so memory does not grow with the number of rows. The payload columns are what the capture
stored, already redacted (:mod:`rearq_tasks.payloads`); nothing is re-read from Redis.

A spreadsheet runs a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula ("CSV injection"); such cells get a leading ``'``
(:func:`neutralise`), as OWASP recommends. JSON Lines keeps values as they are.

Each export leaves one audit entry (:func:`audited_stream`): written before the first byte,
so a download cut short is on record too, with the rows sent as ``done``; ``matched`` is
filled once the last row went out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.sql.constants import MULTI

from rearq_tasks import audit
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import Action, AuditEntry
from rearq_tasks.payloads import json_default

COLUMNS: tuple[str, ...] = (
    "id", "job_id", "task_name", "queue_name", "status", "success", "args", "kwargs",
    "result", "error_message", "worker_id", "user_id", "job_retries", "duration_ms",
    "enqueue_time", "start_time", "finish_time",
)  # fmt: skip
FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl"),
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet would evaluate, made inert with a leading apostrophe."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


JSON_COLUMNS = ("args", "kwargs")
NUMBER_COLUMNS = ("id", "user_id", "job_retries", "duration_ms")
TIME_COLUMNS = ("enqueue_time", "start_time", "finish_time")
TEXT_AT = tuple(
    i for i, name in enumerate(COLUMNS) if name not in (*NUMBER_COLUMNS, *TIME_COLUMNS, "success")
)
TIME_AT = tuple(COLUMNS.index(name) for name in TIME_COLUMNS)
SUCCESS_AT = COLUMNS.index("success")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)
# One encoder for the whole export: ``json.dumps`` builds one per call (≈ 1 µs a row).
_encode = json.JSONEncoder(ensure_ascii=False, default=json_default).encode


def _csv_cells(row: tuple[Any, ...] | list[Any]) -> list[Any]:
    """One row's CSV cells: text neutralised, times in ISO 8601, ``success`` as true/false.
    In one pass over the row, no call per cell: this runs a million times per export.
    ``None`` and numbers stay as they are (``csv.writer`` writes "" and ``str()``; a
    negative number is a number, not a formula)."""
    cells = list(row)
    for i in TEXT_AT:
        cell = cells[i]
        if cell and cell[0] in _FORMULA_FIRST:  # the cheap test first, then the rule
            cells[i] = neutralise(cell)
    for i in TIME_AT:
        if (when := cells[i]) is not None:
            cells[i] = when.isoformat()
    if (success := cells[SUCCESS_AT]) is not None:
        cells[SUCCESS_AT] = "true" if success else "false"
    return cells


def _chunks(queryset: QuerySet[TaskLog]) -> Iterator[list[Any]]:
    """Rows in ``COLUMNS`` order, ``CHUNK_ROWS`` at a time; the JSON columns as the
    database's JSON text (no decoding and re-encoding per row)."""
    texts = {f"{name}_text": Cast(name, TextField()) for name in JSON_COLUMNS}
    names = [f"{name}_text" if name in JSON_COLUMNS else name for name in COLUMNS]
    rows = queryset.annotate(**texts).values_list(*names)
    vendor = connections[rows.db].vendor
    if vendor == "postgresql":
        return _postgresql_chunks(rows)
    return _converted(rows, unbuffered=vendor == "mysql")


def _converted(rows: QuerySet[TaskLog], *, unbuffered: bool) -> Iterator[list[Any]]:
    """Chunks through Django's compiler with its converters (SQLite's and MySQL's datetimes
    and booleans need them). MySQLdb's default cursor copies the whole result into the
    client before the first row; with ``unbuffered`` an ``SSCursor`` streams it (the
    connection runs nothing else until the last row is read, which an export allows)."""
    connection = connections[rows.db]
    compiler = rows.query.get_compiler(using=rows.db)
    connection.ensure_connection()
    raw = connection.connection
    default = raw.cursorclass if unbuffered else None
    if unbuffered:
        from MySQLdb.cursors import SSCursor

        raw.cursorclass = SSCursor
    try:
        results = compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=CHUNK_ROWS)
    finally:
        if unbuffered:
            raw.cursorclass = default
    converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
    for chunk in results:
        yield list(compiler.apply_converters(chunk, converters)) if converters else chunk


def _postgresql_chunks(rows: QuerySet[TaskLog]) -> Iterator[list[Any]]:
    """A server-side cursor read a chunk at a time. Django loads every ``timestamptz`` with
    a Python loader (≈ 40 % of the export's CPU at three values a row); when the
    session's zone is UTC, psycopg's own C loader yields the same aware datetimes."""
    connection = connections[rows.db]
    try:
        sql, params = rows.query.get_compiler(using=rows.db).as_sql()
    except EmptyResultSet:
        return
    server_side = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
        if _utc_psycopg3(connection):
            from psycopg.types.datetime import TimestamptzLoader

            cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            yield chunk


def _utc_psycopg3(connection: Any) -> bool:
    """psycopg 3 (psycopg2 loads timestamps in C already) on a session in UTC, where its C
    loader and Django's agree; with a database ``TIME_ZONE`` or ``USE_TZ = False`` Django's
    loader stays."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3 and settings.USE_TZ and connection.timezone_name == "UTC"


def _counted(chunks: Iterator[list[Any]], tally: list[int] | None) -> Iterator[list[Any]]:
    for chunk in chunks:
        if tally is not None:
            tally[0] += len(chunk)
        yield chunk


def csv_chunks(queryset: QuerySet[TaskLog], tally: list[int] | None = None) -> Iterator[str]:
    """A header line, then the rows in batches of ``CHUNK_ROWS``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for chunk in _counted(_chunks(queryset), tally):
        writer.writerows(map(_csv_cells, chunk))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _jsonl_line(row: tuple[Any, ...] | list[Any]) -> str:
    """One JSON object: the columns in order, then ``args`` and ``kwargs`` spliced in as the
    database's JSON text (not decoded and re-encoded)."""
    record = dict(zip(COLUMNS, row, strict=True))
    for name in TIME_COLUMNS:
        if (when := record[name]) is not None:
            record[name] = when.isoformat()
    args, kwargs = record.pop("args"), record.pop("kwargs")
    head = _encode(record)[:-1]
    return f'{head}, "args": {_json_text(args)}, "kwargs": {_json_text(kwargs)}}}'


def _json_text(text: str | None) -> str:
    return "null" if text is None else text


def jsonl_chunks(queryset: QuerySet[TaskLog], tally: list[int] | None = None) -> Iterator[str]:
    """One JSON object per row and line, in batches of ``CHUNK_ROWS``."""
    for chunk in _counted(_chunks(queryset), tally):
        yield "".join([_jsonl_line(row) + "\n" for row in chunk])


def stream(
    queryset: QuerySet[TaskLog], fmt: str, tally: list[int] | None = None
) -> Iterator[bytes]:
    """The encoded export of ``queryset`` in ``fmt`` (a key of :data:`FORMATS`); ``tally[0]``
    counts the rows sent."""
    chunks = csv_chunks(queryset, tally) if fmt == "csv" else jsonl_chunks(queryset, tally)
    for chunk in chunks:
        if chunk:
            yield chunk.encode("utf-8")


def audited_stream(
    queryset: QuerySet[TaskLog], fmt: str, *, source: str, request: Any, filters: dict[str, Any]
) -> Iterator[bytes]:
    """:func:`stream`, on record: the audit entry is written now (before the response starts),
    its counts when the stream ends or is closed (the client went away)."""
    entry = audit.record(Action.EXPORT, source=source, request=request, filters=filters)
    return _finishing(stream(queryset, fmt, tally := [0]), entry, tally)


def _finishing(chunks: Iterator[bytes], entry: AuditEntry, tally: list[int]) -> Iterator[bytes]:
    complete = False
    try:
        yield from chunks
        complete = True
    finally:
        counts = {"done": tally[0], "matched": tally[0] if complete else 0}
        AuditEntry.objects.filter(pk=entry.pk).update(**counts)


def filename(fmt: str, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return f"task-logs-{stamp}.{FORMATS[fmt][1]}"
