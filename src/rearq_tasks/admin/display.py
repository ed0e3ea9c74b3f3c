"""Badges and read-only fragments of the TaskLog admin.

Task names, queues, arguments, results and errors come from whoever enqueued the job,
so every fragment here is built with ``format_html``/autoescaped templates: a value can
never become markup.
"""

from __future__ import annotations

import json
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.payloads import dumps

# Unfold's label types: None is its grey badge.
STATUS_BADGES: dict[str, tuple[str | None, str]] = {
    StatusChoices.QUEUED: (None, "timer"),
    StatusChoices.DEFERRED: (None, "schedule"),
    StatusChoices.IN_PROGRESS: ("info", "speed"),
    StatusChoices.SUCCESS: ("success", "check_circle"),
    StatusChoices.FAILED: ("danger", "error"),
    StatusChoices.EXPIRED: ("danger", "hourglass_disabled"),
    StatusChoices.CANCELED: ("warning", "warning"),
}
QUEUE_BADGES: dict[str, str | None] = {
    "critical": "danger",
    "high": "warning",
    "default": "info",
    "low": None,
    "background": None,
}
# (upper bound in ms, category, Unfold label type); the last bound is open.
DURATION_BANDS: tuple[tuple[float, str, str], ...] = (
    (1_000, "fast", "success"),
    (5_000, "normal", "info"),
    (30_000, "slow", "warning"),
    (float("inf"), "very slow", "danger"),
)
PRE_CLASSES = (
    "font-mono text-xs whitespace-pre-wrap break-all bg-base-50 border border-base-200 "
    "rounded-default p-3 dark:bg-base-800 dark:border-base-700"
)


def badge(
    text: Any, kind: str | None = None, icon: str | None = None, title: str | None = None
) -> SafeString:
    """Unfold's label markup; ``text`` and ``title`` are escaped by the template."""
    html = render_to_string(
        "unfold/helpers/label.html",
        {"text": text, "type": kind, "icon": icon, "label_title": title},
    )
    return mark_safe(html.strip())  # noqa: S308 - autoescaped template output


def status_label(status: str) -> tuple[str, SafeString]:
    """``(status, icon + label)`` for ``@display(label=STATUS_LABEL_TYPES)``."""
    _kind, icon = STATUS_BADGES.get(status, (None, "help"))
    text = StatusChoices(status).label if status in StatusChoices.values else status
    return status, format_html(
        '<span class="material-symbols-outlined text-sm -ml-0.5 mr-0.5 align-[-3px]">{}</span>{}',
        icon,
        text,
    )


def status_badge(status: str) -> SafeString:
    """The same badge as the changelist's, for pages that do not render ``@display(label=)``."""
    kind, icon = STATUS_BADGES.get(status, (None, "help"))
    text = StatusChoices(status).label if status in StatusChoices.values else status
    return badge(text, kind, icon)


STATUS_LABEL_TYPES: dict[str, str] = {
    status: kind for status, (kind, _icon) in STATUS_BADGES.items() if kind is not None
}


def queue_badge(queue: str) -> SafeString:
    """Known queues get their colour; any other queue name is shown as neutral text."""
    if queue in QUEUE_BADGES:
        return badge(queue, QUEUE_BADGES[queue])
    return format_html('<span class="text-font-default-light">{}</span>', queue)


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    if ms < 1_000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def duration_band(ms: int) -> tuple[str, str]:
    for bound, category, kind in DURATION_BANDS:
        if ms < bound:
            return category, kind
    raise AssertionError("the last band is open")  # pragma: no cover


def duration_badge(log: TaskLog) -> SafeString | None:
    """Coloured by band; nothing while the job is waiting or running."""
    if log.duration_ms is None or log.status in (
        StatusChoices.QUEUED,
        StatusChoices.IN_PROGRESS,
    ):
        return None
    category, kind = duration_band(log.duration_ms)
    return badge(format_duration(log.duration_ms), kind, title=str(category))


def retries_badge(log: TaskLog) -> SafeString:
    """0 plain; retried yellow; at the job's own limit red."""
    text = f"{log.job_retries}/{log.job_retry}"
    if log.job_retries <= 0:
        return format_html("<span>{}</span>", text)
    at_limit = log.job_retry > 0 and log.job_retries >= log.job_retry
    return badge(text, "danger" if at_limit else "warning")


def pretty_json(value: Any) -> SafeString:
    text = dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="{}">{}</pre>', PRE_CLASSES, text)


def pretty_result(result: str | None) -> SafeString | None:
    """JSON results are re-indented; anything else is shown verbatim."""
    if result is None:
        return None
    try:
        parsed = json.loads(result)
    except (TypeError, ValueError):
        return format_html('<pre class="{}">{}</pre>', PRE_CLASSES, result)
    return pretty_json(parsed)


