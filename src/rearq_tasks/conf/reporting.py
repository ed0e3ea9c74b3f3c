"""Error reports (DEBUG pages, the e-mails Django sends ADMINS on a 5xx) without credentials.

Django's ``SafeExceptionReporterFilter`` hides settings whose *names* look secret, but
``REARQ_TASKS["REDIS_URL"]`` is not such a name and carries ReArq's Redis password; an
unhealthy ``/health/`` answers 500, so such a report is routine, not exceptional. Use::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "rearq_tasks.conf.reporting.SafeExceptionReporterFilter"

(system check ``rearq_tasks.W001`` asks for it while ``REARQ_TASKS`` holds a credential).
"""

from __future__ import annotations

from typing import Any

from django.views import debug

from rearq_tasks.conf import SPEC, redact_url


def redact_value(value: Any) -> Any:
    """``value`` with the password of every URL string in it masked (lists, tuples, dicts)."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, bytes):
        return redact_url(value.decode("utf-8", "replace"))
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    return value


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's filter, plus: URL passwords masked anywhere, ``REARQ_TASKS`` secrets hidden."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        option = SPEC.get(key) if isinstance(key, str) else None
        if option is not None and option.secret and value is not None:
            return self.cleansed_substitute
        cleansed = super().cleanse_setting(key, value)
        return redact_url(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (name, redact_url(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
