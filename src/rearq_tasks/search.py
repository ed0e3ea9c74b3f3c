"""The API's ``search`` parameter: one term over task name, queue, worker, error and job id.

Kept apart from the filters because its query shape is what decides its speed at a
million rows (see docs/performance.md).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from rearq_tasks.models import TaskLog

SEARCH_FIELDS: tuple[str, ...] = ("task_name", "queue_name", "worker_id", "error_message")
MAX_TERM_LENGTH = 200


def search_q(term: str) -> Q:
    """Rows whose text fields contain ``term`` (case-insensitive) or whose job id is ``term``."""
    q = Q(job_id=term)
    for field in SEARCH_FIELDS:
        q |= Q(**{f"{field}__icontains": term})
    return q


def apply(queryset: QuerySet[TaskLog], term: str) -> QuerySet[TaskLog]:
    term = term.strip()[:MAX_TERM_LENGTH]
    return queryset.filter(search_q(term)) if term else queryset
