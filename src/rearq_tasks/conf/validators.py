"""The constraints ``SPEC`` options name: each returns None when a value is fine, or the
problem in words (the system check puts it after the setting's name)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


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
