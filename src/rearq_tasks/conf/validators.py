"""The checks of ``SPEC``'s options: each returns None or what is wrong with a value."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def percent(value: Any) -> str | None:
    return None if 0 < value <= 100 else "must be a percentage in (0, 100]"


def url(*schemes: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            return f"must be a URL with one of the schemes {', '.join(schemes)}"
        return None

    return check


def str_list(value: Any) -> str | None:
    if not all(isinstance(item, str) and item for item in value):
        return "must contain only non-empty strings"
    return None


def regex_list(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or not item:
            return "must contain only non-empty regex strings"
        try:
            re.compile(item)
        except re.error as exc:
            return f"has an invalid regex {item!r} ({exc})"
    return None


def sentinels(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or ":" not in item:
            return 'must be a list of "host:port" strings'
    return None


def more_than_heartbeat(value: Any) -> str | None:
    return None if value > 10 else "must be more than ReArq's heartbeat interval (10 s)"


def above_one(value: Any) -> str | None:
    return None if value > 1 else "must be greater than 1"


def min_length(length: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if len(value) >= length else f"must be at least {length} characters long"

    return check


OVERRIDE_KEYS: tuple[str, ...] = (
    "FAILURE_RATE_THRESHOLD",
    "FAILURE_RATE_MIN_SAMPLE",
    "AVG_DURATION_SECONDS",
    "AVG_RETRIES",
)


def task_overrides(value: Any) -> str | None:
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
