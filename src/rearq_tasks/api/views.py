"""The read-only TaskLog API: list, detail, stats, timeline, overview, tasks and related.

Access is decided per request by ``API_AUTHENTICATION_CLASSES`` and
``API_PERMISSION_CLASSES`` (staff only by default). Aggregates come from
:mod:`rearq_tasks.queries.stats` through the queryset vocabulary.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.http import StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.serializers import BaseSerializer

from rearq_tasks import queries
from rearq_tasks.access import ConfiguredAccessMixin
from rearq_tasks.api import bulk
from rearq_tasks.api.filters import TaskLogFilterSet
from rearq_tasks.api.pagination import TaskLogPagination
from rearq_tasks.api.serializers import (
    LIST_COLUMNS,
    ExportParams,
    OverviewSerializer,
    PeriodParams,
    RetriesParams,
    RetryAggregateSerializer,
    StatsSerializer,
    TaskAggregateSerializer,
    TaskEventSerializer,
    TaskLogDetailSerializer,
    TaskLogListSerializer,
    TasksParams,
    TimelineBucketSerializer,
    TimelineParams,
)
from rearq_tasks.conf import conf
from rearq_tasks.models import TaskLog, TaskLogQuerySet
from rearq_tasks.operation_models import ACTION_PERMISSIONS, Source, TaskOperation
from rearq_tasks.queries import export
from rearq_tasks.queries.history import job_history
from rearq_tasks.queue import operations

BAD_REQUEST = OpenApiResponse(description="A query parameter is invalid: {parameter: [messages]}.")
NOT_FOUND = OpenApiResponse(description="No such row, or a page past the end.")
DENIED = {
    401: OpenApiResponse(
        description="Not authenticated (with an authentication class that says so)."
    ),
    403: OpenApiResponse(description="Not authenticated, or not allowed (staff only by default)."),
}


def _params(serializer_class: type[BaseSerializer], request: Request) -> dict[str, Any]:
    params = serializer_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def _scoped(params: dict[str, Any]) -> queries.Scope:
    """The period, task and queue of an aggregate request: all served by the rollups."""
    return queries.Scope.period(params["period_hours"], params["task_name"], params["queue_name"])


class ExportNegotiation(BaseContentNegotiation):
    """``?format=`` names the export's format, not a DRF renderer; errors are JSON."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: Any = None):
        return JSONRenderer(), JSONRenderer.media_type

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None


def documented(schema: type[AutoSchema] = AutoSchema, **kwargs: Any) -> Any:
    """``extend_schema`` based on drf-spectacular's AutoSchema whatever DEFAULT_SCHEMA_CLASS is
    (or on ``schema``, a subclass of it)."""

    kwargs["responses"] = {**kwargs["responses"], **DENIED}

    def decorate(view_method: Any) -> Any:
        if "schema" not in getattr(view_method, "kwargs", {}):
            view_method.schema = schema
        return extend_schema(**kwargs)(view_method)

    return decorate


