"""The SQL that keeps :mod:`rearq_tasks.rollups` equal to the TaskLog rows, per database.

One definition of a row's contribution (:func:`stat_select`, :func:`bin_select`) serves the
triggers, ``rebuild_task_stats`` and the read side's edge buckets, so a figure read from the
rollup and the same figure read from rows cannot disagree by construction.

* PostgreSQL: statement-level ``AFTER INSERT`` / ``AFTER UPDATE`` triggers with transition
  tables: one grouped upsert per rollup table per statement, whatever the batch size, and
  none for a statement without a terminal row.
* SQLite and MariaDB/MySQL: row triggers (they have no other kind).

An UPDATE adds the new row (if terminal) and subtracts the old one (if terminal) only when
a column the rollup reads changed, so a replayed terminal event costs a join and no write.
"""

from __future__ import annotations

from collections.abc import Sequence

from rearq_tasks.lifecycle import TERMINAL_STATUSES, StatusChoices
from rearq_tasks.rollups import DAY, HOUR, INV_LN_GAMMA, QUARTER, SPANS, TaskStat, TaskStatBin

LOG_TABLE = "django_cfg_task_log"
STAT_TABLE = TaskStat._meta.db_table
BIN_TABLE = TaskStatBin._meta.db_table
# The TaskLog columns a contribution reads; a change to any other column changes nothing.
READ_COLUMNS: tuple[str, ...] = (
    "task_name",
    "queue_name",
    "status",
    "success",
    "job_retries",
    "duration_ms",
    "enqueue_time",
    "start_time",
)
STAT_KEY: tuple[str, ...] = ("span", "bucket", "task_name", "queue_name", "status", "outcome")
STAT_SUMS: tuple[str, ...] = (
    "jobs",
    "retried",
    "retries_sum",
    "attempts_sum",
    "duration_count",
    "duration_sum",
    "wait_count",
    "wait_sum",
)
BIN_KEY: tuple[str, ...] = ("span", "bucket", "task_name", "queue_name", "kind", "bin")
TRIGGER_PREFIX = "rearq_tasks_rollup"


def terminal_list() -> str:
    return ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))


def live_list() -> str:
    """The statuses that are not terminal: ``status IN (…)`` can use the status index,
    ``NOT IN`` cannot (it scans every row)."""
    return ", ".join(f"'{s}'" for s in sorted(set(StatusChoices.values) - TERMINAL_STATUSES))


def bucket_sql(vendor: str, column: str, span: str) -> str:
    """The UTC start of the 15-minute, hour or day bucket holding ``column``; ``span`` is SQL."""
    if vendor == "postgresql":
        origin = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
        quarter = f"date_bin(INTERVAL '15 minutes', {column}, {origin})"
        hour = f"date_bin(INTERVAL '1 hour', {column}, {origin})"
        day = f"date_bin(INTERVAL '1 day', {column}, {origin})"
    elif vendor == "mysql":
        quarter = (
            f"TIMESTAMP(DATE({column}), MAKETIME(HOUR({column}), "
            f"FLOOR(MINUTE({column}) / 15) * 15, 0))"
        )
        hour = f"TIMESTAMP(DATE({column}), MAKETIME(HOUR({column}), 0, 0))"
        day = f"TIMESTAMP(DATE({column}))"
    else:
        quarter = (
            f"strftime('%Y-%m-%d %H:', {column}) || "
            f"printf('%02d', (CAST(strftime('%M', {column}) AS INTEGER) / 15) * 15) || ':00'"
        )
        hour = f"strftime('%Y-%m-%d %H:00:00', {column})"
        day = f"strftime('%Y-%m-%d 00:00:00', {column})"
    assert set(SPANS) == {QUARTER, HOUR, DAY}
    return f"(CASE {span} WHEN {QUARTER} THEN {quarter} WHEN {HOUR} THEN {hour} ELSE {day} END)"


def wait_sql(vendor: str, row: str = "r") -> str:
    """Start − enqueue in whole milliseconds, never negative; NULL until the job starts."""
    start, enqueue = f"{row}.start_time", f"{row}.enqueue_time"
    if vendor == "postgresql":
        ms = f"ROUND(EXTRACT(EPOCH FROM ({start} - {enqueue})) * 1000)"
        return f"(CASE WHEN {start} IS NULL THEN NULL ELSE GREATEST(0, {ms})::bigint END)"
    if vendor == "mysql":
        ms = f"ROUND(TIMESTAMPDIFF(MICROSECOND, {enqueue}, {start}) / 1000)"
        return f"(CASE WHEN {start} IS NULL THEN NULL ELSE GREATEST(0, {ms}) END)"
    ms = f"CAST(ROUND((julianday({start}) - julianday({enqueue})) * 86400000.0) AS INTEGER)"
    return f"(CASE WHEN {start} IS NULL THEN NULL ELSE MAX(0, {ms}) END)"


