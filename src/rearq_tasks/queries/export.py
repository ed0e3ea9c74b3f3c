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
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.sql.constants import MULTI

from rearq_tasks import audit
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import Action, AuditEntry
from rearq_tasks.payloads import dumps

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


def _text(value: Any) -> str:
    return "" if value is None else neutralise(str(value))


def _number(value: Any) -> str:
    return "" if value is None else str(value)  # a negative number is a number, not a formula


def _flag(value: Any) -> str:
    return "" if value is None else ("true" if value else "false")


def _time(value: Any) -> str:
    return "" if value is None else value.isoformat()


def _converter(name: str) -> Callable[[Any], str]:
    if name in NUMBER_COLUMNS:
        return _number
    if name in TIME_COLUMNS:
        return _time
    return _flag if name == "success" else _text


CONVERTERS = tuple(_converter(name) for name in COLUMNS)


def _csv_cell(name: str, value: Any) -> str:
    """One CSV cell (``args``/``kwargs`` arrive as their stored JSON text)."""
    return CONVERTERS[COLUMNS.index(name)](value)


def _rows(queryset: QuerySet[TaskLog]) -> Iterator[tuple[Any, ...]]:
    """Rows in ``COLUMNS`` order; the JSON columns as the database's JSON text (no decoding
    and re-encoding per row)."""
    texts = {f"{name}_text": Cast(name, TextField()) for name in JSON_COLUMNS}
    names = [f"{name}_text" if name in JSON_COLUMNS else name for name in COLUMNS]
    rows = queryset.annotate(**texts).values_list(*names)
    if connections[queryset.db].vendor == "mysql":
        return _unbuffered_rows(rows)
    return rows.iterator(chunk_size=CHUNK_ROWS)


def _unbuffered_rows(rows: QuerySet[TaskLog]) -> Iterator[tuple[Any, ...]]:
    """MySQLdb's default cursor copies the whole result into the client before the first
    row (Django's ``iterator()`` cannot stream there); an ``SSCursor`` streams it. The
    connection runs nothing else until the last row is read, which an export allows."""
    from MySQLdb.cursors import SSCursor

    connection = connections[rows.db]
    compiler = rows.query.get_compiler(using=rows.db)
    connection.ensure_connection()
    raw = connection.connection
    default = raw.cursorclass
    raw.cursorclass = SSCursor
    try:
        results = compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=CHUNK_ROWS)
    finally:
        raw.cursorclass = default
    yield from compiler.results_iter(results, tuple_expected=True)


def _counted(rows: Iterator[tuple[Any, ...]], tally: list[int] | None) -> Iterator[Any]:
    if tally is None:
        yield from rows
        return
    for row in rows:
        tally[0] += 1
        yield row


def csv_chunks(queryset: QuerySet[TaskLog], tally: list[int] | None = None) -> Iterator[str]:
    """A header line, then the rows in batches of ``CHUNK_ROWS``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    count = 0
    for row in _counted(_rows(queryset), tally):
        writer.writerow([convert(value) for convert, value in zip(CONVERTERS, row, strict=True)])
        count += 1
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _jsonl_line(row: tuple[Any, ...]) -> str:
    record: dict[str, Any] = {}
    payload: list[str] = []
    for name, value in zip(COLUMNS, row, strict=True):
        if name in JSON_COLUMNS:
            payload.append(f', "{name}": {"null" if value is None else value}')
        else:
            record[name] = value.isoformat() if name in TIME_COLUMNS and value else value
    return dumps(record, ensure_ascii=False)[:-1] + "".join(payload) + "}"


def jsonl_chunks(queryset: QuerySet[TaskLog], tally: list[int] | None = None) -> Iterator[str]:
    """One JSON object per row and line, in batches of ``CHUNK_ROWS``."""
    lines: list[str] = []
    for row in _counted(_rows(queryset), tally):
        lines.append(_jsonl_line(row))
        if len(lines) == CHUNK_ROWS:
            yield "\n".join(lines) + "\n"
            lines.clear()
    if lines:
        yield "\n".join(lines) + "\n"


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
