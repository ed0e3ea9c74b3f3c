"""Reading the rollups: whole buckets from TaskStat/TaskStatBin, edges and live jobs from rows.

A :class:`Scope` (period start, task, queue) is what the rollup can serve. A period is cut
into: the partial 15-minute bucket at its start, read from TaskLog rows through the
``enqueue_time`` index; whole 15-minute buckets up to the next UTC hour (at most three);
whole hours up to the next UTC midnight (at most 23); whole UTC days after that. Jobs
that are not terminal yet (few) are read live from TaskLog through the
``(status, enqueue_time)`` index. Every part yields records of the same shape (the SQL of
:mod:`rearq_tasks.rollup_sql`), merged here, so counts and sums are exact. See
docs/performance.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import BigIntegerField, Case, ExpressionWrapper, F, Q, Sum, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from rearq_tasks.lifecycle import (
    FAILED_STATUSES,
    TERMINAL_STATUSES,
    StatusChoices,
)
from rearq_tasks.models import TaskLog, since_q
from rearq_tasks.queries.expressions import hours_since
from rearq_tasks.queries.read_settings import tuned_for_rollups
from rearq_tasks.rollup_sql import (
    LOG_TABLE,
    STAT_SUMS,
    bin_select,
    live_list,
    rows_source,
    stat_select,
    terminal_list,
    wait_sql,
)
from rearq_tasks.rollups import (
    DAY,
    DURATION,
    HOUR,
    OUTCOME_FALSE,
    OUTCOME_TRUE,
    QUARTER,
    SPANS,
    WAIT,
    TaskStat,
    TaskStatBin,
    bin_value,
    ceil_bucket,
    floor_bucket,
)

if TYPE_CHECKING:
    from rearq_tasks.models import TaskLogQuerySet

Record = dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """Jobs enqueued at or after ``since`` (None: all kept), optionally of one task/queue.

    The filters the rollup serves; anything else is a TaskLog queryset (read from rows).
    """

    since: dt.datetime | None = None
    task_name: str | None = None
    queue_name: str | None = None
    using: str = "default"

    @classmethod
    def period(
        cls,
        hours: float | dt.timedelta,
        task_name: str | None = None,
        queue_name: str | None = None,
    ) -> Scope:
        delta = hours if isinstance(hours, dt.timedelta) else dt.timedelta(hours=hours)
        return cls(timezone.now() - delta, task_name or None, queue_name or None)

    def rows(self) -> TaskLogQuerySet:
        """The same jobs as a TaskLog queryset (row-scan reading, latest errors)."""
        qs = TaskLog.objects.using(self.using).all()
        if self.since is not None:
            qs = qs.filter(since_q(self.since))
        if self.task_name:
            qs = qs.filter(task_name=self.task_name)
        if self.queue_name:
            qs = qs.filter(queue_name=self.queue_name)
        return qs

    def narrowed(self, **fields: Any) -> Scope:
        return Scope(**{**self.__dict__, **fields})


# --- the vocabulary on records (models.FAILED etc., for one rollup record) ------------------


def is_completed(r: Record) -> bool:
    return r["status"] in TERMINAL_STATUSES


def is_failed(r: Record) -> bool:
    return r["status"] in FAILED_STATUSES or r["outcome"] == OUTCOME_FALSE


def is_successful(r: Record) -> bool:
    return r["status"] == StatusChoices.SUCCESS and r["outcome"] == OUTCOME_TRUE


def is_active(r: Record) -> bool:
    return r["status"] in (StatusChoices.QUEUED, StatusChoices.IN_PROGRESS)


def rate(part: float, whole: float) -> float:
    return round(part * 100 / whole, 2) if whole else 0.0


def outcome_rate(part: float, successful: float, failed: float) -> float:
    """``part`` as a % of the jobs that succeeded or failed, as the seed's view computes it.

    A canceled job neither succeeded nor failed, so it does not dilute either rate:
    ``success_rate + failure_rate`` is 100 whenever one job ended either way.
    """
    return rate(part, successful + failed)


def int_or_none(value: float | None) -> int | None:
    return None if value is None else int(round(value))


# --- reading -----------------------------------------------------------------------------


def _as_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class _Plan:
    """Where each part of a scope is read from."""

    whole: Q  # TaskStat/TaskStatBin rows to add
    minus: Q | None  # rows inside ``whole``'s first day but before the period: subtracted
    edge: tuple[dt.datetime, dt.datetime] | None  # TaskLog rows [a, b), every status
    live_from: dt.datetime | None  # non-terminal TaskLog rows from here (None: all)


# A UTC day's rollup rows cost about as much to read as three hours' (measured at 10M rows:
# histogram bins saturate, ~6,100 rows a day against ~2,700 an hour).
DAY_COST_IN_HOURS = 3


def _plan(scope: Scope, coarsest: int = DAY, subtract: bool = True) -> _Plan:
    """Cut ``scope`` into its row edge and whole buckets, each as coarse as it can be, no
    span coarser than ``coarsest`` (a timeline whose local hours are not UTC hours reads
    quarters only). With ``subtract``, a period whose first UTC day is mostly inside it
    reads that whole day minus the hours before the period, so no period reads more than
    about twelve hours of rows besides its days."""
    filters = Q()
    if scope.task_name:
        filters &= Q(task_name=scope.task_name)
    if scope.queue_name:
        filters &= Q(queue_name=scope.queue_name)
    if scope.since is None:
        return _Plan(Q(span=coarsest) & filters, None, None, None)
    first = ceil_bucket(scope.since, QUARTER)
    edge = (scope.since, first) if first > scope.since else None
    minus = _before_in_day(first) if subtract and coarsest == DAY else None
    if minus is not None:
        whole = Q(span=DAY, bucket__gte=floor_bucket(first, DAY))
        return _Plan(whole & filters, minus & filters, edge, first)
    spans = [span for span in SPANS if span <= coarsest]
    start, whole = first, Q(span=coarsest, bucket__gte=ceil_bucket(first, coarsest))
    for span, coarser in zip(spans, spans[1:], strict=False):
        end = ceil_bucket(start, coarser)
        if start < end:  # whole ``span`` buckets up to the next ``coarser`` one
            whole |= Q(span=span, bucket__gte=start, bucket__lt=end)
        start = end
    return _Plan(whole & filters, None, edge, first)


def _before_in_day(first: dt.datetime) -> Q | None:
    """The hours and quarters of ``first``'s UTC day before ``first``, when subtracting
    them from the day reads fewer rows than adding the hours after ``first``."""
    day, hour = floor_bucket(first, DAY), floor_bucket(first, HOUR)
    if day == first:
        return None
    before = (hour - day) // dt.timedelta(hours=1)
    after = (ceil_bucket(first, DAY) - ceil_bucket(first, HOUR)) // dt.timedelta(hours=1)
    if before + DAY_COST_IN_HOURS >= after:
        return None
    minus = Q(span=QUARTER, bucket__gte=hour, bucket__lt=first) if first > hour else Q()
    if hour > day:
        minus |= Q(span=HOUR, bucket__gte=day, bucket__lt=hour)
    return minus


def _signed(column: str, plan: _Plan) -> Sum:
    """``SUM(column)`` over the plan's rows, the subtracted ones counted negatively."""
    if plan.minus is None:
        return Sum(column)
    negative = ExpressionWrapper(-F(column), output_field=BigIntegerField())
    return Sum(Case(When(plan.minus, then=negative), default=F(column)))


