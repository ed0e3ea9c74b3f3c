"""Make job payloads safe to store: JSON-safe, redacted and bounded.

Every payload field reaching TaskLog (args, kwargs, result, error_message) passes through
:func:`prepare_record`, tracebacks through :func:`prepare_traceback`, on the capture and the
reconcile path alike: a secret, a 10 MB result, a ``Decimal`` or a NUL byte (PostgreSQL
rejects it) never crashes a worker or leaks. What a secret is: :mod:`rearq_tasks.redaction`.

A record's ``result`` is the VALUE (capture: what the task returned; reconcile: the parse of
ReArq's ``str(value)``), so both paths store the same column: a string's text, else compact
JSON; redacted and bounded like args/kwargs."""

from __future__ import annotations

import ast
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
from typing import Any

from rearq_tasks.conf import conf
from rearq_tasks.redaction import (
    REDACTED,
    compile_patterns,
    is_pair_key,
    is_secret_key,
    redact,
    redact_positional,
    redact_text,
    text_is_clean,
)

TRUNCATED_KEY = "__truncated__"
MAX_DEPTH = 32
# Python literals longer than this are not parsed: ast's tree takes ~170x the text in memory.
LITERAL_MAX_CHARS = 256 * 1024
_MAX_INT_BITS = 13_000  # about 4,000 digits: Python refuses to print longer ints
_LOST = (REDACTED, "[max depth]", "[cycle]", TRUNCATED_KEY)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_safe(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """A JSON-serialisable copy of ``value``; what JSON cannot hold gets a faithful text form.

    Equal to what :func:`json_default` + ``json.dumps``/``json.loads`` give (subclasses of
    str/int/float become the plain type, keys are spelled as JSON spells them).
    """
    if _depth > MAX_DEPTH:
        return "[max depth]"
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        bits = value.bit_length()
        return value if bits <= _MAX_INT_BITS else f"<int of {bits} bits>"
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth + 1, _seen)
    if isinstance(value, int):  # subclasses: the plain value, as json.dumps writes them
        return json_safe(int.__int__(value), _depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value) if math.isfinite(value) else float.__repr__(value)
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
        return "[cycle]"
    seen = _seen | {id(value)}
    if isinstance(value, Mapping):
        return {_json_key(k): json_safe(v, _depth + 1, seen) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [json_safe(v, _depth + 1, seen) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        try:
            return [json_safe(v, _depth + 1, seen) for v in value]
        except Exception:  # a generator that raises is still not a reason to lose the job
            return _repr(value)
    return _repr(value)


def _json_key(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it (``True`` → ``"true"``); str() otherwise."""
    if isinstance(key, str):
        return str.__str__(key)
    return json.dumps(key) if key is None or isinstance(key, (int, float)) else str(key)


def _repr(value: Any) -> str:
    try:
        return repr(value)[:1000]
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def json_default(obj: Any) -> Any:
    """THE ``default=`` of every JSON encoder in the project: consistent with json_safe, so a
    payload stores the same whether or not it went through JSON first (datetime → isoformat)."""
    return json_safe(obj)


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` with :func:`json_default`; values JSON refuses even then (cycles, keys
    such as tuples) are made JSON-safe first instead of raising."""
    try:
        return json.dumps(value, default=json_default, **kwargs)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(json_safe(value), **kwargs)


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
    text = _encode(value)
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
class PayloadRules:
    """The payload settings, read once for a batch of records. ``pattern`` is the compiled
    key matcher (None: no key is secret, value forms are still redacted)."""

    limit: int
    pattern: re.Pattern[str] | None
    exempt: frozenset[str]

    def redacts(self, task_name: str) -> bool:
        """False for ``REDACT_EXEMPT_TASKS``: their payloads are stored unredacted."""
        return task_name not in self.exempt


def payload_rules() -> PayloadRules:
    return PayloadRules(
        limit=conf.PAYLOAD_MAX_BYTES,
        pattern=compile_patterns(conf.redact_patterns),
        exempt=conf.REDACT_EXEMPT_TASKS,
    )


_LITERAL_START = re.compile(
    r"\s*(?:[\[{(\d'\"+.-]|[bBrRuU]{1,2}['\"]|(?:True|False|None|true|false|null)\b|set\(\))"
)


class _NanInf(ast.NodeTransformer):
    """``nan``/``inf`` as ``str(float)`` writes them, so ``str([math.inf])`` parses."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Constant(float(node.id)) if node.id in ("nan", "inf") else node


def parse_result_text(text: Any, max_chars: int = LITERAL_MAX_CHARS) -> Any:
    """The value behind ReArq's stored ``str(value)``: JSON, else a Python literal (parsed
    by ``ast.literal_eval``, never eval; not above ``max_chars``), else ``text`` itself."""
    if not isinstance(text, str) or not _LITERAL_START.match(text):
        return text
    try:
        return json.loads(text, parse_constant={}.__getitem__)  # no NaN: str() writes nan
    except (ValueError, KeyError, RecursionError):
        pass
    if len(text) > max_chars:
        return text
    try:
        return ast.literal_eval(_NanInf().visit(ast.parse(text, mode="eval")))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _canonical(value: Any) -> Any:
    """A text result parsed until it stops changing, so ``'"123"'``, ``"123"`` and ``123``
    are one value however many times they were stringified."""
    for _ in range(8):
        if not isinstance(value, str):
            return value
        parsed = parse_result_text(value)
        if parsed is value:
            return value
        value = parsed
    return value


def _text(text: str, limit: int, pattern: re.Pattern[str] | None, redacting: bool) -> str:
    """NUL-free, redacted once, then bounded. A huge text is redacted only as far as it can be
    kept, cut at a line (else a space) so that no one-line secret is cut in two."""
    head, was_cut = text, len(text) > limit + 4096
    if was_cut:
        end = limit + 4096
        cut = text.rfind("\n", limit, end)
        cut = cut if cut >= 0 else text.rfind(" ", limit, end)
        head = text[: cut if cut >= 0 else end]
    head = head.replace("\x00", "\\x00")
    if redacting:
        head = redact_text(head, pattern)
    encoded = head.encode("utf-8", "replace")
    if len(encoded) <= limit and not was_cut:
        return head
    size = len(text.encode("utf-8", "replace")) if was_cut else len(encoded)
    kept = encoded[:limit].decode("utf-8", "ignore")
    return f"{kept}… [truncated: {size:,} bytes, kept {len(kept.encode()):,}]"


def _result(value: Any, limit: int, pattern: re.Pattern[str] | None, redacting: bool) -> Any:
    value = _canonical(value)
    if value is None:
        return None
    value = json_safe(value)
    if isinstance(value, str):
        return _text(value, limit, pattern, redacting)
    value = _strip_nul(value)
    return _encode(bound_json(redact(value, pattern) if redacting else value, limit))


def _column(name: str, value: Any, task_name: str, rules: PayloadRules) -> Any:
    """One payload field as stored (the full path)."""
    limit, pattern, on = rules.limit, rules.pattern, rules.redacts(task_name)
    if name == "result":
        return _result(value, limit, pattern, on)
    if name == "error_message":
        return _text(str(value), limit, pattern, on)
    if name == "args":
        value = list(value) if isinstance(value, (list, tuple)) else [value]
    elif not isinstance(value, Mapping):
        value = {"__value__": value} if value else {}
    value = _strip_nul(json_safe(value))
    return bound_json(redact(value, pattern) if on else value, limit)


def prepare_text(task_name: str, text: Any, rules: PayloadRules | None = None) -> str | None:
    """An error message as stored: redacted once, NUL-free, at most PAYLOAD_MAX_BYTES."""
    if text is None:
        return None
    rules = rules or payload_rules()
    return _text(str(text), rules.limit, rules.pattern, rules.redacts(task_name))


prepare_traceback = prepare_text  # a traceback gets the same single text redaction


def is_lossy(stored_args: Any, stored_kwargs: Any) -> bool:
    """Whether stored args/kwargs lost data (redacted, truncated, cut at depth or a cycle):
    a retry must not run the job with them."""
    return _lossy(stored_args, 0) or _lossy(stored_kwargs, 0)


def _lossy(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return any(marker in value for marker in _LOST)
    if depth > MAX_DEPTH + 2:
        return True
    if isinstance(value, Mapping):
        return any(_lossy(k, depth) or _lossy(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_lossy(v, depth + 1) for v in value)
    return False


PAYLOAD_FIELDS: tuple[str, ...] = ("args", "kwargs", "result", "error_message")


def _unchanged(value: Any, pattern: re.Pattern[str] | None, on: bool, depth: int = 0) -> int | None:
    """An upper bound of the JSON bytes of ``value`` when the full path would store it as it
    is (plain JSON types, no NUL, nothing to redact), else None: the full path decides."""
    kind = type(value)
    if value is None or kind is bool:
        return 5
    if kind is int:
        return 24 if -(10**20) < value < (10**12 if on else 10**20) else None
    if kind is str:
        if "\x00" in value or (on and not text_is_clean(value, pattern)):
            return None
        return 2 + len(value) * 6  # every character escaped as \uXXXX at worst
    if kind is float:
        return 32 if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return None
    total = 2
    if kind is list:
        if on and len(value) == 2 and is_pair_key(value[0], pattern):
            return None
        for item in value:
            size = _unchanged(item, pattern, on, depth + 1)
            if size is None:
                return None
            total += size + 1
        return total
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or "\x00" in key:
                return None
            if on and (is_secret_key(key, pattern) or not text_is_clean(key, pattern)):
                return None
            size = _unchanged(item, pattern, on, depth + 1)
            if size is None:
                return None
            total += len(key) * 6 + 3 + size + 1
        return total
    return None


def _plain_text(
    text: Any, limit: int, pattern: re.Pattern[str] | None, on: bool, result: bool = False
) -> bool:
    if type(text) is not str or "\x00" in text or len(text) * 4 > limit:  # 4: UTF-8's most
        return False
    if result and _LITERAL_START.match(text):  # a literal is parsed, but "7" stores as "7"
        return len(text) < 13 and text.isdigit() and text.isascii() and text[0] != "0"
    return not on or text_is_clean(text, pattern)


def _fits(value: Any, kind: type, limit: int, pattern: re.Pattern[str] | None, on: bool) -> bool:
    return value is None or (
        type(value) is kind and (_unchanged(value, pattern, on) or limit + 1) <= limit
    )


def _fast(record: dict[str, Any], rules: PayloadRules, arguments: bool) -> dict[str, Any] | None:
    """The prepared columns that differ from ``record``'s when every present payload is plain
    (most jobs; ``arguments``: args/kwargs included), else None. Stores what ``_column`` does."""
    limit, pattern = rules.limit, rules.pattern
    on = rules.redacts(str(record.get("task_name") or ""))
    if arguments and not (
        _fits(record.get("args"), list, limit, pattern, on)
        and _fits(record.get("kwargs"), dict, limit, pattern, on)
    ):
        return None
    error, result = record.get("error_message"), record.get("result")
    if error is not None and not _plain_text(error, limit, pattern, on):
        return None
    if result is None:
        return {}
    if type(result) is str:
        return {} if _plain_text(result, limit, pattern, on, result=True) else None
    if type(result) is int and -(10**12) < result < 10**12 and limit > 13:
        return {"result": str(result)}  # its JSON, without the encoder's overhead
    return {"result": _encode(result)} if _fits(result, type(result), limit, pattern, on) else None


def prepare_record(
    record: dict[str, Any], rules: PayloadRules | None = None, arguments_prepared: bool = False
) -> dict[str, Any]:
    """``record`` (a partial TaskLog row) with the payload fields it carries made safe to store
    (missing ones stay missing), marked ``"prepared": True``, which is returned as it is. Plain
    payloads take a shortcut storing what the full path would. ``arguments_prepared``: args and
    kwargs came from here for the same task (each column is prepared alone): they are kept."""
    if record.get("prepared") is True:
        return record
    names = PAYLOAD_FIELDS[2:] if arguments_prepared else PAYLOAD_FIELDS
    present = [name for name in names if record.get(name) is not None]
    if not present:
        return {**record, "prepared": True} if arguments_prepared else record
    rules = rules or payload_rules()
    task_name, args = str(record.get("task_name") or ""), record.get("args")
    if not arguments_prepared and type(args) is list and rules.redacts(task_name):
        redacted = redact_positional(task_name, args, rules.pattern)  # secret-named parameters
        record = record if redacted is args else {**record, "args": redacted}
    changes = _fast(record, rules, arguments=not arguments_prepared)
    if changes is None:
        changes = {name: _column(name, record[name], task_name, rules) for name in present}
    return {**record, **changes, "prepared": True}
