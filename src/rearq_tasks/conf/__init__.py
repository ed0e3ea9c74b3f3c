"""The one place that reads ``settings.REARQ_TASKS``.

Every setting is an uncached property so ``override_settings`` works in tests.
``SPEC`` describes each key once (default, accepted types, constraint); the system
checks in :mod:`rearq_tasks.conf.checks` and the docs table are derived from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings

from rearq_tasks.conf.spec import SETTING_NAME, SPEC, Option

__all__ = ["SETTING_NAME", "SPEC", "Option", "Settings", "conf", "redact_url", "user_settings"]


def user_settings() -> Mapping[str, Any]:
    """The raw dict (empty when unset); only the system checks should need it."""
    value = getattr(django_settings, SETTING_NAME, None)
    return value if isinstance(value, Mapping) else {}


SECRET_QUERY_PARAM = re.compile(
    r"([?&][^=&#]*(?:token|key|secret|pass|sig|auth)[^=&#]*=)[^&#]*", re.IGNORECASE
)


def redact_url(url: str | None) -> str | None:
    """Hide the password and secret-looking query values of a URL (messages, reprs, reports).

    Everything between the scheme's ``//`` (or the start) and the last ``@`` is user info:
    a malformed URL (one slash, an unencoded ``/`` or ``@`` in the password) is masked too.
    ``?token=…``, ``api_key=…``, ``sig=…``, ``password=…`` values become ``***``.
    """
    if not url:
        return url
    if "?" in url:
        url = SECRET_QUERY_PARAM.sub(r"\1***", url)
    if "@" not in url:
        return url
    head, host = url.rsplit("@", 1)
    start = head.find("://")
    start = start + 3 if start >= 0 else 0
    userinfo = head[start:]
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{head[:start]}{user}:***@{host}"


class Settings:
    """Typed, uncached access to ``REARQ_TASKS`` with documented defaults."""

    def get(self, name: str) -> Any:
        option = SPEC[name]
        return user_settings().get(name, option.default)

    @property
    def REDIS_URL(self) -> str:
        return self.get("REDIS_URL")

    @property
    def REDIS_SENTINELS(self) -> list[str] | None:
        value = self.get("REDIS_SENTINELS")
        return list(value) if value else None

    @property
    def REDIS_SENTINEL_MASTER(self) -> str:
        return self.get("REDIS_SENTINEL_MASTER")

    @property
    def DB_URL(self) -> str:
        return self.get("DB_URL")

    @property
    def JOB_RETRY(self) -> int:
        return self.get("JOB_RETRY")

    @property
    def JOB_RETRY_AFTER(self) -> int:
        return self.get("JOB_RETRY_AFTER")

    @property
    def JOB_TIMEOUT(self) -> int:
        return self.get("JOB_TIMEOUT")

    @property
    def MAX_JOBS(self) -> int:
        return self.get("MAX_JOBS")

    @property
    def KEEP_JOB_DAYS(self) -> int | None:
        return self.get("KEEP_JOB_DAYS")

    @property
    def PAYLOAD_MAX_BYTES(self) -> int:
        return self.get("PAYLOAD_MAX_BYTES")

    @property
    def REDACT_PATTERNS(self) -> list[str]:
        return list(self.get("REDACT_PATTERNS"))

    @property
    def REDACT_EXTRA_PATTERNS(self) -> list[str]:
        return list(self.get("REDACT_EXTRA_PATTERNS"))

    @property
    def REDACT_EXEMPT_TASKS(self) -> frozenset[str]:
        return frozenset(self.get("REDACT_EXEMPT_TASKS"))

    @property
    def redact_patterns(self) -> list[str]:
        return self.REDACT_PATTERNS + self.REDACT_EXTRA_PATTERNS

    @property
    def API_PERMISSION_CLASSES(self) -> list[str]:
        return list(self.get("API_PERMISSION_CLASSES"))

    @property
    def API_AUTHENTICATION_CLASSES(self) -> list[str]:
        return list(self.get("API_AUTHENTICATION_CLASSES"))

    @property
    def PAGE_SIZE(self) -> int:
        return self.get("PAGE_SIZE")

    @property
    def MAX_PAGE_SIZE(self) -> int:
        return self.get("MAX_PAGE_SIZE")

    @property
    def MAX_PERIOD_HOURS(self) -> int:
        return self.get("MAX_PERIOD_HOURS")

    @property
    def STUCK_AFTER_SECONDS(self) -> int:
        return self.get("STUCK_AFTER_SECONDS")

    @property
    def FAILURE_RATE_THRESHOLD(self) -> float:
        return float(self.get("FAILURE_RATE_THRESHOLD"))

    @property
    def FAILURE_RATE_MIN_SAMPLE(self) -> int:
        return self.get("FAILURE_RATE_MIN_SAMPLE")

    @property
    def BACKLOG_THRESHOLD(self) -> int:
        return self.get("BACKLOG_THRESHOLD")

    @property
    def RETENTION_DAYS(self) -> int:
        return self.get("RETENTION_DAYS")

    @property
    def FAILED_RETENTION_DAYS(self) -> int | None:
        return self.get("FAILED_RETENTION_DAYS")

    @property
    def REARQ_UI_URL(self) -> str | None:
        return self.get("REARQ_UI_URL")

    @property
    def RECENT_HOURS(self) -> int:
        return self.get("RECENT_HOURS")

    @property
    def RELATED_LIMIT(self) -> int:
        return self.get("RELATED_LIMIT")

    @property
    def COUNT_LIMIT(self) -> int:
        return self.get("COUNT_LIMIT")

    # --- ops ---
    @property
    def WORKER_STALE_SECONDS(self) -> int:
        return self.get("WORKER_STALE_SECONDS")

    @property
    def WORKER_QUEUES(self) -> list[str] | None:
        value = self.get("WORKER_QUEUES")
        return None if value is None else list(value)

    @property
    def REDIS_TIMEOUT_SECONDS(self) -> float:
        return float(self.get("REDIS_TIMEOUT_SECONDS"))

    @property
    def ALERT_PERIOD_MINUTES(self) -> int:
        return self.get("ALERT_PERIOD_MINUTES")

    @property
    def ALERT_AVG_DURATION_SECONDS(self) -> float:
        return float(self.get("ALERT_AVG_DURATION_SECONDS"))

    @property
    def ALERT_AVG_RETRIES(self) -> float:
        return float(self.get("ALERT_AVG_RETRIES"))

    @property
    def ALERT_TASK_OVERRIDES(self) -> dict[str, dict[str, float | None]]:
        return {task: dict(values) for task, values in self.get("ALERT_TASK_OVERRIDES").items()}

    @property
    def ALERT_COOLDOWN_SECONDS(self) -> int:
        return self.get("ALERT_COOLDOWN_SECONDS")

    @property
    def ALERT_WORSEN_RATIO(self) -> float:
        return float(self.get("ALERT_WORSEN_RATIO"))

    @property
    def ALERT_EMAIL_RECIPIENTS(self) -> list[str]:
        return list(self.get("ALERT_EMAIL_RECIPIENTS"))

    @property
    def ALERT_SLACK_WEBHOOK_URL(self) -> str | None:
        return self.get("ALERT_SLACK_WEBHOOK_URL")

    @property
    def ALERT_WEBHOOK_URL(self) -> str | None:
        return self.get("ALERT_WEBHOOK_URL")

    @property
    def ALERT_HTTP_TIMEOUT_SECONDS(self) -> float:
        return float(self.get("ALERT_HTTP_TIMEOUT_SECONDS"))

    @property
    def METRICS_TOKEN(self) -> str | None:
        return self.get("METRICS_TOKEN")

    @property
    def METRICS_WINDOW_HOURS(self) -> int:
        return self.get("METRICS_WINDOW_HOURS")

    # --- capture ---
    @property
    def TASK_MODULES(self) -> list[str]:
        return list(self.get("TASK_MODULES"))

    @property
    def CAPTURE_ENABLED(self) -> bool:
        return self.get("CAPTURE_ENABLED")

    @property
    def CAPTURE_STREAM(self) -> str:
        return self.get("CAPTURE_STREAM")

    @property
    def CAPTURE_STREAM_MAXLEN(self) -> int:
        return self.get("CAPTURE_STREAM_MAXLEN")

    @property
    def CAPTURE_BUFFER_SIZE(self) -> int:
        return self.get("CAPTURE_BUFFER_SIZE")

    @property
    def CAPTURE_FLUSH_INTERVAL_MS(self) -> int:
        return self.get("CAPTURE_FLUSH_INTERVAL_MS")

    @property
    def CAPTURE_BATCH_SIZE(self) -> int:
        return self.get("CAPTURE_BATCH_SIZE")

    @property
    def CAPTURE_COLLECTOR(self) -> str:
        return self.get("CAPTURE_COLLECTOR")

    @property
    def LOST_JOB_GRACE_SECONDS(self) -> int:
        return self.get("LOST_JOB_GRACE_SECONDS")

    @property
    def SYNC_TASK_LOGS_CRON(self) -> str | None:
        return self.get("SYNC_TASK_LOGS_CRON")

    # --- admin ---
    @property
    def ADMIN_CHOICES_LIMIT(self) -> int:
        return self.get("ADMIN_CHOICES_LIMIT")

    @property
    def ADMIN_CHOICES_CACHE_SECONDS(self) -> int:
        return self.get("ADMIN_CHOICES_CACHE_SECONDS")

    @property
    def ADMIN_ACTION_MAX_ROWS(self) -> int:
        return self.get("ADMIN_ACTION_MAX_ROWS")


conf = Settings()