def bin_sql(value: str) -> str:
    """:func:`rearq_tasks.rollups.bin_of` in SQL."""
    return (
        f"(CASE WHEN {value} <= 0 THEN 0 ELSE 1 + CEIL(LN({value}) * {INV_LN_GAMMA!r} - 1e-9) END)"
    )


def _not_run(row: str = "r") -> str:
    # A terminal job whose current attempt never ran (models.NOT_RUN_YET for terminal rows).
    return (
        f"({row}.status = '{StatusChoices.EXPIRED}' OR "
        f"({row}.status = '{StatusChoices.CANCELED}' AND {row}.start_time IS NULL))"
    )


def _spans(spans: Sequence[int]) -> str:
    return " UNION ALL ".join(f"SELECT {span} AS span" for span in spans)


def stat_select(vendor: str, source: str, spans: Sequence[int] = SPANS) -> str:
    """Grouped contributions of ``source`` (TaskLog columns + ``sign``) in STAT columns."""
    sign = "r.sign"
    sums = {
        "jobs": f"SUM({sign})",
        "retried": f"SUM(CASE WHEN r.job_retries > 0 THEN {sign} ELSE 0 END)",
        "retries_sum": f"SUM({sign} * r.job_retries)",
        "attempts_sum": (
            f"SUM({sign} * (r.job_retries + CASE WHEN {_not_run()} THEN 0 ELSE 1 END))"
        ),
        "duration_count": f"SUM(CASE WHEN r.duration_ms IS NULL THEN 0 ELSE {sign} END)",
        "duration_sum": f"SUM({sign} * COALESCE(r.duration_ms, 0))",
        "wait_count": f"SUM(CASE WHEN r.start_time IS NULL THEN 0 ELSE {sign} END)",
        "wait_sum": f"SUM({sign} * COALESCE({wait_sql(vendor)}, 0))",
    }
    outcome = "(CASE WHEN r.success IS NULL THEN -1 WHEN r.success THEN 1 ELSE 0 END)"
    keys = [
        "sp.span",
        bucket_sql(vendor, "r.enqueue_time", "sp.span"),
        "r.task_name",
        "r.queue_name",
        "r.status",
        outcome,
    ]
    columns = ", ".join(f"{k} AS {name}" for k, name in zip(keys, STAT_KEY, strict=True))
    columns += ", " + ", ".join(f"{v} AS {k}" for k, v in sums.items())
    order = ", ".join(str(i) for i in range(1, len(STAT_KEY) + 1))
    return (
        f"SELECT {columns} FROM ({source}) r CROSS JOIN ({_spans(spans)}) sp "
        f"WHERE 1 = 1 GROUP BY {order} ORDER BY {order}"
    )


def bin_select(vendor: str, source: str, spans: Sequence[int] = SPANS) -> str:
    """Grouped histogram contributions of ``source``: durations (kind 0), waits (kind 1)."""
    value = f"(CASE k.kind WHEN 0 THEN r.duration_ms ELSE {wait_sql(vendor)} END)"
    keys = [
        "sp.span",
        bucket_sql(vendor, "r.enqueue_time", "sp.span"),
        "r.task_name",
        "r.queue_name",
        "k.kind",
        bin_sql(value),
    ]
    columns = ", ".join(f"{k} AS {name}" for k, name in zip(keys, BIN_KEY, strict=True))
    order = ", ".join(str(i) for i in range(1, len(BIN_KEY) + 1))
    return (
        f"SELECT {columns}, SUM(r.sign) AS jobs FROM ({source}) r "
        f"CROSS JOIN ({_spans(spans)}) sp "
        "CROSS JOIN (SELECT 0 AS kind UNION ALL SELECT 1) k "
        f"WHERE {value} IS NOT NULL GROUP BY {order} HAVING SUM(r.sign) <> 0 ORDER BY {order}"
    )


