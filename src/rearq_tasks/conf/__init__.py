"""The one place that reads ``settings.REARQ_TASKS``.

Every setting is read on each access so ``override_settings`` works in tests.
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
    """Typed, uncached access to ``REARQ_TASKS``: ``conf.PAGE_SIZE`` for every key of ``SPEC``.

    The accessors are generated from ``SPEC`` (one place per setting), read on every access so
    that ``override_settings`` works, and return ``Option.value()`` of the user's value or of
    the documented default. An unknown name is an AttributeError, not a silent None.
    """

    def get(self, name: str) -> Any:
        option = SPEC[name]
        return option.value(user_settings().get(name, option.default))

    def __getattr__(self, name: str) -> Any:
        if name in SPEC:
            return self.get(name)
        raise AttributeError(f"{SETTING_NAME} has no setting {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *SPEC})

    @property
    def redact_patterns(self) -> list[str]:
        """The key patterns in force: the defaults (or their replacement) plus the extras."""
        return [*self.REDACT_PATTERNS, *self.REDACT_EXTRA_PATTERNS]


conf = Settings()
