"""The workers page in the API: ``GET workers/`` and ``POST workers/{name}/repair/``.

The page is assembled by :func:`rearq_tasks.queue.workers.workers_page`, the same function
the admin's page calls. The repair needs ``tasks.cancel_tasklog`` (403 without it; CSRF
applies to session-authenticated calls) and is refused with 409 while the worker is alive.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from rearq_tasks.access import ConfiguredAccessMixin
from rearq_tasks.api.views import BAD_REQUEST, NOT_FOUND, documented
from rearq_tasks.operation_models import ACTION_PERMISSIONS, Action
from rearq_tasks.queries.workers import JOBS_PER_WORKER
from rearq_tasks.queue import workers
from rearq_tasks.queue.loop import ReArqUnavailable


class WorkersParams(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=workers.STATES, required=False, help_text="Only alive, dead or flagged workers."
    )
    search = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=workers.MAX_NAME_LENGTH,
        help_text="Part of the worker's name.",
    )  # fmt: skip
    seen_hours = serializers.IntegerField(
        required=False, default=workers.SEEN_HOURS, min_value=1, max_value=24 * 30,
        help_text="Dead workers whose last heartbeat is older are left out (unless flagged).",
    )  # fmt: skip
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=100_000)
    page_size = serializers.IntegerField(
        required=False, default=workers.PAGE_SIZE, min_value=1, max_value=workers.MAX_PAGE_SIZE
    )
    jobs_per_worker = serializers.IntegerField(
        required=False, default=JOBS_PER_WORKER, min_value=0, max_value=100,
        help_text="Running jobs listed per worker (its `running` count is always complete).",
    )  # fmt: skip


class WorkerJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.CharField()
    task_name = serializers.CharField()
    queue_name = serializers.CharField()
    start_time = serializers.DateTimeField(allow_null=True)
    enqueue_time = serializers.DateTimeField()
    url = serializers.CharField(help_text="The job in the API.")


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    group = serializers.CharField(allow_null=True)
    consumer = serializers.CharField(allow_null=True)
    is_timer = serializers.BooleanField()
    queues = serializers.ListField(child=serializers.CharField())
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    heartbeat_age_seconds = serializers.FloatField(allow_null=True)
    alive = serializers.BooleanField(allow_null=True, help_text="null: Redis is unreachable.")
    running = serializers.IntegerField()
    running_jobs = WorkerJobSerializer(many=True)
    finished_last_hour = serializers.IntegerField(help_text="Any outcome, failures included.")
    failed_last_hour = serializers.IntegerField()
    flagged = serializers.BooleanField(help_text="Dead, with jobs still in progress.")
    repair_url = serializers.CharField(allow_null=True)


class WorkersSummarySerializer(serializers.Serializer):
    workers = serializers.IntegerField()
    alive = serializers.IntegerField()
    dead = serializers.IntegerField()
    flagged = serializers.IntegerField()
    running = serializers.IntegerField()
    unassigned_running = serializers.IntegerField(
        help_text="Jobs in progress no worker has started yet (fetched, waiting for a slot)."
    )
    stale_after_seconds = serializers.IntegerField()
    period_minutes = serializers.IntegerField()
    redis_error = serializers.CharField(allow_null=True)


class WorkersPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    page_size = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    summary = WorkersSummarySerializer()
    results = WorkerSerializer(many=True)
    generated_at = serializers.DateTimeField()


class RepairAnswer(serializers.Serializer):
    worker = serializers.CharField()
    matched = serializers.IntegerField(help_text="Its jobs in progress.")
    synced = serializers.IntegerField(help_text="Rows updated from ReArq's tables.")
    lost = serializers.IntegerField(help_text="Jobs failed as lost.")
    skipped = serializers.IntegerField()


def _page_url(request: Request, page: int | None) -> str | None:
    if page is None:
        return None
    query = request.query_params.copy()
    query["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


class OnePageSchema(AutoSchema):
    """The workers list answers one object (a page with a summary), not an array."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


class WorkerViewSet(ConfiguredAccessMixin, viewsets.ViewSet):
    """ReArq workers: heartbeats, liveness, running jobs; repair of a dead one's jobs."""

    schema = AutoSchema()
    lookup_field = "name"
    lookup_value_regex = "[^/]{1,200}"

    @documented(
        schema=OnePageSchema,
        parameters=[WorkersParams],
        responses={200: WorkersPageSerializer, 400: BAD_REQUEST},
        filters=False,
    )
    def list(self, request: Request) -> Response:
        """Every worker seen recently (flagged first), with its figures; see docs/api.md."""
        params = WorkersParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = workers.workers_page(workers.Query(**params.validated_data))
        # One reverse() for every link: "<...>/logs/0/" with the id put in its place.
        head, _zero, tail = reverse(
            "rearq_tasks:tasklog-detail", args=[0], request=request
        ).rpartition("/0/")
        for row in data["results"]:
            for job in row["running_jobs"]:
                job["url"] = f"{head}/{job['id']}/{tail}"
            row["repair_url"] = (
                reverse("rearq_tasks:worker-repair", args=[row["name"]], request=request)
                if row["flagged"]
                else None
            )
        page, pages = data["page"], data["pages"]
        data["next"] = _page_url(request, page + 1 if page < pages else None)
        data["previous"] = _page_url(request, page - 1 if page > 1 else None)
        return Response(WorkersPageSerializer(data).data)

    @documented(
        request=None,
        responses={
            200: RepairAnswer,
            404: NOT_FOUND,
            409: OpenApiResponse(description="The worker is alive, or Redis cannot tell."),
            503: OpenApiResponse(description="ReArq's database or Redis is unreachable."),
        },
        filters=False,
    )
    @action(detail=True, methods=["post"], schema=AutoSchema)
    def repair(self, request: Request, name: str | None = None) -> Response:
        """Fail as lost the jobs a dead worker left in progress (after reading ReArq's tables
        again); needs tasks.cancel_tasklog. One audit entry."""
        permission = ACTION_PERMISSIONS[Action.REPAIR]
        if not request.user.has_perm(permission):
            raise PermissionDenied(f"You may not repair a worker's jobs ({permission}).")
        try:
            report = workers.repair_worker(str(name), source="api", request=request)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        except workers.RepairRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except ReArqUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(RepairAnswer(report.as_dict()).data)