def _upsert(vendor: str, table: str, key: Sequence[str], sums: Sequence[str], select: str) -> str:
    cols = ", ".join((*key, *sums))
    if vendor == "mysql":
        sets = ", ".join(f"{table}.{c} = {table}.{c} + VALUES({c})" for c in sums)
        return (
            f"INSERT INTO {table} ({cols}) SELECT * FROM ({select}) d "
            f"ON DUPLICATE KEY UPDATE {sets}"
        )
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return (
        f"INSERT INTO {table} ({cols}) {select} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    )


def add_sql(vendor: str, source: str, spans: Sequence[int] = SPANS) -> list[str]:
    """The statements adding ``source``'s signed contributions to both rollup tables."""
    return [
        _upsert(vendor, STAT_TABLE, STAT_KEY, STAT_SUMS, stat_select(vendor, source, spans)),
        _upsert(vendor, BIN_TABLE, BIN_KEY, ("jobs",), bin_select(vendor, source, spans)),
    ]


def add_once_sql(source: str, spans: Sequence[int] = SPANS) -> str:
    """PostgreSQL: :func:`add_sql`'s two upserts as one statement over ``source`` evaluated
    once (a materialised CTE): one executor run and one pass over the transition tables
    instead of two. The bin upsert, a CTE the main statement does not read, runs after the
    stat upsert has finished, so rollup rows are locked in :func:`add_sql`'s order."""
    stat, bins = add_sql("postgresql", "SELECT * FROM rearq_src", spans)
    return f"WITH rearq_src AS MATERIALIZED ({source}), rearq_bins AS ({bins}) {stat}"


def _cols(row: str, sign: int) -> str:
    return ", ".join(f"{row}.{c} AS {c}" for c in READ_COLUMNS) + f", {sign} AS sign"


def _changed(vendor: str, old: str, new: str) -> str:
    if vendor == "postgresql":
        test = "{o}.{c} IS DISTINCT FROM {n}.{c}"
    elif vendor == "mysql":
        test = "NOT ({o}.{c} <=> {n}.{c})"
    else:
        test = "{o}.{c} IS NOT {n}.{c}"
    return "(" + " OR ".join(test.format(o=old, n=new, c=c) for c in READ_COLUMNS) + ")"


def _terminal(row: str) -> str:
    return f"{row}.status IN ({terminal_list()})"


def _early_exit(event: str) -> str:
    """Leave before the upserts when no row of the statement is terminal, old or new: most
    capture statements (queued, started) hold none, and each upsert costs a plan execution
    over the transition tables even when it writes nothing. A statement-level trigger with
    transition tables cannot take a ``WHEN`` clause, hence the check in the body."""
    sides = [("rearq_new", "n")] + ([("rearq_old", "o")] if event == "update" else [])
    tests = " OR ".join(f"EXISTS (SELECT 1 FROM {t} {a} WHERE {_terminal(a)})" for t, a in sides)
    return f"IF NOT ({tests}) THEN RETURN NULL; END IF; "


def postgres_functions_sql(
    early_exit: bool = True, spans: Sequence[int] = SPANS
) -> list[tuple[str, str]]:
    """``(event, CREATE OR REPLACE FUNCTION …)`` of the PostgreSQL trigger functions.

    ``early_exit=False`` is the body migration 0008 installed (two upserts, always run);
    0013 replaces it with the early exit and :func:`add_once_sql`, 0014 adds the hour span
    (each restores the previous body when reversed), so the triggers themselves never change.
    """
    terminal_new = f"SELECT {_cols('n', 1)} FROM rearq_new n WHERE {_terminal('n')}"
    changed = _changed("postgresql", "o", "n")
    join = "rearq_new n JOIN rearq_old o ON o.id = n.id"
    update_source = (
        f"SELECT {_cols('n', 1)} FROM {join} WHERE {_terminal('n')} AND {changed} "
        f"UNION ALL SELECT {_cols('o', -1)} FROM {join} WHERE {_terminal('o')} AND {changed}"
    )
    out = []
    for event, source in (("insert", terminal_new), ("update", update_source)):
        name = f"{TRIGGER_PREFIX}_{event}"
        if early_exit:
            body = _early_exit(event) + add_once_sql(source, spans)
        else:
            body = "; ".join(add_sql("postgresql", source, spans))
        out.append((
            event,
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body}; RETURN NULL; END $$",
        ))  # fmt: skip
    return out


