"""Realistic TaskLog rows for demos, tests and benchmarks.

Every benchmark and volume test generates its data here so their figures are
comparable: the same task mix, log-normal durations, retries, errors and users for a
given ``seed``. On PostgreSQL rows are streamed with COPY; elsewhere batched
``bulk_create`` is used.

Generated rows are marked so they never pass for real jobs: every task name starts with
:data:`SEED_PREFIX` (``seed.send_email``), every worker id with ``seed-`` and every user is
``seed_user_N``. The marker is also how ``seed_task_logs`` tells a table of generated rows
(safe to add to or empty) from one holding real jobs (refused without ``--force``).

The statistics rollups follow the seeded rows exactly once either way: the database
triggers add them, except on PostgreSQL as a superuser, where the COPY runs with the
triggers off (``session_replication_role = replica``, this transaction only) and the
rollups of the transaction's own rows are then added in one grouped ``INSERT … SELECT``:
a grouped insert instead of a 10M-row transition table.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog, TaskStat, TaskStatBin
from rearq_tasks.rollup_sql import add_sql, rows_source, terminal_list

SEED_PREFIX = "seed."  # every generated task name starts with it
SEED_WORKER_PREFIX = "seed-"  # every generated worker id too


@dataclass(frozen=True)
class TaskProfile:
    name: str
    queue: str
    weight: int
    median_ms: float
    sigma: float
    failure_rate: float
    retry_limit: int


TASKS: tuple[TaskProfile, ...] = (
    TaskProfile(SEED_PREFIX + "send_email", "default", 30, 180, 0.6, 0.03, 3),
    TaskProfile(SEED_PREFIX + "send_sms", "high", 8, 250, 0.5, 0.05, 3),
    TaskProfile(SEED_PREFIX + "resize_image", "default", 14, 900, 0.8, 0.02, 2),
    TaskProfile(SEED_PREFIX + "generate_report", "low", 4, 12000, 0.9, 0.06, 1),
    TaskProfile(SEED_PREFIX + "sync_inventory", "background", 6, 4000, 0.7, 0.04, 3),
    TaskProfile(SEED_PREFIX + "charge_payment", "critical", 7, 600, 0.5, 0.02, 5),
    TaskProfile(SEED_PREFIX + "refund_payment", "critical", 1, 700, 0.5, 0.03, 5),
    TaskProfile(SEED_PREFIX + "index_document", "background", 10, 350, 0.7, 0.01, 2),
    TaskProfile(SEED_PREFIX + "webhook_dispatch", "high", 12, 300, 1.0, 0.08, 3),
    TaskProfile(SEED_PREFIX + "cleanup_sessions", "low", 2, 2500, 0.4, 0.0, 0),
    TaskProfile(SEED_PREFIX + "export_csv", "low", 3, 30000, 0.8, 0.07, 1),
    TaskProfile(SEED_PREFIX + "flaky_partner_api", "default", 3, 1200, 1.1, 0.25, 3),
)

ERRORS: tuple[str, ...] = (
    "ConnectionError: Error connecting to smtp.example.com:587 (timed out)",
    "TimeoutError: job exceeded its timeout of {n} seconds",
    "ValueError: invalid literal for int() with base 10: 'n/a'",
    "KeyError: 'customer_id'",
    "HTTPError: 502 Bad Gateway from partner API (request {n})",
    'IntegrityError: duplicate key value violates unique constraint "order_{n}_key"',
    "PermissionError: [Errno 13] Permission denied: '/var/exports/{n}.csv'",
    "RuntimeError: payment provider declined the charge (code {n})",
)
WORKERS: tuple[str, ...] = tuple(
    f"{SEED_WORKER_PREFIX}worker-{h}-{p}" for h in ("a", "b", "c") for p in (101, 202)
)

COLUMNS: tuple[str, ...] = (
    "job_id", "task_name", "queue_name", "args", "kwargs", "status", "duration_ms",
    "job_retry", "job_retries", "job_retry_after", "success", "result", "error_message",
    "worker_id", "enqueue_time", "expire_time", "start_time", "finish_time",
    "created_at", "updated_at", "user_id",
)  # fmt: skip


def _pick_status(rng: random.Random, age: dt.timedelta, profile: TaskProfile) -> str:
    if age < dt.timedelta(minutes=2):
        return rng.choices(
            [StatusChoices.QUEUED, StatusChoices.IN_PROGRESS, StatusChoices.DEFERRED,
             StatusChoices.SUCCESS],
            [30, 25, 5, 40],
        )[0]  # fmt: skip
    roll = rng.random()
    if roll < profile.failure_rate:
        return StatusChoices.FAILED
    if roll < profile.failure_rate + 0.006:
        return StatusChoices.EXPIRED
    if roll < profile.failure_rate + 0.010:
        return StatusChoices.CANCELED
    if roll < profile.failure_rate + 0.0102:
        return StatusChoices.IN_PROGRESS  # a stuck job: a worker died mid-run
    return StatusChoices.SUCCESS


# Customer plans of the generated kwargs, for bench/search.py: "enterprise" is the common value
# (1 % of jobs: 10k at a million rows) and "partner" the 0.1 % one (10k at ten million).
PLANS = (("free", 0.8), ("business", 0.189), ("enterprise", 0.01), ("partner", 0.001))


def _kwargs(rng: random.Random, i: int) -> dict[str, object]:
    """A realistic call: a unique order id (job ``i`` has order ``i + 1``), the customer's
    plan, and a tenant for half of the jobs."""
    plan = rng.choices([p for p, _ in PLANS], [w for _, w in PLANS])[0]
    kwargs: dict[str, object] = {"order_id": i + 1, "customer": {"plan": plan}}
    if rng.random() < 0.5:
        kwargs["tenant"] = f"t{rng.randint(1, 40)}"
    return kwargs


def generate_rows(
    count: int,
    days: float,
    seed: int = 0,
    now: dt.datetime | None = None,
    user_ids: tuple[int, ...] = (),
) -> Iterator[tuple]:
    """Yield ``count`` rows (tuples in ``COLUMNS`` order) spread over ``days``, oldest first."""
    rng = random.Random(seed)
    now = now or timezone.now()
    span = dt.timedelta(days=days).total_seconds()
    weights = [t.weight for t in TASKS]
    for i in range(count):
        offset = span * (1 - (i + rng.random()) / count)
        enqueue = now - dt.timedelta(seconds=offset)
        profile = rng.choices(TASKS, weights)[0]
        status = _pick_status(rng, now - enqueue, profile)
        wait_ms = rng.lognormvariate(math.log(120), 1.0)
        duration = rng.lognormvariate(math.log(profile.median_ms), profile.sigma)
        start = finish = None
        duration_ms = success = result = error = worker = None
        retries = 0
        if status != StatusChoices.QUEUED:
            start = enqueue + dt.timedelta(milliseconds=wait_ms)
            worker = rng.choice(WORKERS)
        if status in (StatusChoices.SUCCESS, StatusChoices.FAILED, StatusChoices.CANCELED):
            finish = start + dt.timedelta(milliseconds=duration)
            duration_ms = round(duration)
        if status == StatusChoices.SUCCESS:
            success = True
            retries = min(profile.retry_limit, int(rng.expovariate(12)))
            result = json.dumps({"ok": True, "items": rng.randint(0, 500)})
        elif status == StatusChoices.FAILED:
            success = False
            retries = profile.retry_limit
            error = rng.choice(ERRORS).format(n=rng.randint(1, 99999))
        elif status == StatusChoices.EXPIRED:
            success, start, worker = False, None, None
        elif status == StatusChoices.CANCELED:
            error = "canceled"
        elif status == StatusChoices.DEFERRED:
            retries = 1
            error = rng.choice(ERRORS).format(n=rng.randint(1, 99999))
        user_id = rng.choice(user_ids) if user_ids and rng.random() < 0.2 else None
        args = [rng.randint(1, 10**6)] if profile.queue != "background" else []
        kwargs = _kwargs(rng, i)
        yield (
            f"{rng.getrandbits(128):032x}", profile.name, profile.queue,
            json.dumps(args), json.dumps(kwargs), str(status), duration_ms,
            profile.retry_limit, retries, 60, success, result, error, worker,
            enqueue, None, start, finish, enqueue, finish or start or enqueue, user_id,
        )  # fmt: skip


def ensure_users(count: int = 5) -> tuple[int, ...]:
    """A few users to attribute jobs to (created once, reused)."""
    User = get_user_model()
    ids = []
    for n in range(1, count + 1):
        user, _ = User.objects.get_or_create(
            username=f"seed_user_{n}", defaults={"email": f"seed_user_{n}@example.com"}
        )
        ids.append(user.pk)
    return tuple(ids)


def seed(
    count: int,
    days: float,
    seed: int = 0,
    batch_size: int = 10_000,
    using: str = "default",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``count`` generated rows; returns the number written."""
    user_ids = ensure_users()
    rows = generate_rows(count, days, seed, user_ids=user_ids)
    connection = connections[using]
    if connection.vendor == "postgresql" and _has_psycopg3_copy(connection):
        return _copy_postgres(rows, connection, batch_size, progress)
    return _bulk_create(rows, using, batch_size, progress)