class TaskLogViewSet(ConfiguredAccessMixin, viewsets.ReadOnlyModelViewSet):
    """ReArq jobs recorded as TaskLog rows, newest enqueued first."""

    schema = AutoSchema()
    lookup_value_regex = "[0-9]{1,18}"  # a bigint; longer ids are a 404, not an overflow
    filter_backends = [DjangoFilterBackend]
    filterset_class = TaskLogFilterSet
    pagination_class = TaskLogPagination

    def get_queryset(self) -> TaskLogQuerySet:
        qs = TaskLog.objects.all()
        if self.action == "list":
            return qs.only(*LIST_COLUMNS)
        return qs.select_related("user")

    @documented(responses={200: TaskLogListSerializer(many=True), 400: BAD_REQUEST, 404: NOT_FOUND})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Rows newest enqueued first, filtered, searched and ordered; see docs/api.md."""
        return super().list(request, *args, **kwargs)

    @documented(responses={200: TaskLogDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every field of one row."""
        return super().retrieve(request, *args, **kwargs)

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action in ("list", "related"):
            return TaskLogListSerializer
        return TaskLogDetailSerializer

    @documented(
        parameters=[ExportParams],
        filters=True,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="CSV: a header line, then one row per job."
            ),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines: one object per job."
            ),
            400: BAD_REQUEST,
        },
    )
    @action(
        detail=False,
        pagination_class=None,
        content_negotiation_class=ExportNegotiation,
        schema=AutoSchema,
    )
    def export(self, request: Request) -> StreamingHttpResponse:
        """Every row the same filters and search select (no paging), streamed as CSV or
        JSON Lines; see docs/api.md."""
        fmt = request.query_params.get("format", "csv")
        if fmt not in export.FORMATS:
            raise ValidationError({"format": [f"One of: {', '.join(export.FORMATS)}."]})
        queryset = self.filter_queryset(TaskLog.objects.all())
        filters = {k: v for k, v in request.query_params.items() if k != "format"}
        chunks = export.audited_stream(
            queryset, fmt, source=Source.API, request=request, filters=filters
        )
        response = StreamingHttpResponse(chunks, content_type=export.FORMATS[fmt][0])
        response["Content-Disposition"] = f'attachment; filename="{export.filename(fmt)}"'
        return response

    @documented(
        parameters=[PeriodParams],
        responses={200: StatsSerializer, 400: BAD_REQUEST},
        filters=False,
    )
    @action(detail=False, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def stats(self, request: Request) -> Response:
        """Counts, rates, average and percentile durations and queue waits of a period."""
        params = _params(PeriodParams, request)
        data = queries.summary(_scoped(params))
        data["period_hours"] = params["period_hours"]
        return Response(data)

    @documented(
        parameters=[TimelineParams],
        responses={200: TimelineBucketSerializer(many=True), 400: BAD_REQUEST},
        filters=False,
    )
    @action(detail=False, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def timeline(self, request: Request) -> Response:
        """Every hour or day of the period (zeros when empty), in the project's time zone."""
        params = _params(TimelineParams, request)
        scope = queries.Scope(task_name=params["task_name"] or None)
        scope = scope.narrowed(queue_name=params["queue_name"] or None)
        return Response(queries.timeline(scope, params["period_hours"], params["interval"]))

    @documented(responses={200: OverviewSerializer}, filters=False)
    @action(detail=False, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def overview(self, request: Request) -> Response:
        """Totals by queue and status; active queues and failures of the last RECENT_HOURS."""
        data = queries.overview(queries.Scope(), recent_hours=conf.RECENT_HOURS)
        data["recent_hours"] = conf.RECENT_HOURS
        return Response(data)

    @documented(
        parameters=[TasksParams],
        responses={200: TaskAggregateSerializer(many=True), 400: BAD_REQUEST},
        filters=False,
    )
    @action(detail=False, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def tasks(self, request: Request) -> Response:
        """Per task name: count, failures, failure rate, avg/p95 duration, latest error."""
        params = _params(TasksParams, request)
        rows = queries.by_task(_scoped(params), order_by=params["ordering"], limit=params["limit"])
        return Response(rows)

    @documented(
        parameters=[RetriesParams],
        responses={200: RetryAggregateSerializer(many=True), 400: BAD_REQUEST},
        filters=False,
    )
    @action(detail=False, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def retries(self, request: Request) -> Response:
        """Per task: share of completed jobs that needed a retry, mean attempts, recovered
        jobs and the most common first-attempt errors."""
        params = _params(RetriesParams, request)
        rows = queries.retries_by_task(
            _scoped(params),
            order_by=params["ordering"],
            limit=params["limit"],
            errors=params["errors"],
        )
        return Response(rows)

    @documented(
        request=bulk.BulkRequest,
        responses={200: bulk.BulkAnswer, 202: bulk.BulkAnswer, 400: BAD_REQUEST},
        filters=False,
    )
    @action(
        detail=False, methods=["post"], pagination_class=None, filter_backends=[],
        schema=AutoSchema,
    )  # fmt: skip
    def bulk(self, request: Request) -> Response:
        """Retry, cancel or delete every job the filters match, in the background (202 with
        the operation's id); ``dry_run`` only counts (200). See docs/api.md."""
        answer, status = bulk.start(
            request, lambda pk: reverse("rearq_tasks:operation-detail", args=[pk], request=request)
        )
        return Response(answer, status=status)

    @documented(responses={200: TaskEventSerializer(many=True), 404: NOT_FOUND}, filters=False)
    @action(detail=True, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def events(self, request: Request, pk: str | None = None) -> Response:
        """This job's history: every event of every attempt, in order, with queue waits."""
        log = self.get_object()
        return Response(TaskEventSerializer(_history(log), many=True).data)

    @documented(responses={200: TaskLogListSerializer(many=True), 404: NOT_FOUND}, filters=False)
    @action(detail=True, pagination_class=None, filter_backends=[], schema=AutoSchema)
    def related(self, request: Request, pk: str | None = None) -> Response:
        """Other rows of the same task, nearest in enqueue time first, never the row itself
        (at most RELATED_LIMIT). The seed's contract: a JSON list; attempts are in events/.

        Two index-served reads on ``(task_name, -enqueue_time)``, the rows just before and
        just after, so it costs the same at any table size.
        """
        log = self.get_object()
        limit = conf.RELATED_LIMIT
        same = (
            TaskLog.objects.filter(task_name=log.task_name).exclude(pk=log.pk).only(*LIST_COLUMNS)
        )
        before = list(
            same.filter(enqueue_time__lte=log.enqueue_time).order_by(
                F("enqueue_time").desc(), "-id"
            )[:limit]
        )
        after = list(
            same.filter(enqueue_time__gt=log.enqueue_time).order_by("enqueue_time", "id")[:limit]
        )
        nearest = sorted(
            before + after, key=lambda row: (abs(row.enqueue_time - log.enqueue_time), row.pk)
        )
        return Response(TaskLogListSerializer(nearest[:limit], many=True).data)


class OperationViewSet(ConfiguredAccessMixin, viewsets.ReadOnlyModelViewSet):
    """Bulk operations: state and progress (newest first)."""

    schema = AutoSchema()
    lookup_value_regex = "[0-9]{1,18}"
    serializer_class = bulk.OperationSerializer
    queryset = TaskOperation.objects.all()

    @documented(responses={200: bulk.OperationSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One operation: state, counters, skip reasons and progress (0..1)."""
        return super().retrieve(request, *args, **kwargs)

    @documented(responses={200: bulk.OperationSerializer, 404: NOT_FOUND}, request=None)
    @action(detail=True, methods=["post"], schema=AutoSchema)
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Stop the operation where it is (needs the permission of its action)."""
        operation = self.get_object()
        if not request.user.has_perm(ACTION_PERMISSIONS[operation.action]):
            raise PermissionDenied(f"You may not {operation.action} jobs.")
        operations.cancel(operation)
        operation.refresh_from_db()
        return Response(bulk.OperationSerializer(operation).data)


def _history(log: TaskLog) -> list[Any]:
    """One query: the job's events in order, ``started`` ones with their queue wait."""
    return job_history(log)


def _own_viewset(cls: Any) -> bool:
    return (
        isinstance(cls, type)
        and issubclass(cls, viewsets.ViewSetMixin)
        and cls.__module__.startswith("rearq_tasks.api.")
    )


def keep_only_this_api(endpoints: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """drf-spectacular hook: the schema documents this app's endpoints, not the project's."""
    return [
        endpoint
        for endpoint in endpoints
        # This package's viewsets (api.workers' too, which imports this module).
        if _own_viewset(getattr(endpoint[3], "cls", object))
    ]


NO_NUL = r"^[^\u0000]*$"


def strings_without_nul(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular hook: text parameters cannot hold NUL (a 400: databases refuse it)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                target = schema.get("items", schema) if schema.get("type") == "array" else schema
                if (
                    target.get("type") == "string"
                    and "enum" not in target
                    and "format" not in target
                    and "pattern" not in target  # e.g. the row id's digits
                ):
                    target["pattern"] = NO_NUL
    return result


class SchemaView(ConfiguredAccessMixin, SpectacularAPIView):
    """The OpenAPI 3 document of this API (same access rules as the API)."""

    custom_settings = {
        "TITLE": "django-rearq-tasks API",
        "DESCRIPTION": "Read-only access to the TaskLog record of ReArq jobs.",
        "PREPROCESSING_HOOKS": ["rearq_tasks.api.views.keep_only_this_api"],
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "rearq_tasks.api.views.strings_without_nul",
        ],
    }
