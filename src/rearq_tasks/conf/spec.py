"""``SPEC``: every key of ``settings.REARQ_TASKS`` described once (default, accepted types,
constraint, doc). The system checks in :mod:`rearq_tasks.conf.checks` and the settings table in
the docs are derived from it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rearq_tasks.redaction import DEFAULT_REDACT_PATTERNS

SETTING_NAME = "REARQ_TASKS"


@dataclass(frozen=True)
class Option:
    """One key: its default, accepted types, doc and constraint, and how ``conf`` returns it.

    ``coerce`` turns a valid value into what callers get; by default a list-or-tuple setting
    is returned as a new list and an int-or-float one as a float (a caller may not mutate the
    settings dict through it, and never has to care which of the accepted types was used).
    """

    default: Any
    types: tuple[type, ...]
    doc: str
    validate: Callable[[Any], str | None] | None = None
    nullable: bool = False
    secret: bool = False
    coerce: Callable[[Any], Any] | None = None

    def value(self, raw: Any) -> Any:
        if raw is None:
            return None
        if self.coerce is not None:
            return self.coerce(raw)
        if set(self.types) == {list, tuple}:
            return list(raw)
        if float in self.types:
            return float(raw)
        return raw


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def _percent(value: Any) -> str | None:
    return None if 0 < value <= 100 else "must be a percentage in (0, 100]"


def _url(*schemes: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            return f"must be a URL with one of the schemes {', '.join(schemes)}"
        return None

    return check


def _str_list(value: Any) -> str | None:
    if not all(isinstance(item, str) and item for item in value):
        return "must contain only non-empty strings"
    return None


def _regex_list(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or not item:
            return "must contain only non-empty regex strings"
        try:
            re.compile(item)
        except re.error as exc:
            return f"has an invalid regex {item!r} ({exc})"
    return None


def _sentinels(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or ":" not in item:
            return 'must be a list of "host:port" strings'
    return None


def _more_than_heartbeat(value: Any) -> str | None:
    return None if value > 10 else "must be more than ReArq's heartbeat interval (10 s)"


def _above_one(value: Any) -> str | None:
    return None if value > 1 else "must be greater than 1"


def _min_length(length: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if len(value) >= length else f"must be at least {length} characters long"

    return check


OVERRIDE_KEYS: tuple[str, ...] = (
    "FAILURE_RATE_THRESHOLD",
    "FAILURE_RATE_MIN_SAMPLE",
    "AVG_DURATION_SECONDS",
    "AVG_RETRIES",
)


def _task_overrides(value: Any) -> str | None:
    for task, overrides in value.items():
        if not isinstance(task, str) or not isinstance(overrides, Mapping):
            return "must map task names to dicts of thresholds"
        for key, number in overrides.items():
            if key not in OVERRIDE_KEYS:
                return f"[{task!r}] has an unknown key {key!r} (known: {', '.join(OVERRIDE_KEYS)})"
            if number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
                return f"[{task!r}][{key!r}] must be a number greater than 0 or None"
            if key == "FAILURE_RATE_THRESHOLD" and number > 100:
                return f"[{task!r}][{key!r}] must be a percentage in (0, 100]"
    return None


SPEC: dict[str, Option] = {
    "REDIS_URL": Option(
        "redis://127.0.0.1:6379/0",
        (str,),
        "ReArq's Redis (streams, heartbeats, delayed jobs).",
        _url("redis", "rediss", "unix"),
    ),
    "REDIS_SENTINELS": Option(
        None,
        (list, tuple),
        'Sentinel nodes as "host:port"; when set, REDIS_URL is not used.',
        _sentinels,
        nullable=True,
        coerce=lambda value: list(value) or None,
    ),
    "REDIS_SENTINEL_MASTER": Option("master", (str,), "Sentinel master name."),
    "REDIS_SENTINEL_RETRY_SECONDS": Option(
        30,
        (int,),
        "With sentinels: how long the worker's and capture's Redis commands retry a lost "
        "connection (through the sentinel, so a failover is followed); 0: no retry.",
        _non_negative,
    ),
    "DB_URL": Option(
        "sqlite://rearq.sqlite3",
        (str,),
        "Tortoise ORM URL of ReArq's own tables (rearq_job, rearq_job_results).",
        _url("sqlite", "postgres", "asyncpg", "psycopg", "mysql"),
    ),
    "JOB_RETRY": Option(3, (int,), "ReArq default retries per job.", _non_negative),
    "JOB_RETRY_AFTER": Option(60, (int,), "Seconds before a retry.", _non_negative),
    "JOB_TIMEOUT": Option(300, (int,), "ReArq default job timeout in seconds.", _positive),
    "MAX_JOBS": Option(10, (int,), "Concurrent jobs per worker.", _positive),
    "KEEP_JOB_DAYS": Option(
        None, (int,), "ReArq's own retention of rearq_job rows.", _positive, nullable=True
    ),
    "PAYLOAD_MAX_BYTES": Option(
        64 * 1024,
        (int,),
        "Largest stored args, kwargs, result or error (UTF-8 bytes); "
        "longer ones are cut with a marker.",
        _positive,
    ),
    "REDACT_PATTERNS": Option(
        DEFAULT_REDACT_PATTERNS,
        (list, tuple),
        'Regexes (case-insensitive) for keys whose values are stored as "[redacted]".',
        _regex_list,
    ),
    "REDACT_EXTRA_PATTERNS": Option(
        (), (list, tuple), "More key regexes, added to REDACT_PATTERNS.", _regex_list
    ),
    "REDACT_EXEMPT_TASKS": Option(
        (),
        (list, tuple),
        "Task names whose payloads are stored without redaction.",
        _str_list,
        coerce=frozenset,
    ),
    "API_PERMISSION_CLASSES": Option(
        ("rearq_tasks.access.CanViewTaskLogs",),
        (list, tuple),
        "DRF permission classes (dotted paths) guarding the API and metrics.",
        _str_list,
    ),
    "API_AUTHENTICATION_CLASSES": Option(
        (
            "rest_framework.authentication.SessionAuthentication",
            "rest_framework.authentication.BasicAuthentication",
        ),
        (list, tuple),
        "DRF authentication classes (dotted paths) for the API.",
        _str_list,
    ),
    "PAGE_SIZE": Option(50, (int,), "Default API page size.", _positive),
    "MAX_PAGE_SIZE": Option(500, (int,), "Largest page_size a client may ask for.", _positive),
    "MAX_PERIOD_HOURS": Option(
        24 * 90, (int,), "Largest period_hours accepted by stats and timeline.", _positive
    ),
    "STUCK_AFTER_SECONDS": Option(
        3600, (int,), "A job in progress longer than this is stuck.", _positive
    ),
    "FAILURE_RATE_THRESHOLD": Option(
        10.0, (int, float), "Failure rate (%) over the last hour that alerts.", _percent
    ),
    "FAILURE_RATE_MIN_SAMPLE": Option(
        10, (int,), "Completed jobs needed before the failure rate is judged.", _positive
    ),
    "BACKLOG_THRESHOLD": Option(100, (int,), "Queued jobs that count as a backlog.", _positive),
    "RETENTION_DAYS": Option(90, (int,), "cleanup_task_logs keeps this many days.", _positive),
    "FAILED_RETENTION_DAYS": Option(
        None,
        (int,),
        "Keep failed jobs longer than RETENTION_DAYS (None: same).",
        _positive,
        nullable=True,
    ),
    "REARQ_UI_URL": Option(
        None, (str,), "Base URL of ReArq's own web UI, for links from the admin.", nullable=True
    ),
    # --- api ---
    "RECENT_HOURS": Option(
        24,
        (int,),
        'What "recent" means in the overview: failures and active queues of the last N hours.',
        _positive,
    ),
    "RELATED_LIMIT": Option(
        20, (int,), "Most rows returned by the API's related/ action.", _positive
    ),
    "COUNT_LIMIT": Option(
        1_000,
        (int,),
        "API list pages count matching rows exactly up to this many; above it `count` is "
        "PostgreSQL's estimate (0 counts everything, always exact).",
        _non_negative,
    ),
    # --- ops ---
    "WORKER_STALE_SECONDS": Option(
        30,
        (int,),
        "A worker whose heartbeat is older than this is dead (ReArq refreshes it every 10 s).",
        _more_than_heartbeat,
    ),
    "WORKER_QUEUES": Option(
        None,
        (list, tuple),
        'Queues that must each have a live worker (the ReArq queue names, e.g. "default").',
        _str_list,
        nullable=True,
    ),
    "REDIS_TIMEOUT_SECONDS": Option(
        2.0, (int, float), "Connect/read timeout of health checks and metrics on Redis.", _positive
    ),
    "ALERT_PERIOD_MINUTES": Option(
        60, (int,), "Window of the failure-rate, duration and retries alerts.", _positive
    ),
    "ALERT_AVG_DURATION_SECONDS": Option(
        30.0, (int, float), "Average job duration (s) in the window that alerts.", _positive
    ),
    "ALERT_AVG_RETRIES": Option(
        5.0, (int, float), "Average retries per finished job in the window that alerts.", _positive
    ),
    "ALERT_TASK_OVERRIDES": Option(
        {},
        (dict,),
        "Per-task alert thresholds {task: {key: number or None (off)}}; keys: "
        "FAILURE_RATE_THRESHOLD, FAILURE_RATE_MIN_SAMPLE, AVG_DURATION_SECONDS, AVG_RETRIES.",
        _task_overrides,
        coerce=lambda value: {task: dict(limits) for task, limits in value.items()},
    ),
    "ALERT_COOLDOWN_SECONDS": Option(
        3600, (int,), "An unchanged alert is not re-sent within this time.", _non_negative
    ),
    "ALERT_WORSEN_RATIO": Option(
        1.5,
        (int, float),
        "Re-send within the cooldown when the figure reaches this multiple of the last sent one.",
        _above_one,
    ),
    "ALERT_EMAIL_RECIPIENTS": Option(
        ("ADMINS",),
        (list, tuple),
        'Alert e-mail recipients: addresses, "ADMINS" and/or "MANAGERS"; empty: no e-mail.',
        _str_list,
    ),
    "ALERT_SLACK_WEBHOOK_URL": Option(
        None,
        (str,),
        "Slack incoming-webhook URL for alerts.",
        _url("https", "http"),
        nullable=True,
        secret=True,
    ),
    "ALERT_WEBHOOK_URL": Option(
        None,
        (str,),
        "Generic webhook: alerts are POSTed as JSON.",
        _url("https", "http"),
        nullable=True,
        secret=True,
    ),
    "ALERT_HTTP_TIMEOUT_SECONDS": Option(
        5.0, (int, float), "Timeout of each Slack/webhook request.", _positive
    ),
    "METRICS_TOKEN": Option(
        None,
        (str,),
        "Bearer token that may read /metrics/ (for Prometheus) besides API_PERMISSION_CLASSES.",
        _min_length(16),
        nullable=True,
        secret=True,
    ),
    "METRICS_WINDOW_HOURS": Option(
        24, (int,), "Window of the per-task job counts and histograms in /metrics/.", _positive
    ),
    # --- capture ---
    "TASK_MODULES": Option(
        (),
        (list, tuple),
        "Modules that define ReArq tasks, imported by get_rearq_client() users (workers, "
        "commands) so the task registry (and each task's queue) is known.",
        _str_list,
    ),
    "CAPTURE_ENABLED": Option(True, (bool,), "Record every job's lifecycle in TaskLog."),
    "CAPTURE_STREAM": Option(
        "rearq_tasks:events", (str,), "Redis stream that carries lifecycle events to collectors."
    ),
    "CAPTURE_STREAM_MAXLEN": Option(
        1_000_000,
        (int,),
        "Most unwritten events the stream holds; more are refused and stay in the worker's "
        "buffer (written events are trimmed).",
        _positive,
    ),
    "CAPTURE_BUFFER_SIZE": Option(
        10_000,
        (int,),
        "Events a worker holds while Redis is unreachable; more are dropped and counted.",
        _positive,
    ),
    "CAPTURE_FLUSH_INTERVAL_MS": Option(
        50, (int,), "How often a worker sends its buffered events to the stream.", _positive
    ),
    "CAPTURE_BATCH_SIZE": Option(
        500, (int,), "Events a collector reads and writes per batch.", _positive
    ),
    "CAPTURE_COLLECTOR": Option(
        "embedded",
        (str,),
        'Where events are written to TaskLog: "embedded" (inside every worker) or '
        '"external" (only `manage.py rearq_collector` processes).',
        lambda v: None if v in ("embedded", "external") else 'must be "embedded" or "external"',
    ),
    "LOST_JOB_GRACE_SECONDS": Option(
        60,
        (int,),
        "sync_task_logs marks a job lost (failed) when it is in progress longer than its "
        "timeout plus this.",
        _non_negative,
    ),
    "SYNC_TASK_LOGS_CRON": Option(
        None,
        (str,),
        'Cron expression (e.g. "*/10 * * * *") to run sync_task_logs as a ReArq cron task.',
        nullable=True,
    ),
    # --- admin ---
    "ADMIN_CHOICES_LIMIT": Option(
        100, (int,), "Most task/queue names listed in the admin's filters.", _positive
    ),
    "ADMIN_CHOICES_CACHE_SECONDS": Option(
        60, (int,), "Seconds the admin caches its task/queue filter choices.", _non_negative
    ),
    "ADMIN_ACTION_MAX_ROWS": Option(
        100, (int,), "Most jobs one admin Retry/Cancel may act on at once.", _positive
    ),
}