def _postgres_triggers(early_exit: bool, spans: Sequence[int]) -> list[str]:
    refs = {
        "insert": "NEW TABLE AS rearq_new",
        "update": "OLD TABLE AS rearq_old NEW TABLE AS rearq_new",
    }
    out = []
    for event, function in postgres_functions_sql(early_exit, spans):
        name = f"{TRIGGER_PREFIX}_{event}"
        out.append(function)
        out.append(
            f"CREATE TRIGGER {name} AFTER {event.upper()} ON {LOG_TABLE} "
            f"REFERENCING {refs[event]} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    return out


def _row_triggers(vendor: str, spans: Sequence[int]) -> list[str]:
    new_only = f"SELECT {_cols('NEW', 1)}"
    if vendor == "mysql":
        new_only += " FROM DUAL"
    update_source = (
        f"{new_only} WHERE {_terminal('NEW')} UNION ALL "
        f"SELECT {_cols('OLD', -1)}{' FROM DUAL' if vendor == 'mysql' else ''} "
        f"WHERE {_terminal('OLD')}"
    )
    update_when = f"{_changed(vendor, 'OLD', 'NEW')} AND ({_terminal('OLD')} OR {_terminal('NEW')})"
    out = []
    for event, source, when in (
        ("insert", new_only, _terminal("NEW")),
        ("update", update_source, update_when),
    ):
        name = f"{TRIGGER_PREFIX}_{event}"
        body = " ".join(f"{statement};" for statement in add_sql(vendor, source, spans))
        if vendor == "mysql":
            out.append(
                f"CREATE TRIGGER {name} AFTER {event.upper()} ON {LOG_TABLE} FOR EACH ROW "
                f"BEGIN IF {when} THEN {body} END IF; END"
            )
        else:
            out.append(
                f"CREATE TRIGGER {name} AFTER {event.upper()} ON {LOG_TABLE} FOR EACH ROW "
                f"WHEN {when} BEGIN {body} END"
            )
    return out


def create_triggers_sql(
    vendor: str, early_exit: bool = True, spans: Sequence[int] = SPANS
) -> list[str]:
    """DDL installing the rollup triggers on ``vendor`` (postgresql, mysql, sqlite).

    ``early_exit`` matters on PostgreSQL only (:func:`postgres_functions_sql`); migrations
    pass the ``spans`` of their time so that replaying them installs what they installed.
    """
    if vendor == "postgresql":
        return _postgres_triggers(early_exit, spans)
    return _row_triggers(vendor, spans)


def drop_triggers_sql(vendor: str) -> list[str]:
    out = []
    for event in ("insert", "update"):
        name = f"{TRIGGER_PREFIX}_{event}"
        if vendor == "postgresql":
            out.append(f"DROP TRIGGER IF EXISTS {name} ON {LOG_TABLE}")
            out.append(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            out.append(f"DROP TRIGGER IF EXISTS {name}")
    return out


def rows_source(vendor: str, where: str) -> str:
    """TaskLog rows matching ``where`` (SQL over alias ``t``) as a contribution source."""
    return f"SELECT {_cols('t', 1)} FROM {LOG_TABLE} t WHERE {where}"


def regroup_sql(vendor: str, span: int, into: int) -> list[str]:
    """Add up the ``span`` rollup rows into ``into``-second buckets (``into`` a multiple of
    ``span``), for both tables: how migration 0014 fills the hour span from the quarters
    without reading a TaskLog row. Rows are written in key order, so each bucket's rows sit
    together on disk as the triggers' would (a read of a day's hours then touches ~1,000
    pages, not ~7,000). The source aliases ``qs`` and ``qb`` are what MariaDB's ``LOCK
    TABLES`` must name."""
    out = []
    tables = ((STAT_TABLE, "qs", STAT_KEY, STAT_SUMS), (BIN_TABLE, "qb", BIN_KEY, ("jobs",)))
    for table, q, key, sums in tables:
        rest = [c for c in key if c not in ("span", "bucket")]
        columns = ", ".join(
            [f"{into}", bucket_sql(vendor, f"{q}.bucket", str(into))]
            + [f"{q}.{c}" for c in rest]
            + [f"SUM({q}.{c})" for c in sums]
        )
        group = ", ".join(str(i) for i in range(2, len(key) + 1))
        out.append(
            f"INSERT INTO {table} ({', '.join((*key, *sums))}) SELECT {columns} "
            f"FROM {table} {q} WHERE {q}.span = {span} GROUP BY {group} ORDER BY {group}"
        )
    return out
