"""Bulk operations from the API: ``POST logs/bulk/`` and ``GET operations/{id}/``.

The body's ``filters`` are the list endpoint's query parameters, validated by the very same
:class:`~rearq_tasks.api.filters.TaskLogFilterSet` (a bad one is a 400 naming it). They are
frozen before the operation is stored: ``period_hours`` becomes an absolute
``enqueued_after``, so the set does not slide while the operation runs. The operation runs
in the background (:mod:`rearq_tasks.queue.operations`); the request only counts and stores.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request

from rearq_tasks.api.filters import TaskLogFilterSet
from rearq_tasks.audit import redacted_filters
from rearq_tasks.models import TaskLog, TaskLogQuerySet
from rearq_tasks.operation_models import ACTION_PERMISSIONS, BULK_ACTIONS, TaskOperation
from rearq_tasks.queue import operations

SCOPE = "api"
# List parameters that page or order the list: meaningless for a set, accepted and dropped.
PAGING = ("page", "page_size", "ordering", "cursor", "format")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_text(item) for item in value)
    return str(value)


def _filterset(filters: dict[str, Any]) -> TaskLogFilterSet:
    return TaskLogFilterSet(data=filters, queryset=TaskLog.objects.all())


def freeze(raw: Any) -> dict[str, str]:
    """Validate ``raw`` like the list's query string; the stored, time-independent filter."""
    if not isinstance(raw, dict):
        raise ValidationError({"filters": ["Expected an object of the list's query parameters."]})
    known = set(TaskLogFilterSet.base_filters)
    unknown = sorted(str(key) for key in raw if key not in known and key not in PAGING)
    if unknown:
        raise ValidationError({"filters": {key: ["Unknown filter."] for key in unknown}})
    filters = {
        key: _text(value)
        for key, value in raw.items()
        if key not in PAGING and value is not None and value != ""
    }
    filterset = _filterset(filters)
    if not filterset.is_valid():
        raise ValidationError({"filters": filterset.errors})
    hours = filterset.form.cleaned_data.get("period_hours")
    if hours:
        since = timezone.now() - dt.timedelta(hours=hours)
        del filters["period_hours"]
        after = filterset.form.cleaned_data.get("enqueued_after")
        filters["enqueued_after"] = max(since, after).isoformat() if after else since.isoformat()
    return filters


def api_scope(filters: dict[str, Any], user: Any = None) -> TaskLogQuerySet:
    """The rows a stored API filter matches (it was validated when stored)."""
    filterset = _filterset(filters)
    if not filterset.is_valid():
        raise LookupError(f"the stored filter is no longer valid: {dict(filterset.errors)}")
    return filterset.qs


operations.register_scope(SCOPE, api_scope)


class BulkRequest(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(BULK_ACTIONS))
    filters = serializers.DictField(default=dict)
    dry_run = serializers.BooleanField(default=False)


class OperationSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    filters = serializers.SerializerMethodField()
    user = serializers.IntegerField(source="user_id", read_only=True, allow_null=True)

    class Meta:
        model = TaskOperation
        fields = (
            "id", "action", "state", "filters", "bound", "cursor", "matched", "done",
            "skipped", "failed", "skip_reasons", "errors", "message", "progress", "source",
            "user", "created_at", "updated_at", "finished_at",
        )  # fmt: skip
        read_only_fields = fields

    def get_filters(self, operation: TaskOperation) -> dict[str, Any] | None:
        """Shown redacted, like the audit entry: the running operation needs the real ones."""
        return redacted_filters(operation.filters)


class BulkAnswer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    action = serializers.CharField()
    matched = serializers.IntegerField()
    allowed = serializers.IntegerField(required=False)
    operation_id = serializers.IntegerField(required=False)
    url = serializers.CharField(required=False)
    sample = serializers.ListField(child=serializers.DictField(), required=False)


def start(request: Request, operation_url: Any) -> tuple[dict[str, Any], int]:
    """Validate, check the action's permission, then preview (dry run) or store the operation.

    Returns the answer and its status (200 for a dry run, 202 once stored).
    """
    params = BulkRequest(data=request.data)
    params.is_valid(raise_exception=True)
    action = params.validated_data["action"]
    if not request.user.has_perm(ACTION_PERMISSIONS[action]):
        raise PermissionDenied(f"You may not {action} jobs ({ACTION_PERMISSIONS[action]}).")
    filters = freeze(params.validated_data["filters"])
    if params.validated_data["dry_run"]:
        found = operations.preview(action, SCOPE, filters)
        return {"dry_run": True, "action": action, **found}, 200
    operation = operations.create(action, SCOPE, filters, source="api", request=request)
    answer = {
        "dry_run": False,
        "action": action,
        "operation_id": operation.pk,
        "matched": operation.matched,
        "url": operation_url(operation.pk),
    }
    return answer, 202
