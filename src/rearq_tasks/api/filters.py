"""Query-string filters of the TaskLog API.

Every filter is declared explicitly; status words reuse the named ``Q`` vocabulary of
:mod:`rearq_tasks.models`. Bad values fail form validation, which django-filter's DRF
backend turns into HTTP 400 ``{"<parameter>": ["<message>"]}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters as df
from django import forms
from django.core.validators import EMPTY_VALUES
from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from drf_spectacular.drainage import set_override
from rest_framework.exceptions import ValidationError

from rearq_tasks.api.fields import JSON_ARRAY, JSON_OBJECT, ContainmentField, SearchField
from rearq_tasks.conf import conf
from rearq_tasks.models import (
    CANCELED,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    RECOVERED,
    RETRIED,
    RUNNING,
    SUCCESSFUL,
    WAITING,
    WITH_ERROR,
    StatusChoices,
    TaskLog,
    attempts_min_q,
    since_q,
    stuck_q,
)
from rearq_tasks.queries import language, search
from rearq_tasks.queries.arguments import args_q, kwargs_q
from rearq_tasks.queries.expressions import queue_wait_ms
from rearq_tasks.queries.window import window_first

ORDERING_FIELDS: tuple[str, ...] = (
    "enqueue_time",
    "created_at",
    "start_time",
    "finish_time",
    "duration_ms",
    "job_retries",
    "task_name",
    "queue_name",
    "status",
    "id",
)
HAS_RESULT = Q(result__isnull=False) & ~Q(result="")


class CharInFilter(df.BaseInFilter, df.CharFilter):
    pass


class StrictBooleanField(forms.Field):
    """``true``/``false`` (also 1/0, yes/no); anything else is an error, not "no filter"."""

    widget = forms.TextInput
    default_error_messages = {"invalid": _("Enter true or false.")}
    values = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        try:
            return self.values[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def validate(self, value: Any) -> None:
        if value is None and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")


class BooleanFilter(df.BooleanFilter):
    field_class = StrictBooleanField


class UTCIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC: an offset the database cannot store is a 400, not a 500."""

    def to_python(self, value: Any) -> dt.datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class DateTimeFilter(df.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


def typed(filter_: Any, schema: dict[str, Any]) -> Any:
    """Tell drf-spectacular the parameter's exact schema (method filters have no model type)."""
    return set_override(filter_, "field", schema)


BOOLEAN = {"type": "boolean"}
# The largest value a count filter accepts: every database binds a signed 64-bit integer.
MAX_INTEGER = 2**63 - 1
COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}


def count_filter(field_name: str | None = None, lookup_expr: str = "exact", **kwargs: Any) -> Any:
    """A whole number ≥ 0 (``-1`` or ``1.5`` is a 400, not an empty page)."""
    if field_name:
        kwargs["field_name"] = field_name
    return typed(df.NumberFilter(lookup_expr=lookup_expr, **kwargs), COUNT)


class NullsLastOrderingFilter(df.OrderingFilter):
    """Rows without a value (no duration yet, not started) sort last in both directions.

    Ties are broken by newest first, then id, so pages are stable on every database.
    """

    TIEBREAK = ("-enqueue_time", "-id")

    def filter(self, qs: QuerySet[TaskLog], value: Any) -> QuerySet[TaskLog]:
        if value in EMPTY_VALUES:
            return qs
        return qs.order_by(*(self.get_ordering_value(param) for param in value), *self.TIEBREAK)

    def get_ordering_value(self, param: str) -> Any:
        descending = param.startswith("-")
        name = self.param_map[param.lstrip("-")]
        if not TaskLog._meta.get_field(name).null:
            return f"-{name}" if descending else name
        return F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True)


class StatusInFilter(df.BaseInFilter, df.ChoiceFilter):
    pass


def _q_filter(q: Q, help_text: str) -> df.BooleanFilter:
    """``true`` keeps the rows matching ``q``; ``false`` keeps the others."""

    def apply(queryset: QuerySet[TaskLog], name: str, value: bool | None) -> QuerySet[TaskLog]:
        if value is None:
            return queryset
        return queryset.filter(q) if value else queryset.exclude(q)

    return typed(BooleanFilter(method=apply, help_text=help_text), BOOLEAN)


