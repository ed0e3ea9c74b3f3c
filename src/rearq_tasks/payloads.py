"""Make job payloads safe to store: JSON-safe, redacted and bounded.

Everything that reaches TaskLog's args, kwargs, result and error_message passes through
:func:`prepare` — on the capture path and the reconcile path alike — so a secret in a
kwarg, a 10 MB result, a ``Decimal`` or a NUL byte never crashes a worker, leaks into
the Django database or breaks PostgreSQL (which rejects NUL in text).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rearq_tasks.conf import conf

REDACTED = "[redacted]"
TRUNCATED_KEY = "__truncated__"
MAX_DEPTH = 32

_CARD_LIKE = re.compile(r"^(?:\d[ -]?){12,18}\d$")


@lru_cache(maxsize=32)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def looks_like_card_number(value: str) -> bool:
    """A 13–19 digit string (spaces/dashes allowed) that passes the Luhn check."""
    if not _CARD_LIKE.match(value):
        return False
    return _luhn_ok(re.sub(r"[ -]", "", value))


_MAX_DEPTH_MARKER = "[max depth]"
_CYCLE_MARKER = "[cycle]"
_CUT_MARKERS = frozenset({_MAX_DEPTH_MARKER, _CYCLE_MARKER})


def json_safe(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """A JSON-serialisable copy of ``value``; what JSON cannot hold gets a faithful text form."""
    if _depth > MAX_DEPTH:
        return _MAX_DEPTH_MARKER
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth + 1, _seen)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if id(value) in _seen:
        return _CYCLE_MARKER
    seen = _seen | {id(value)}
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, _depth + 1, seen) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [json_safe(v, _depth + 1, seen) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        try:
            return [json_safe(v, _depth + 1, seen) for v in value]
        except Exception:  # a generator that raises is still not a reason to lose the job
            return _repr(value)
    return _repr(value)


def _repr(value: Any) -> str:
    try:
        return repr(value)[:1000]
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def redact(value: Any, pattern: re.Pattern[str], _depth: int = 0) -> Any:
    """Replace values under secret-looking keys (and card-like strings) with ``[redacted]``."""
    if _depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if pattern.search(str(k)) else redact(v, pattern, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, pattern, _depth + 1) for v in value]
    if isinstance(value, str) and looks_like_card_number(value):
        return REDACTED
    return value


def is_lossy(args: Any, kwargs: Any) -> bool:
    """Whether a stored args/kwargs pair lost something on the way in: a redacted value
    (the ``[redacted]`` marker anywhere, also inside text), a truncation marker object, or
    a structure cut by :func:`json_safe` (too deep, or a cycle).

    Such a copy must never be run as the job's arguments (see ``retry_job``).
    """
    stack: list[tuple[Any, int]] = [(args, 0), (kwargs, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if REDACTED in value or value in _CUT_MARKERS:
                return True
        elif isinstance(value, Mapping):
            if TRUNCATED_KEY in value:
                return True
            if depth < MAX_DEPTH:
                stack.extend((item, depth + 1) for item in (*value.keys(), *value.values()))
        elif isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            stack.extend((item, depth + 1) for item in value)
    return False


def clean_text(text: str | None, max_bytes: int) -> str | None:
    """NUL-free text no longer than ``max_bytes`` UTF-8 bytes, with a visible marker if cut."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    kept = encoded[:max_bytes].decode("utf-8", "ignore")
    return f"{kept}… [truncated: {len(encoded):,} bytes, kept {len(kept.encode()):,}]"


def bound_json(value: Any, max_bytes: int) -> Any:
    """``value`` itself when its JSON fits ``max_bytes``, else a marker object with a preview."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size <= max_bytes:
        return value
    preview = text.encode("utf-8")[: max(0, max_bytes - 200)].decode("utf-8", "ignore")
    return {TRUNCATED_KEY: True, "original_bytes": size, "preview": preview}


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


@dataclass(frozen=True)
class Payload:
    args: Any
    kwargs: Any
    result: str | None
    error_message: str | None


@dataclass(frozen=True)
class PayloadRules:
    """The payload settings, read once for a batch of records."""

    limit: int
    pattern: re.Pattern[str] | None
    exempt: frozenset[str]

    def pattern_for(self, task_name: str) -> re.Pattern[str] | None:
        return None if task_name in self.exempt else self.pattern


def payload_rules() -> PayloadRules:
    patterns = tuple(conf.redact_patterns)
    return PayloadRules(
        limit=conf.PAYLOAD_MAX_BYTES,
        pattern=_compile(patterns) if patterns else None,
        exempt=conf.REDACT_EXEMPT_TASKS,
    )


def prepare(
    task_name: str,
    args: Any = (),
    kwargs: Any = None,
    result: Any = None,
    error_message: str | None = None,
    rules: PayloadRules | None = None,
) -> Payload:
    """The stored form of a job's payload, following the ``REARQ_TASKS`` payload settings."""
    rules = rules or payload_rules()
    limit = rules.limit
    pattern = rules.pattern_for(task_name)

    def sanitize(value: Any) -> Any:
        value = _strip_nul(json_safe(value))
        return redact(value, pattern) if pattern is not None else value

    return Payload(
        args=bound_json(sanitize(_as_list(args)), limit),
        kwargs=bound_json(sanitize(_as_dict(kwargs)), limit),
        result=(
            None if result is None else clean_text(_result_text(sanitize(_parse(result))), limit)
        ),
        error_message=clean_text(error_message, limit),
    )