def foreign_rows(using: str = "default") -> bool:
    """Whether the table holds a row this module did not generate (no ``seed.`` marker).

    Stops at the first such row; only a table of generated rows is read through.
    """
    return TaskLog.objects.using(using).exclude(task_name__startswith=SEED_PREFIX).exists()


def truncate(using: str = "default") -> int:
    """Empty TaskLog, its history (TaskEvent) and the statistics rollups (seeded rollups
    would outlive the rows they count). TRUNCATE on PostgreSQL: a DELETE of 1M rows takes
    minutes. Returns the number of TaskLog rows there were."""
    count = TaskLog.objects.using(using).count()
    connection = connections[using]
    models = (TaskEvent, TaskLog, TaskStat, TaskStatBin)
    # Inside a transaction with pending deferred FK checks PostgreSQL refuses TRUNCATE.
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in models)}")
    else:
        with transaction.atomic(using=using):
            for model in models:
                model.objects.using(using).all()._raw_delete(using)
    return count


def _has_psycopg3_copy(connection) -> bool:
    connection.ensure_connection()
    return hasattr(connection.connection, "cursor") and hasattr(
        connection.connection.cursor(), "copy"
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_postgres(rows, connection, batch_size, progress) -> int:
    """Stream COPY text lines in chunks: far cheaper than adapting every value one by one."""
    table = TaskLog._meta.db_table
    written = 0
    sql = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
    chunk: list[str] = []
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        bulk_rollups = _is_superuser(cursor)
        if bulk_rollups:
            cursor.execute("SET LOCAL session_replication_role = replica")
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                chunk.append("\t".join(map(_copy_value, row)))
                written += 1
                if written % batch_size == 0:
                    copy.write("\n".join(chunk) + "\n")
                    chunk.clear()
                    if progress:
                        progress(written)
            if chunk:
                copy.write("\n".join(chunk) + "\n")
        if bulk_rollups:
            _add_own_rollups(cursor)
    if progress:
        progress(written)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    return written


def _is_superuser(cursor) -> bool:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    return bool(row and row[0])


def _add_own_rollups(cursor) -> None:
    """Rollups of the rows this transaction wrote (its xid in ``xmin``), triggers back on."""
    cursor.execute("SET LOCAL session_replication_role = origin")
    own = "t.xmin = (txid_current() % 4294967296)::text::xid"
    source = rows_source("postgresql", f"{own} AND t.status IN ({terminal_list()})")
    for statement in add_sql("postgresql", source):
        cursor.execute(statement)


def _bulk_create(rows, using, batch_size, progress) -> int:
    written = 0
    batch: list[TaskLog] = []

    def flush() -> None:
        nonlocal written
        with transaction.atomic(using=using):
            TaskLog.objects.using(using).bulk_create(batch, batch_size=min(batch_size, 2000))
            # bulk_create stamps auto_now(_add) fields with "now": give them the job's times.
            TaskLog.objects.using(using).filter(job_id__in=[log.job_id for log in batch]).update(
                created_at=F("enqueue_time"),
                updated_at=Coalesce("finish_time", "start_time", "enqueue_time"),
            )
        written += len(batch)
        batch.clear()
        if progress:
            progress(written)

    for row in rows:
        values = dict(zip(COLUMNS, row, strict=True))
        values["args"] = json.loads(values["args"])
        values["kwargs"] = json.loads(values["kwargs"])
        batch.append(TaskLog(**values))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return written