def error_panel(log: TaskLog) -> SafeString:
    """The full error in a red panel, with what ReArq did about retries."""
    if log.job_retry:
        retry_info = _("Attempted %(retries)s of %(limit)s retries, %(after)s s apart.") % {
            "retries": log.job_retries,
            "limit": log.job_retry,
            "after": log.job_retry_after,
        }
    else:
        retry_info = _("This job had no retries.")
    return format_html(
        '<div class="border border-red-200 bg-red-50 text-red-800 rounded-default p-4 '
        'dark:bg-red-500/20 dark:border-red-500/40 dark:text-red-300">'
        '<div class="flex items-center gap-2 font-semibold mb-2">'
        '<span class="material-symbols-outlined">error</span>{}</div>'
        '<pre class="font-mono text-xs whitespace-pre-wrap break-all">{}</pre>'
        '<p class="mt-2 text-sm">{}</p></div>',
        StatusChoices(log.status).label if log.status in StatusChoices.values else log.status,
        log.error_message or _("No error message was recorded."),
        retry_info,
    )


def performance_summary(log: TaskLog) -> SafeString:
    """One line: duration, retries x/y, worker; then the timestamps and the queue wait."""
    wait = log.queue_wait_ms
    return format_html(
        '<div class="flex flex-col gap-1"><div><strong>{}</strong> {} · <strong>{}</strong> {}/{}'
        " · <strong>{}</strong> {}</div>"
        '<div class="text-sm">{} {} · {} {} · {} {} · {} {}</div></div>',
        _("Duration"),
        format_duration(log.duration_ms),
        _("retries"),
        log.job_retries,
        log.job_retry,
        _("worker"),
        log.worker_id or "–",
        _("created"),
        _when(log.created_at),
        _("started"),
        _when(log.start_time),
        _("finished"),
        _when(log.finish_time),
        _("queue wait"),
        format_duration(wait),
    )


def _when(value: Any) -> str:
    from django.utils import timezone
    from django.utils.formats import date_format

    if value is None:
        return "–"
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


# Outcome of an attempt -> Unfold label type.
OUTCOME_BADGES: dict[str, str | None] = {
    "succeeded": "success",
    "retry_scheduled": "warning",
    "failed": "danger",
    "expired": "danger",
    "lost": "danger",
    "canceled": "warning",
}


def attempt_timeline(log: TaskLog, events: list[Any]) -> SafeString:
    """The job's attempts (time, worker, wait, duration, error, collapsible traceback).

    ``events`` come from one query, already ordered with queue waits
    (:func:`rearq_tasks.queries.history.job_history`); nothing here queries per row.
    """
    from rearq_tasks.queries.history import ATTEMPT_END_EVENTS

    attempts: dict[int, dict[str, Any]] = {}
    for event in events:
        attempt = attempts.setdefault(
            event.attempt,
            {"number": event.attempt, "outcome": None, "notes": [], "queue_wait": "–",
             "duration": "–", "started": None, "ended": None, "worker": None,
             "error": None, "traceback": None},
        )  # fmt: skip
        if event.event == "started":
            attempt["started"] = _when(event.timestamp)
            attempt["worker"] = attempt["worker"] or event.worker_id
            attempt["queue_wait"] = format_duration(getattr(event, "queue_wait_ms", None))
        elif event.event in ATTEMPT_END_EVENTS and attempt["outcome"] is None:
            attempt["outcome"] = event.event
            attempt["outcome_badge"] = badge(
                event.get_event_display(), OUTCOME_BADGES.get(event.event)
            )
            attempt["ended"] = _when(event.timestamp)
            attempt["worker"] = attempt["worker"] or event.worker_id
            attempt["duration"] = format_duration(event.duration_ms)
            attempt["error"] = event.error_message
            attempt["traceback"] = event.traceback
        else:
            attempt["notes"].append(
                {"label": event.get_event_display(), "when": _when(event.timestamp),
                 "text": event.error_message}
            )  # fmt: skip
    return mark_safe(  # noqa: S308 - autoescaped template output
        render_to_string(
            "rearq_tasks/admin/attempt_timeline.html", {"attempts": list(attempts.values())}
        )
    )


def rerun_links(rows: list[tuple[Any, str | None, str]], link_classes: str) -> SafeString:
    """``(label, change URL or None, job id)`` rows as a list; a job without a row unlinked."""
    items = [
        format_html('{} <a href="{}" class="{}">{}</a>', label, url, link_classes, job_id)
        if url
        else format_html("{} {}", label, job_id)
        for label, url, job_id in rows
    ]
    return format_html(
        '<ul class="flex flex-col gap-1">{}</ul>',
        format_html_join("", "<li>{}</li>", ((item,) for item in items)),
    )
