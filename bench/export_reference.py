"""The export's encoder as it was before issue #17 (commit 14e1bb4), kept to measure against.

``bench/export.py`` runs the server once with this encoder and once with the current one, on
the same rows, so the speed-up is a paired ratio on a shared machine. Not used by the app.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.sql.constants import MULTI

from rearq_tasks.models import TaskLog
from rearq_tasks.payloads import dumps
from rearq_tasks.queries.export import CHUNK_ROWS, COLUMNS, neutralise

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
