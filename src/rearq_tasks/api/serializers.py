"""Serializers of the TaskLog API: a narrow one for lists, a complete one for a detail."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from rearq_tasks.conf import conf
from rearq_tasks.models import TaskEvent, TaskLog

LIST_FIELDS: tuple[str, ...] = (
    "id", "job_id", "task_name", "queue_name", "status", "status_display", "success",
    "job_retries", "duration_ms", "enqueue_time", "start_time", "finish_time",
)  # fmt: skip
DETAIL_FIELDS: tuple[str, ...] = (
    "id", "job_id", "task_name", "queue_name", "status", "status_display", "success",
    "args", "kwargs", "result", "error_message", "duration_ms", "duration_seconds",
    "job_retry", "job_retries", "job_retry_after", "worker_id", "enqueue_time",
    "expire_time", "start_time", "finish_time", "created_at", "updated_at", "user",
    "user_display", "retry_of",
)  # fmt: skip
EVENT_FIELDS: tuple[str, ...] = (
    "id", "event", "event_display", "attempt", "timestamp", "worker_id", "duration_ms",
    "queue_wait_ms", "error_message", "traceback",
)  # fmt: skip
# Columns a list page reads: the wide text/JSON columns stay on disk.
LIST_COLUMNS: tuple[str, ...] = tuple(f for f in LIST_FIELDS if f != "status_display")


class TaskLogListSerializer(serializers.ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = TaskLog
        fields = LIST_FIELDS
        read_only_fields = LIST_FIELDS


class TaskLogDetailSerializer(TaskLogListSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    user_display = serializers.SerializerMethodField()

    class Meta:
        model = TaskLog
        fields = DETAIL_FIELDS
        read_only_fields = DETAIL_FIELDS

    def get_user_display(self, obj: TaskLog) -> str | None:
        """``"username (email)"``, or the username alone when there is no email."""
        user: Any = obj.user
        if user is None:
            return None
        username = user.get_username()
        email = getattr(user, "email", "")
        return f"{username} ({email})" if email else username


class TaskEventSerializer(serializers.ModelSerializer):
    """One event of a job's history; ``queue_wait_ms`` is set on ``started`` events."""

    id = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Null for an event derived from the job's row instead of stored: attempt 1's "
        "enqueued, and its started/succeeded while it runs or once it succeeded.",
    )
    event_display = serializers.CharField(source="get_event_display", read_only=True)
    queue_wait_ms = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="On a started event: ms since the job was enqueued (attempt 1) or since the "
        "previous attempt ended (a retry, its delay included).",
    )

    class Meta:
        model = TaskEvent
        fields = EVENT_FIELDS
        read_only_fields = EVENT_FIELDS


class FirstAttemptErrorSerializer(serializers.Serializer):
    error_message = serializers.CharField()
    count = serializers.IntegerField()


class RetryAggregateSerializer(serializers.Serializer):
    task_name = serializers.CharField()
    completed = serializers.IntegerField()
    retried = serializers.IntegerField(help_text="Completed jobs that needed at least one retry.")
    recovered = serializers.IntegerField(help_text="Retried jobs that then succeeded.")
    retry_share = serializers.FloatField(help_text="retried / completed × 100")
    mean_attempts = serializers.FloatField()
    first_attempt_errors = FirstAttemptErrorSerializer(many=True)


class StatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()
    in_progress = serializers.IntegerField(help_text="queued + in_progress")
    completed = serializers.IntegerField()
    success_rate = serializers.FloatField(help_text="successful / (successful + failed) × 100")
    failure_rate = serializers.FloatField(help_text="failed / (successful + failed) × 100")
    retry_rate = serializers.FloatField(help_text="retried / total × 100")
    avg_duration_ms = serializers.IntegerField()
    avg_duration_seconds = serializers.FloatField()
    p50_duration_ms = serializers.IntegerField(allow_null=True)
    p95_duration_ms = serializers.IntegerField(allow_null=True)
    p99_duration_ms = serializers.IntegerField(allow_null=True)
    avg_queue_wait_ms = serializers.IntegerField(allow_null=True)
    p95_queue_wait_ms = serializers.IntegerField(allow_null=True)
    period_hours = serializers.IntegerField()


class TimelineBucketSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    total = serializers.IntegerField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()
    avg_duration_ms = serializers.IntegerField()


class OverviewSerializer(serializers.Serializer):
    total_tasks = serializers.IntegerField()
    active_queues = serializers.ListField(child=serializers.CharField())
    recent_failures = serializers.IntegerField()
    tasks_by_queue = serializers.DictField(child=serializers.IntegerField())
    tasks_by_status = serializers.DictField(child=serializers.IntegerField())
    recent_hours = serializers.IntegerField()


class TaskAggregateSerializer(serializers.Serializer):
    task_name = serializers.CharField()
    total = serializers.IntegerField()
    failures = serializers.IntegerField()
    successful = serializers.IntegerField()
    completed = serializers.IntegerField()
    failure_rate = serializers.FloatField(help_text="failures / (successful + failures) × 100")
    avg_duration_ms = serializers.IntegerField(allow_null=True)
    p95_duration_ms = serializers.IntegerField(allow_null=True)
    latest_error = serializers.CharField(allow_null=True)


# --- query parameters of the actions (their errors name the parameter) -----------


def max_period_hours() -> int:
    """Aggregates read the rollups, kept STATS_RETENTION_DAYS: periods may reach that far."""
    return max(conf.MAX_PERIOD_HOURS, conf.STATS_RETENTION_DAYS * 24)


class PeriodParams(serializers.Serializer):
    period_hours = serializers.IntegerField(required=False, default=24, min_value=1)
    task_name = serializers.CharField(required=False, allow_blank=True, default="")
    queue_name = serializers.CharField(required=False, allow_blank=True, default="")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # MAX_PERIOD_HOURS is read per request so override_settings applies.
        self.fields["period_hours"] = serializers.IntegerField(
            required=False, default=24, min_value=1, max_value=max_period_hours()
        )


class TimelineParams(PeriodParams):
    interval = serializers.ChoiceField(choices=("hour", "day"), required=False, default="hour")


class TasksParams(PeriodParams):
    ordering = serializers.ChoiceField(
        choices=[f"{sign}{f}" for f in ("failures", "failure_rate", "total", "avg_duration_ms",
                                        "p95_duration_ms", "task_name") for sign in ("-", "")],
        required=False,
        default="-failures",
    )  # fmt: skip
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=200)


class RetriesParams(PeriodParams):
    ordering = serializers.ChoiceField(
        choices=[f"{sign}{f}" for f in ("retry_share", "retried", "mean_attempts", "completed")
                 for sign in ("-", "")],
        required=False,
        default="-retry_share",
    )  # fmt: skip
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=200)
    errors = serializers.IntegerField(required=False, default=3, min_value=0, max_value=20)


class ExportParams(serializers.Serializer):
    """The export's own parameter (the list's filters and search apply too)."""

    format = serializers.ChoiceField(choices=["csv", "jsonl"], default="csv", required=False)
