"""The audit log: one entry per retry, cancel, delete or export, single or bulk.

``record(...)`` is the one way to write an entry; surfaces call it after they acted (a bulk
operation's entry is written when it is created and its counts follow each chunk, in the
chunk's own transaction). A refused request writes nothing: no entry claims a success.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from django.db.models import Q
from django.utils import timezone

from rearq_tasks.conf import conf
from rearq_tasks.operation_models import (
    ACTIVE_STATES,
    Action,
    AuditEntry,
    Source,
    TaskOperation,
)
from rearq_tasks.redaction import compile_patterns, redact, redact_text

# An entry lists at most this many job ids (a bulk action records its filter instead).
MAX_JOB_IDS = 1000


def client_ip(request: Any) -> str | None:
    """The peer address Django saw (REMOTE_ADDR); a proxy must set it (docs/operations.md)."""
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR") or None


def redacted_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The filters as an audit entry shows them: a search for ``kwargs={"api_key": ...}`` or
    ``kwargs.password:...`` must not put the credential on the audit page."""
    if not filters:
        return filters
    pattern = compile_patterns(conf.redact_patterns)
    shown: dict[str, Any] = {}
    for key, value in filters.items():
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            try:
                value = json.dumps(redact(json.loads(value), pattern), ensure_ascii=False)
            except ValueError:
                value = redact_text(value, pattern)
        elif isinstance(value, str):
            value = redact_text(value, pattern)
        else:
            value = redact(value, pattern)
        shown[key] = value
    return shown


def record(
    action: str,
    *,
    source: str,
    request: Any = None,
    user: Any = None,
    job_ids: Iterable[str] = (),
    filters: dict[str, Any] | None = None,
    operation: TaskOperation | None = None,
    matched: int = 0,
    done: int = 0,
    skipped: int = 0,
    failed: int = 0,
) -> AuditEntry:
    """Write one audit entry; ``user``/IP default to the request's."""
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    if source not in Source.values:
        raise ValueError(f"unknown audit source {source!r}")
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return AuditEntry.objects.create(
        action=action,
        source=source,
        user=user,
        username=user.get_username() if user is not None else "",
        ip=client_ip(request),
        job_ids=list(job_ids)[:MAX_JOB_IDS],
        filters=redacted_filters(filters),
        operation=operation,
        matched=matched,
        done=done,
        skipped=skipped,
        failed=failed,
    )


def expired_q(days: int | None = None, now: dt.datetime | None = None) -> Q:
    """Entries older than ``AUDIT_RETENTION_DAYS`` (or ``days``)."""
    days = conf.AUDIT_RETENTION_DAYS if days is None else days
    return Q(created_at__lt=(now or timezone.now()) - dt.timedelta(days=days))


def purge(days: int | None = None, batch_size: int = 1000, dry_run: bool = False) -> int:
    """Delete entries older than ``AUDIT_RETENTION_DAYS`` in bounded batches (by id), and
    finished operations as old; how many entries went (or would go, with ``dry_run``)."""
    expired = AuditEntry.objects.filter(expired_q(days))
    if dry_run:
        return expired.count()
    deleted = 0
    while ids := list(expired.order_by("id").values_list("id", flat=True)[:batch_size]):
        deleted += AuditEntry.objects.filter(id__in=ids).delete()[0]
    old_operations = TaskOperation.objects.filter(expired_q(days)).exclude(state__in=ACTIVE_STATES)
    while ids := list(old_operations.order_by("id").values_list("id", flat=True)[:batch_size]):
        TaskOperation.objects.filter(id__in=ids).delete()
    return deleted
