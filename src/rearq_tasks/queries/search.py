"""The API's ``search`` parameter and "contains" look-ups on the short text columns.

``icontains`` on a column compiles to ``UPPER(col) LIKE '%…%'``, which no b-tree serves:
at a million rows the count walks the table. Task, queue and worker names are few, so on
PostgreSQL a term is first resolved against the column's distinct values (a loose index
scan, :mod:`rearq_tasks.queries.distinct`: one index probe per distinct value) and the
rows are then matched with ``IN (…)``, which the existing indexes and the planner's
statistics handle well. ``error_message`` is free text: it keeps ``icontains``, served by
the pg_trgm index of migration 0002 when the extension is available. Other databases use
``icontains`` throughout.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Q, QuerySet

from rearq_tasks.models import TaskLog
from rearq_tasks.queries.distinct import distinct_values

NAME_FIELDS: tuple[str, ...] = ("task_name", "queue_name", "worker_id")
TEXT_FIELDS: tuple[str, ...] = ("error_message",)
MAX_TERM_LENGTH = 200


def resolves_names(using: str) -> bool:
    return connections[using].vendor == "postgresql"


def contains_q(field: str, term: str, using: str = "default") -> Q:
    """Rows whose ``field`` contains ``term`` case-insensitively."""
    if field in NAME_FIELDS and resolves_names(using):
        needle = term.upper()
        names = [v for v in distinct_values(field, using=using) if needle in v.upper()]
        return Q(**{f"{field}__in": names})
    return Q(**{f"{field}__icontains": term})


def search_q(term: str, using: str = "default") -> Q:
    """A job id equal to ``term``, or a task, queue, worker or error containing it."""
    q = Q(job_id=term)
    for field in (*NAME_FIELDS, *TEXT_FIELDS):
        q |= contains_q(field, term, using)
    return q


def words_q(term: str, using: str = "default") -> Q:
    """The plain words of a search (the first ``MAX_TERM_LENGTH`` characters)."""
    term = term.strip()[:MAX_TERM_LENGTH].strip()
    return search_q(term, using) if term else Q()


def apply(queryset: QuerySet[TaskLog], term: str) -> QuerySet[TaskLog]:
    return queryset.filter(words_q(term, queryset.db))
