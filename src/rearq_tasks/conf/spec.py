"""``SPEC``: every key of ``settings.REARQ_TASKS`` described once (default, accepted types,
constraint, doc). The system checks in :mod:`rearq_tasks.conf.checks` and the settings table in
the docs are derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rearq_tasks.conf.validators import (
    above_one,
    min_length,
    more_than_heartbeat,
    non_negative,
    percent,
    positive,
    regex_list,
    sentinels,
    str_list,
    task_overrides,
    url,
)
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


SPEC: dict[str, Option] = {
    "REDIS_URL": Option(
        "redis://127.0.0.1:6379/0",
        (str,),
        "ReArq's Redis (streams, heartbeats, delayed jobs).",
        url("redis", "rediss", "unix"),
    ),
    "REDIS_SENTINELS": Option(
        None,
        (list, tuple),
        'Sentinel nodes as "host:port"; when set, REDIS_URL is not used.',
        sentinels,
        nullable=True,
        coerce=lambda value: list(value) or None,
    ),
    "REDIS_SENTINEL_MASTER": Option("master", (str,), "Sentinel master name."),
    "REDIS_SENTINEL_RETRY_SECONDS": Option(
        30,
        (int,),
        "With sentinels: how long the worker's and capture's Redis commands retry a lost "
        "connection (through the sentinel, so a failover is followed); 0: no retry.",
        non_negative,
    ),
    "DB_URL": Option(
        "sqlite://rearq.sqlite3",
        (str,),
        "Tortoise ORM URL of ReArq's own tables (rearq_job, rearq_job_results).",
        url("sqlite", "postgres", "asyncpg", "psycopg", "mysql"),
    ),
    "JOB_RETRY": Option(3, (int,), "ReArq default retries per job.", non_negative),
    "JOB_RETRY_AFTER": Option(60, (int,), "Seconds before a retry.", non_negative),
    "JOB_TIMEOUT": Option(300, (int,), "ReArq default job timeout in seconds.", positive),
    "MAX_JOBS": Option(10, (int,), "Concurrent jobs per worker.", positive),
    "KEEP_JOB_DAYS": Option(
        None, (int,), "ReArq's own retention of rearq_job rows.", positive, nullable=True
    ),
    "PAYLOAD_MAX_BYTES": Option(
        64 * 1024,
        (int,),
        "Largest stored args, kwargs, result or error (UTF-8 bytes); "
        "longer ones are cut with a marker.",
        positive,
    ),
    "REDACT_PATTERNS": Option(
        DEFAULT_REDACT_PATTERNS,
        (list, tuple),
        "Regexes (case-insensitive) matched against whole words of a key (see docs/payloads.md); "
        'values under a matching key are stored as "[redacted]".',
        regex_list,
    ),
    "REDACT_EXTRA_PATTERNS": Option(
        (), (list, tuple), "More key regexes, added to REDACT_PATTERNS.", regex_list
    ),
    "REDACT_EXEMPT_TASKS": Option(
        (),
        (list, tuple),
        "Task names whose payloads are stored without redaction.",
        str_list,
        coerce=frozenset,
    ),
    "API_PERMISSION_CLASSES": Option(
        ("rearq_tasks.access.CanViewTaskLogs",),
        (list, tuple),
        "DRF permission classes (dotted paths) guarding the API and metrics.",
        str_list,
    ),
    "API_AUTHENTICATION_CLASSES": Option(
        (
            "rest_framework.authentication.SessionAuthentication",
            "rest_framework.authentication.BasicAuthentication",
        ),
        (list, tuple),
        "DRF authentication classes (dotted paths) for the API.",
        str_list,
    ),
    "PAGE_SIZE": Option(50, (int,), "Default API page size.", positive),
    "MAX_PAGE_SIZE": Option(500, (int,), "Largest page_size a client may ask for.", positive),
    "MAX_PERIOD_HOURS": Option(
        24 * 90,
        (int,),
        "Largest period_hours of the list filter; aggregates accept the larger of this and "
        "STATS_RETENTION_DAYS × 24.",
        positive,
    ),
    "STUCK_AFTER_SECONDS": Option(
        3600, (int,), "A job in progress longer than this is stuck.", positive
    ),
    "FAILURE_RATE_THRESHOLD": Option(
        10.0, (int, float), "Failure rate (%) over the last hour that alerts.", percent
    ),
    "FAILURE_RATE_MIN_SAMPLE": Option(
        10, (int,), "Completed jobs needed before the failure rate is judged.", positive
    ),
    "BACKLOG_THRESHOLD": Option(100, (int,), "Queued jobs that count as a backlog.", positive),
    "RETENTION_DAYS": Option(90, (int,), "cleanup_task_logs keeps this many days.", positive),
    "STATS_RETENTION_DAYS": Option(
        400,
        (int,),
        "cleanup_task_logs keeps the statistics rollups this many days (rows: RETENTION_DAYS); "
        "the API accepts period_hours up to this many days.",
        positive,
    ),
    "FAILED_RETENTION_DAYS": Option(
        None,
        (int,),
        "Keep failed jobs longer than RETENTION_DAYS (None: same).",
        positive,
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
        positive,
    ),
    "RELATED_LIMIT": Option(
        20, (int,), "Most rows returned by the API's related/ action.", positive
    ),
    "COUNT_LIMIT": Option(
        1_000,
        (int,),
        "API list pages count matching rows exactly up to this many; above it `count` is "
        "PostgreSQL's estimate (0 counts everything, always exact).",
        non_negative,
    ),
    # --- ops ---
    "WORKER_STALE_SECONDS": Option(
        30,
        (int,),
        "A worker whose heartbeat is older than this is dead (ReArq refreshes it every 10 s).",
        more_than_heartbeat,
    ),
    "WORKER_QUEUES": Option(
        None,
        (list, tuple),
        'Queues that must each have a live worker (the ReArq queue names, e.g. "default").',
        str_list,
        nullable=True,
    ),
    "REDIS_TIMEOUT_SECONDS": Option(
        2.0, (int, float), "Connect/read timeout of health checks and metrics on Redis.", positive
    ),
    "ALERT_PERIOD_MINUTES": Option(
        60, (int,), "Window of the failure-rate, duration and retries alerts.", positive
    ),
    "ALERT_AVG_DURATION_SECONDS": Option(
        30.0, (int, float), "Average job duration (s) in the window that alerts.", positive
    ),
    "ALERT_AVG_RETRIES": Option(
        5.0, (int, float), "Average retries per finished job in the window that alerts.", positive
    ),
    "ALERT_TASK_OVERRIDES": Option(
        {},
        (dict,),
        "Per-task alert thresholds {task: {key: number or None (off)}}; keys: "
        "FAILURE_RATE_THRESHOLD, FAILURE_RATE_MIN_SAMPLE, AVG_DURATION_SECONDS, AVG_RETRIES.",
        task_overrides,
        coerce=lambda value: {task: dict(limits) for task, limits in value.items()},
    ),
    "ALERT_COOLDOWN_SECONDS": Option(
        3600, (int,), "An unchanged alert is not re-sent within this time.", non_negative
    ),
    "ALERT_WORSEN_RATIO": Option(
        1.5,
        (int, float),
        "Re-send within the cooldown when the figure reaches this multiple of the last sent one.",
        above_one,
    ),
    "ALERT_EMAIL_RECIPIENTS": Option(
        ("ADMINS",),
        (list, tuple),
        'Alert e-mail recipients: addresses, "ADMINS" and/or "MANAGERS"; empty: no e-mail.',
        str_list,
    ),
    "ALERT_SLACK_WEBHOOK_URL": Option(
        None,
        (str,),
        "Slack incoming-webhook URL for alerts.",
        url("https", "http"),
        nullable=True,
        secret=True,
    ),
    "ALERT_WEBHOOK_URL": Option(
        None,
        (str,),
        "Generic webhook: alerts are POSTed as JSON.",
        url("https", "http"),
        nullable=True,
        secret=True,
    ),
    "ALERT_PAGERDUTY_ROUTING_KEY": Option(
        None,
        (str,),
        "PagerDuty Events API v2 routing (integration) key: alerts trigger and resolve "
        "incidents, deduplicated by the alert's key.",
        min_length(20),
        nullable=True,
        secret=True,
    ),
    "ALERT_PAGERDUTY_URL": Option(
        "https://events.pagerduty.com/v2/enqueue",
        (str,),
        "PagerDuty Events API v2 endpoint (another region, or a proxy).",
        url("https", "http"),
    ),
    "ALERT_HTTP_TIMEOUT_SECONDS": Option(
        5.0, (int, float), "Timeout of each Slack/webhook/PagerDuty request.", positive
    ),
    "METRICS_TOKEN": Option(
        None,
        (str,),
        "Bearer token that may read /metrics/ (for Prometheus) besides API_PERMISSION_CLASSES.",
        min_length(16),
        nullable=True,
        secret=True,
    ),
    "METRICS_WINDOW_HOURS": Option(
        24, (int,), "Window of the per-task job counts and histograms in /metrics/.", positive
    ),
    # --- capture ---
    "TASK_MODULES": Option(
        (),
        (list, tuple),
        "Modules that define ReArq tasks, imported by get_rearq_client() users (workers, "
        "commands) so the task registry (and each task's queue) is known.",
        str_list,
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
        positive,
    ),
    "CAPTURE_BUFFER_SIZE": Option(
        10_000,
        (int,),
        "Events a worker holds while Redis is unreachable; more are dropped and counted.",
        positive,
    ),
    "CAPTURE_FLUSH_INTERVAL_MS": Option(
        50, (int,), "How often a worker sends its buffered events to the stream.", positive
    ),
    "CAPTURE_BATCH_SIZE": Option(
        500, (int,), "Events a collector reads and writes per batch.", positive
    ),
    "CAPTURE_COLLECTOR": Option(
        "embedded",
        (str,),
        'Where events are written to TaskLog: "embedded" (a collector process every worker '
        'starts and supervises) or "external" (only `manage.py rearq_collector` processes).',
        lambda v: None if v in ("embedded", "external") else 'must be "embedded" or "external"',
    ),
    "LOST_JOB_GRACE_SECONDS": Option(
        60,
        (int,),
        "sync_task_logs marks a job lost (failed) when it is in progress longer than its "
        "timeout plus this.",
        non_negative,
    ),
    "RECOVER_UNSTARTED_JOBS": Option(
        True,
        (bool,),
        "sync_task_logs re-enqueues, once, each job a dead worker fetched but never started "
        "(ReArq never runs it); False only marks it lost.",
    ),
    "SYNC_TASK_LOGS_CRON": Option(
        None,
        (str,),
        'Cron expression (e.g. "*/10 * * * *") to run sync_task_logs as a ReArq cron task.',
        nullable=True,
    ),
    "JOB_LOG_ENABLED": Option(
        False,
        (bool,),
        'One JSON line per job transition on the "rearq_tasks.jobs" logger (redacted), '
        "written by the collector with each batch.",
    ),
    # --- live feed ---
    "STREAM_RESUME_SECONDS": Option(
        60,
        (int, float),
        "Written events stay in the capture stream this long (while it is under half of "
        "CAPTURE_STREAM_MAXLEN) so a live feed resumes after a reconnect; 0: trim at once.",
        non_negative,
    ),
    "STREAM_MAX_CONNECTIONS": Option(
        8,
        (int,),
        "Most concurrent /logs/stream/ connections per server process (under WSGI each "
        "holds a worker thread); more get 503.",
        positive,
    ),
    "STREAM_MAX_SECONDS": Option(
        300,
        (int, float),
        "A /logs/stream/ connection is closed after this long (the client reconnects with "
        "Last-Event-ID).",
        positive,
    ),
    "STREAM_MAX_EVENTS": Option(
        10_000, (int,), "A /logs/stream/ connection is closed after this many events.", positive
    ),
    "STREAM_HEARTBEAT_SECONDS": Option(
        15,
        (int, float),
        "An idle /logs/stream/ sends a comment this often (keeps proxies from closing it).",
        positive,
    ),
    # --- admin ---
    "ADMIN_CHOICES_LIMIT": Option(
        100, (int,), "Most task/queue names listed in the admin's filters.", positive
    ),
    "ADMIN_CHOICES_CACHE_SECONDS": Option(
        60, (int,), "Seconds the admin caches its task/queue filter choices.", non_negative
    ),
    "ADMIN_ACTION_MAX_ROWS": Option(
        100, (int,), "Most jobs one admin Retry/Cancel may act on at once.", positive
    ),
    "OPERATION_CHUNK_SIZE": Option(200, (int,), "Jobs per bulk-operation chunk.", positive),
    "OPERATION_SCAN_IDS": Option(20000, (int,), "Ids one chunk query scans.", positive),
    "OPERATION_LEASE_SECONDS": Option(30, (int,), "A runner's lease on an operation.", positive),
    "OPERATION_PAUSE_SECONDS": Option(5, (int,), "Wait before a paused retry.", positive),
    "AUDIT_RETENTION_DAYS": Option(365, (int,), "Days audit entries are kept.", positive),
}
