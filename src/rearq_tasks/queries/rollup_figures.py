"""The aggregate figures of a :class:`~rearq_tasks.queries.rollup.Scope`, read from rollups.

Each function returns exactly what its row-scan twin in :mod:`stats`, :mod:`timeseries` or
:mod:`history` returns for the same jobs (``tests/test_rollup_property.py`` proves it): the
same keys, counts and sums; percentiles within 1 %.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from rearq_tasks.queries.rollup import (
    Record,
    Scope,
    histograms,
    int_or_none,
    is_active,
    is_completed,
    is_failed,
    is_successful,
    outcome_rate,
    percentile,
    rate,
    records,
)
from rearq_tasks.rollups import DURATION, QUARTER, WAIT

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def _count(rows: list[Record], test: Callable[[Record], bool], field: str = "jobs") -> int:
    return sum(r[field] for r in rows if test(r))


def _total(rows: list[Record], field: str) -> int:
    return sum(r[field] for r in rows)


def summary(scope: Scope) -> dict[str, Any]:
    """:func:`rearq_tasks.queries.stats.summary` of a scope."""
    rows = records(scope, ("status", "outcome"))
    bins = histograms(scope, ())
    durations, waits = bins.get((DURATION,), {}), bins.get((WAIT,), {})
    total, completed = _total(rows, "jobs"), _count(rows, is_completed)
    successful, failed = _count(rows, is_successful), _count(rows, is_failed)
    timed, waited = _total(rows, "duration_count"), _total(rows, "wait_count")
    avg_duration = _total(rows, "duration_sum") / timed if timed else 0
    out: dict[str, Any] = {
        "total": total,
        "successful": successful,
        "failed": failed,
        "in_progress": _count(rows, is_active),
        "completed": completed,
        "success_rate": outcome_rate(successful, successful, failed),
        "failure_rate": outcome_rate(failed, successful, failed),
        "retry_rate": rate(_total(rows, "retried"), total),
        "avg_duration_ms": int(round(avg_duration)),
        "avg_duration_seconds": round(avg_duration / 1000, 2),
    }
    for label, fraction in PERCENTILES:
        out[f"{label}_duration_ms"] = int_or_none(percentile(durations, fraction))
    out["avg_queue_wait_ms"] = int_or_none(_total(rows, "wait_sum") / waited if waited else None)
    out["p95_queue_wait_ms"] = int_or_none(percentile(waits, 0.95))
    return out


def task_rows(scope: Scope) -> list[dict[str, Any]]:
    """Per task: the figures of ``stats.by_task`` (without latest errors), unordered."""
    grouped: dict[str, list[Record]] = {}
    for row in records(scope, ("task_name", "status", "outcome")):
        grouped.setdefault(row["task_name"], []).append(row)
    p95s = {
        key[1]: percentile(bins, 0.95)
        for key, bins in histograms(scope, ("task_name",), (DURATION,)).items()
    }
    out = []
    for task, rows in grouped.items():
        completed, failures = _count(rows, is_completed), _count(rows, is_failed)
        successful = _count(rows, is_successful)
        timed = _total(rows, "duration_count")
        out.append(
            {
                "task_name": task,
                "total": _total(rows, "jobs"),
                "failures": failures,
                "successful": successful,
                "completed": completed,
                "failure_rate": outcome_rate(failures, successful, failures),
                "avg_duration_ms": int_or_none(
                    _total(rows, "duration_sum") / timed if timed else None
                ),
                "p95_duration_ms": int_or_none(p95s.get(task)),
                "avg_retries": _total([r for r in rows if is_completed(r)], "retries_sum")
                / completed
                if completed
                else None,
            }
        )
    return out


def order_rows(rows: list[dict[str, Any]], field: str, descending: bool) -> list[dict[str, Any]]:
    """Ordered as the grouped SQL orders: by ``field`` (NULLs last), then by task name."""
    rows = sorted(rows, key=lambda r: r["task_name"])
    present = [r for r in rows if r[field] is not None]
    missing = [r for r in rows if r[field] is None]
    # A stable sort, reversed or not, keeps the task-name order among equal values.
    present.sort(key=lambda r: r[field], reverse=descending)
    return present + missing


def overview(scope: Scope, recent: Scope) -> dict[str, Any]:
    """:func:`rearq_tasks.queries.stats.overview` of a scope and its recent part."""
    by_queue: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for row in records(scope, ("queue_name", "status")):
        by_queue[row["queue_name"]] = by_queue.get(row["queue_name"], 0) + row["jobs"]
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["jobs"]
    queues: dict[str, int] = {}
    for row in records(recent, ("queue_name", "status", "outcome")):
        queues[row["queue_name"]] = queues.get(row["queue_name"], 0) + (
            row["jobs"] if is_failed(row) else 0
        )
    return {
        "total_tasks": sum(by_queue.values()),
        "active_queues": sorted(queues),
        "recent_failures": sum(queues.values()),
        "tasks_by_queue": dict(sorted(by_queue.items())),
        "tasks_by_status": dict(sorted(by_status.items())),
    }


def timeline_counts(
    scope: Scope,
    origin: dt.datetime,
    index_of: Callable[[int], int | None],
    coarsest: int = QUARTER,
) -> dict[int, tuple[int, int, int, float | None]]:
    """Bucket index → (total, successful, failed, avg duration), from rollup buckets no
    coarser than ``coarsest`` grouped into whole hours from ``origin`` (``index_of`` maps an
    hour to its bucket). ``coarsest`` must be a span whose buckets each fall in one of the
    timeline's buckets."""
    sums: dict[int, list[int]] = {}
    rows = records(scope, ("hour", "status", "outcome"), coarsest=coarsest, hours_from=origin)
    for row in rows:
        index = index_of(row["hour"])
        if index is None:
            continue
        acc = sums.setdefault(index, [0, 0, 0, 0, 0])
        acc[0] += row["jobs"]
        acc[1] += row["jobs"] if is_successful(row) else 0
        acc[2] += row["jobs"] if is_failed(row) else 0
        acc[3] += row["duration_count"]
        acc[4] += row["duration_sum"]
    return {
        index: (total, ok, failed, duration / timed if timed else None)
        for index, (total, ok, failed, timed, duration) in sums.items()
    }


def retry_rows(scope: Scope) -> list[dict[str, Any]]:
    """Per task over completed jobs: completed, retried, recovered, retry share, mean attempts."""
    grouped: dict[str, list[Record]] = {}
    for row in records(scope, ("task_name", "status", "outcome"), terminal_only=True):
        if is_completed(row):
            grouped.setdefault(row["task_name"], []).append(row)
    out = []
    for task, rows in grouped.items():
        completed, retried = _total(rows, "jobs"), _total(rows, "retried")
        out.append(
            {
                "task_name": task,
                "completed": completed,
                "retried": retried,
                "recovered": _count(rows, is_successful, "retried"),
                "retry_share": retried * 100.0 / completed,
                "mean_attempts": _total(rows, "attempts_sum") / completed,
            }
        )
    return out