def _read_from(plan: _Plan) -> Q:
    return plan.whole if plan.minus is None else plan.whole | plan.minus


def _row_sources(scope: Scope, plan: _Plan, terminal_only: bool) -> tuple[str, list[Any]]:
    """TaskLog rows of the edge and the live jobs, as one contribution source."""
    connection = connections[scope.using]
    adapt = connection.ops.adapt_datetimefield_value
    extra, extra_params = "", []
    for column in ("task_name", "queue_name"):
        if getattr(scope, column):
            extra += f" AND t.{column} = %s"
            extra_params.append(getattr(scope, column))
    parts, params = [], []
    if plan.edge is not None:
        where = "t.enqueue_time >= %s AND t.enqueue_time < %s" + extra
        if terminal_only:
            where += f" AND t.status IN ({terminal_list()})"
        parts.append(rows_source(connection.vendor, where))
        params += [adapt(plan.edge[0]), adapt(plan.edge[1]), *extra_params]
    if not terminal_only:
        where = f"t.status IN ({live_list()})" + extra
        if plan.live_from is not None:
            where += " AND t.enqueue_time >= %s"
        parts.append(rows_source(connection.vendor, where))
        params += extra_params + ([adapt(plan.live_from)] if plan.live_from is not None else [])
    return " UNION ALL ".join(parts), params


def _raw(scope: Scope, sql_of: Any, plan: _Plan, terminal_only: bool) -> list[Record]:
    source, params = _row_sources(scope, plan, terminal_only)
    if not source:
        return []
    connection = connections[scope.using]
    sql = sql_of(connection.vendor, "§", spans=(QUARTER,))
    # Literal % of the SQL (SQLite's strftime) must survive the driver's parameter style.
    sql = sql.replace("%", "%%").replace("§", source)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["bucket"] = _as_utc(row["bucket"])
    return rows