def _as_list(args: Any) -> list[Any]:
    if args is None:
        return []
    if isinstance(args, (list, tuple)):
        return list(args)
    return [args]


def _as_dict(kwargs: Any) -> dict[str, Any]:
    if not kwargs:
        return {}
    if isinstance(kwargs, Mapping):
        return dict(kwargs)
    return {"__value__": kwargs}


def _parse(result: Any) -> Any:
    """ReArq stores results as text: redact inside JSON text too."""
    if isinstance(result, str) and result[:1] in ("{", "["):
        try:
            return json.loads(result)
        except ValueError:
            return result
    return result


def _result_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ``key=value`` / ``"key": "value"`` in free text (a traceback's exception message and locals).
# The value is a lookahead so that a key inside another key's value is still found.
_KEY_VALUE = re.compile(
    r"""(?P<key>[A-Za-z_][\w-]*)['"]?\s*[=:]\s*['"]?(?=(?P<value>[^\s'",)}\]]+))"""
)
_DIGIT_RUN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def redact_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """Free text with values after secret-looking keys and card-like numbers replaced."""
    if pattern is not None:
        out: list[str] = []
        pos = 0
        for match in _KEY_VALUE.finditer(text):
            if match.start() < pos or not pattern.search(match["key"]):
                continue
            out += [text[pos : match.end()], REDACTED]
            pos = match.end() + len(match["value"])
        text = "".join(out) + text[pos:]
    return _DIGIT_RUN.sub(lambda m: REDACTED if looks_like_card_number(m[0]) else m[0], text)


def prepare_traceback(task_name: str, text: str | None) -> str | None:
    """A traceback as stored: redacted like the payloads, NUL-free, at most PAYLOAD_MAX_BYTES."""
    if text is None:
        return None
    patterns = () if task_name in conf.REDACT_EXEMPT_TASKS else conf.redact_patterns
    pattern = _compile(tuple(patterns)) if patterns else None
    return clean_text(redact_text(text, pattern), conf.PAYLOAD_MAX_BYTES)


PAYLOAD_FIELDS: tuple[str, ...] = ("args", "kwargs", "result", "error_message")
# A JSON scalar takes at most this many bytes per character of its text form.
_MAX_UTF8 = 4


def _unchanged(value: Any, pattern: re.Pattern[str] | None, depth: int = 0) -> int | None:
    """An upper bound of the JSON bytes of ``value`` when :func:`prepare` would store it as it
    is (plain JSON types, no NUL, nothing to redact), else None: the full path decides."""
    kind = type(value)
    if value is None or kind is bool:
        return 5
    if kind is int:
        return 24 if -(10**20) < value < 10**20 else None
    if kind is str:
        if "\x00" in value or (pattern is not None and _CARD_LIKE.match(value)):
            return None
        return 2 + len(value) * 6  # every character escaped as \uXXXX at worst
    if kind is float:
        return 32 if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return None
    total = 2
    if kind is list:
        for item in value:
            size = _unchanged(item, pattern, depth + 1)
            if size is None:
                return None
            total += size + 1
        return total
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or "\x00" in key:
                return None
            if pattern is not None and pattern.search(key):
                return None
            size = _unchanged(item, pattern, depth + 1)
            if size is None:
                return None
            total += len(key) * 6 + 3 + size + 1
        return total
    return None


def _text_unchanged(text: Any, limit: int, parse: bool, pattern: re.Pattern[str] | None) -> bool:
    if type(text) is not str or "\x00" in text or len(text) * _MAX_UTF8 > limit:
        return False
    if parse and text[:1] in ("{", "["):
        return False
    return not (parse and pattern is not None and _CARD_LIKE.match(text))


def prepare_record(record: dict[str, Any], rules: PayloadRules | None = None) -> dict[str, Any]:
    """``record`` (a partial TaskLog row) with its payload fields made safe to store.

    Only the fields the record carries are touched: a missing field must stay missing so
    the upsert keeps the stored value. Payloads that are already plain, small and free of
    anything to redact (most jobs) are kept as they are without rebuilding them.
    """
    present = [name for name in PAYLOAD_FIELDS if record.get(name) is not None]
    if not present:
        return record
    rules = rules or payload_rules()
    task_name = str(record.get("task_name") or "")
    pattern = rules.pattern_for(task_name)
    args, kwargs = record.get("args"), record.get("kwargs")
    limit = rules.limit
    if (
        (args is None or (type(args) is list and (_unchanged(args, pattern) or limit + 1) <= limit))
        and (
            kwargs is None
            or (type(kwargs) is dict and (_unchanged(kwargs, pattern) or limit + 1) <= limit)
        )
        and (
            record.get("result") is None or _text_unchanged(record["result"], limit, True, pattern)
        )
        and (
            record.get("error_message") is None
            or _text_unchanged(record["error_message"], limit, False, pattern)
        )
    ):
        return record
    payload = prepare(
        task_name,
        args=args,
        kwargs=kwargs,
        result=record.get("result"),
        error_message=record.get("error_message"),
        rules=rules,
    )
    return {**record, **{name: getattr(payload, name) for name in present}}