class TaskLogFilterSet(df.FilterSet):
    """All list filters; see docs/api.md for the table."""

    task_name = df.CharFilter(
        method="filter_contains", help_text=_("Task name contains (case-insensitive).")
    )
    task_name_exact = df.CharFilter(field_name="task_name", help_text=_("Task name equals."))
    task_name_in = CharInFilter(
        field_name="task_name", help_text=_("Task name is one of (comma list).")
    )
    queue_name = df.CharFilter(help_text=_("Queue name equals."))
    queue_name_in = CharInFilter(
        field_name="queue_name", help_text=_("Queue is one of (comma list).")
    )
    status = df.ChoiceFilter(choices=StatusChoices.choices, help_text=_("Status equals."))
    status_in = StatusInFilter(
        field_name="status",
        choices=StatusChoices.choices,
        help_text=_("Status is one of (comma list)."),
    )
    job_id = df.CharFilter(help_text=_("Job id equals."))
    job_id_in = CharInFilter(field_name="job_id", help_text=_("Job id is one of (comma list)."))
    worker_id = df.CharFilter(help_text=_("Worker id equals."))
    worker_id_in = CharInFilter(
        field_name="worker_id", help_text=_("Worker is one of (comma list).")
    )
    user = count_filter("user_id", help_text=_("Enqueued by the user with this id."))
    username = df.CharFilter(field_name="user__username", help_text=_("Enqueued by this username."))
    success = typed(
        BooleanFilter(help_text=_("The raw success flag (unset until the job ends).")), BOOLEAN
    )

    is_completed = _q_filter(COMPLETED, "Completed: success, failed, expired or canceled.")
    is_successful = _q_filter(SUCCESSFUL, "Successful: status success and success flag set.")
    is_failed = _q_filter(FAILED, "Failed: failed or expired, or success flag false.")
    is_canceled = _q_filter(CANCELED, "Canceled.")
    is_waiting = _q_filter(WAITING, "Waiting: queued or deferred.")
    is_running = _q_filter(RUNNING, "Running: in progress.")
    is_in_flight = _q_filter(IN_FLIGHT, "In flight: waiting or running.")
    is_retried = _q_filter(RETRIED, "Retried at least once.")
    retried = _q_filter(RETRIED, "Alias of is_retried.")
    had_retry_error = _q_filter(
        RECOVERED, "Succeeded after at least one failed attempt (needed a retry)."
    )
    has_error = _q_filter(WITH_ERROR, "Has a non-empty error message.")
    has_result = _q_filter(HAS_RESULT, "Has a non-empty result.")
    expired = _q_filter(Q(status=StatusChoices.EXPIRED), "Status expired (ReArq dropped it unrun).")
    is_stuck = typed(
        BooleanFilter(
            method="filter_stuck", help_text=_("In progress longer than STUCK_AFTER_SECONDS.")
        ),
        BOOLEAN,
    )

    enqueued_after = DateTimeFilter(field_name="enqueue_time", lookup_expr="gte")
    enqueued_before = DateTimeFilter(field_name="enqueue_time", lookup_expr="lt")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")
    started_after = DateTimeFilter(field_name="start_time", lookup_expr="gte")
    started_before = DateTimeFilter(field_name="start_time", lookup_expr="lt")
    finished_after = DateTimeFilter(field_name="finish_time", lookup_expr="gte")
    finished_before = DateTimeFilter(field_name="finish_time", lookup_expr="lt")
    period_hours = typed(
        df.NumberFilter(
            method="filter_period",
            help_text=_("Enqueued in the last N hours (1..MAX_PERIOD_HOURS)."),
        ),
        {"type": "integer", "minimum": 1, "maximum": conf.MAX_PERIOD_HOURS},
    )

    duration_min = count_filter("duration_ms", "gte", help_text=_("Duration ≥ N ms."))
    duration_max = count_filter("duration_ms", "lte", help_text=_("Duration ≤ N ms."))
    job_retries_min = count_filter("job_retries", "gte", help_text=_("At least N retries."))
    job_retries_max = count_filter("job_retries", "lte", help_text=_("At most N retries."))
    attempts_min = count_filter(
        method="filter_attempts_min", help_text=_("At least N attempts made (see docs/history.md).")
    )
    queue_wait_min = count_filter(
        method="filter_queue_wait", help_text=_("Start − enqueue ≥ N ms.")
    )
    queue_wait_max = count_filter(
        method="filter_queue_wait", help_text=_("Start − enqueue ≤ N ms.")
    )

    kwargs = typed(
        df.CharFilter(
            method="filter_arguments",
            help_text=_('Kwargs contain this JSON object, e.g. {"order_id": 123}.'),
        ),
        JSON_OBJECT,
    )
    args = typed(
        df.CharFilter(
            method="filter_arguments", help_text=_('Args contain this JSON array, e.g. [123, "x"].')
        ),
        JSON_ARRAY,
    )
    search = df.CharFilter(
        method="filter_search",
        help_text=_(
            "The search language: task:, queue:, status:, worker:, user:, id:, error:, "
            "kwargs.<path>:, args:, after:, before: and plain words (see docs/api.md)."
        ),
    )
    ordering = NullsLastOrderingFilter(
        fields=ORDERING_FIELDS, help_text=_("Sort by one or more fields; prefix - for descending.")
    )

    class Meta:
        model = TaskLog
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("duration_min", "duration_max", "job_retries_min", "job_retries_max",
                     "queue_wait_min", "queue_wait_max", "user", "attempts_min"):  # fmt: skip
            # Bounded above too: SQLite cannot bind an integer past 64 bits (a 500 otherwise).
            self.form.fields[name] = forms.IntegerField(
                required=False, min_value=0, max_value=MAX_INTEGER
            )
        self.form.fields["period_hours"] = forms.IntegerField(
            required=False, min_value=1, max_value=conf.MAX_PERIOD_HOURS
        )
        self.form.fields["kwargs"] = ContainmentField(required=False, shape=dict)
        self.form.fields["args"] = ContainmentField(required=False, shape=list)
        self.form.fields["search"] = SearchField(required=False)

    def filter_queryset(self, queryset: QuerySet[TaskLog]) -> QuerySet[TaskLog]:
        """All filters. The argument and text conditions of an argument search are applied
        last, by :func:`window_first`: the newest rows first, else the GIN index's matches."""
        self.by_arguments = False
        self.deferred = Q()
        queryset = super().filter_queryset(queryset)
        return window_first(queryset, self.deferred) if self.by_arguments else queryset

    def filter_stuck(
        self, queryset: QuerySet[TaskLog], name: str, value: bool | None
    ) -> QuerySet[TaskLog]:
        if value is None:
            return queryset
        q = stuck_q(conf.STUCK_AFTER_SECONDS)
        return queryset.filter(q) if value else queryset.exclude(q)

    def filter_period(
        self, queryset: QuerySet[TaskLog], name: str, value: int | None
    ) -> QuerySet[TaskLog]:
        return queryset if value is None else queryset.filter(since_q(value))

    def filter_attempts_min(
        self, queryset: QuerySet[TaskLog], name: str, value: int | None
    ) -> QuerySet[TaskLog]:
        return queryset if value is None else queryset.filter(attempts_min_q(value))

    def filter_queue_wait(
        self, queryset: QuerySet[TaskLog], name: str, value: int | None
    ) -> QuerySet[TaskLog]:
        if value is None:
            return queryset
        lookup = "gte" if name.endswith("_min") else "lte"
        return queryset.alias(_queue_wait=queue_wait_ms()).filter(
            **{f"_queue_wait__{lookup}": value}
        )

    def filter_contains(
        self, queryset: QuerySet[TaskLog], name: str, value: str
    ) -> QuerySet[TaskLog]:
        return queryset.filter(search.contains_q(name, value, queryset.db)) if value else queryset

    def filter_arguments(
        self, queryset: QuerySet[TaskLog], name: str, value: Any
    ) -> QuerySet[TaskLog]:
        """``kwargs`` (a JSON object) or ``args`` (a JSON array), by containment."""
        if value is None:
            return queryset
        self.by_arguments = True
        self.deferred &= kwargs_q(value) if name == "kwargs" else args_q(value)
        return queryset

    def filter_search(
        self, queryset: QuerySet[TaskLog], name: str, value: language.Query | None
    ) -> QuerySet[TaskLog]:
        if not value:
            return queryset
        self.by_arguments = self.by_arguments or value.uses_arguments
        using = queryset.db
        try:
            columns, deferred = language.query_parts(
                value, lambda t: search.words_q(t, using), using
            )
        except language.QueryError as exc:
            raise ValidationError({"search": [str(exc)]}) from None
        if not value.uses_arguments:
            return queryset.filter(columns & deferred)
        self.deferred &= deferred
        return queryset.filter(columns)