def _merge(rows: Iterable[Record], dims: Sequence[str], sums: Sequence[str]) -> list[Record]:
    merged: dict[tuple[Any, ...], Record] = {}
    for row in rows:
        key = tuple(row[d] for d in dims)
        acc = merged.get(key)
        if acc is None:
            merged[key] = acc = {d: row[d] for d in dims} | {s: 0 for s in sums}
        for s in sums:
            acc[s] += int(row[s] or 0)
    return list(merged.values())


def records(
    scope: Scope,
    dims: Sequence[str],
    coarsest: int = DAY,
    terminal_only: bool = False,
    hours_from: dt.datetime | None = None,
) -> list[Record]:
    """Figures (``STAT_SUMS``) of ``scope`` grouped by ``dims`` (TaskStat key columns).

    Buckets are read as coarse as ``coarsest`` allows (:func:`_plan`). With ``hours_from``,
    dimension ``hour`` is the whole hours from that instant to the bucket's start: the
    database groups the buckets by hour, so a timeline gets one row per hour and status.
    """
    plan = _plan(scope, coarsest, subtract=hours_from is None and "bucket" not in dims)
    stored = TaskStat.objects.using(scope.using).filter(_read_from(plan))
    if hours_from is not None:
        # Buckets lie on the 15-minute grid: half a quarter of slack keeps SQLite's float
        # day arithmetic from putting a bucket that starts an hour into the hour before.
        hours_from -= dt.timedelta(seconds=QUARTER / 2)
        on_postgres = connections[scope.using].vendor == "postgresql"
        stored = stored.annotate(hour=hours_since(hours_from, "bucket", on_postgres))
    stored = stored.values(*dims).annotate(**{s: _signed(s, plan) for s in STAT_SUMS}).order_by()
    with tuned_for_rollups(scope.using):
        rows = [*stored, *_raw(scope, stat_select, plan, terminal_only)]
    for row in rows:
        if "bucket" in row:
            row["bucket"] = _as_utc(row["bucket"])
        if hours_from is not None:
            row["hour"] = _whole_hours(row.get("hour", row.get("bucket")), hours_from)
    return [r for r in _merge(rows, dims, STAT_SUMS) if r["jobs"]]


def _whole_hours(value: Any, origin: dt.datetime) -> int:
    """An ``hours_since`` value (a datetime on PostgreSQL, a number elsewhere) as hours."""
    if isinstance(value, str):
        value = _as_utc(value)
    if isinstance(value, dt.datetime):
        return int((_as_utc(value) - origin) // dt.timedelta(hours=1))
    return int(value)


def histograms(
    scope: Scope,
    dims: Sequence[str],
    kinds: Sequence[int] = (DURATION, WAIT),
    terminal_only: bool = False,
) -> dict[tuple[Any, ...], dict[int, int]]:
    """``(kind, *dims)`` → {bin: jobs} of durations and/or queue waits (two queries)."""
    plan = _plan(scope, subtract="bucket" not in dims)
    stored = (
        TaskStatBin.objects.using(scope.using)
        .filter(_read_from(plan), kind__in=kinds)
        .values("kind", *dims, "bin")
        .annotate(jobs=_signed("jobs", plan))
        .order_by()
    )
    with tuned_for_rollups(scope.using):
        rows = [*stored, *_raw(scope, bin_select, plan, terminal_only)]
    out: dict[tuple[Any, ...], dict[int, int]] = {}
    for row in rows:
        if row["kind"] not in kinds or not row["jobs"]:
            continue
        bins = out.setdefault((int(row["kind"]), *(row[d] for d in dims)), {})
        bins[int(row["bin"])] = bins.get(int(row["bin"]), 0) + int(row["jobs"])
    return out


def percentile(bins: dict[int, int], fraction: float) -> float | None:
    """``percentile_cont(fraction)`` of the values a histogram holds, within ``ALPHA``."""
    n = sum(bins.values())
    if n <= 0:
        return None
    position = fraction * (n - 1)
    low = int(position)
    values = _ranked(bins, (low, min(low + 1, n - 1)))
    return values[0] + (values[1] - values[0]) * (position - low)


def _ranked(bins: dict[int, int], ranks: tuple[int, int]) -> list[float]:
    out: list[float] = []
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        while len(out) < len(ranks) and ranks[len(out)] < seen:
            out.append(bin_value(index))
        if len(out) == len(ranks):
            break
    return out


def wait_expression(using: str = "default") -> str:
    """The rollup's queue wait (whole ms, never negative) over TaskLog columns, in SQL."""
    return wait_sql(connections[using].vendor, LOG_TABLE)
