from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import uuid
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from rearq_tasks.models import TaskLog
from rearq_tasks.payloads import (
    LITERAL_MAX_CHARS,
    PAYLOAD_FIELDS,
    TRUNCATED_KEY,
    PayloadRules,
    _column,
    dumps,
    is_lossy,
    json_default,
    json_safe,
    parse_result_text,
    payload_rules,
    prepare_record,
    prepare_text,
)
from rearq_tasks.redaction import (
    DEFAULT_REDACT_PATTERNS,
    REDACTED,
    compile_patterns,
    register_positional,
)

RULES = PayloadRules(
    limit=64 * 1024, pattern=compile_patterns(DEFAULT_REDACT_PATTERNS), exempt=frozenset({"ex"})
)


def stored(task: str = "t", rules: PayloadRules | None = None, **fields: Any) -> dict[str, Any]:
    """The prepared payload columns of a record carrying ``fields``."""
    record = prepare_record({"job_id": "j", "task_name": task, **fields}, rules)
    return {name: record[name] for name in PAYLOAD_FIELDS if name in record}


def test_redacts_secret_keys_recursively() -> None:
    cols = stored(
        args=[{"user": "bob", "password": "hunter2", "nested": [{"api_key": "k", "ok": 1}]}],
        kwargs={
            "Authorization": "Bearer abc",
            "config": {"db": {"PASSWD": "x", "host": "h"}, "tokens": ["a", "b"]},
            "session_id": "s",
            "private-key": "pem",
            "card_number": "4111 1111 1111 1111",
            "note": "4111111111111111",
            "amount": 12,
        },
    )
    assert cols["args"] == [
        {"user": "bob", "password": REDACTED, "nested": [{"api_key": REDACTED, "ok": 1}]}
    ]
    kw = cols["kwargs"]
    assert kw["Authorization"] == REDACTED
    # "tokens" (plural) is a list of things, not a token: kept since words are matched whole.
    assert kw["config"] == {"db": {"PASSWD": REDACTED, "host": "h"}, "tokens": ["a", "b"]}
    assert kw["session_id"] == REDACTED and kw["private-key"] == REDACTED
    assert kw["card_number"] == REDACTED
    assert kw["note"] == REDACTED  # a Luhn-valid card number under an innocent key
    assert kw["amount"] == 12


def test_a_secret_in_a_returned_dict_is_redacted() -> None:
    assert stored(result={"password": "hunter2", "fine": 1}) == {
        "result": '{"password":"[redacted]","fine":1}'
    }


def test_a_secret_in_rearqs_repr_text_of_the_result_is_redacted() -> None:
    """ReArq stores ``str(value)``: the Python repr, which JSON cannot parse."""
    text = str({"password": "hunter2", "fine": 1})
    assert stored(result=text) == {"result": '{"password":"[redacted]","fine":1}'}
    assert stored(result=parse_result_text(text)) == stored(
        result={"password": "hunter2", "fine": 1}
    )


def test_redacts_inside_a_json_text_result() -> None:
    result = stored(result='{"token": "abc", "items": [1, 2]}')["result"]
    assert json.loads(result) == {"token": REDACTED, "items": [1, 2]}


@pytest.mark.parametrize(
    ("value", "column"),
    [("ok", "ok"), ("3", "3"), (3, "3"), (True, "true"), ([1, "a"], '[1,"a"]'),
     ((1, 2), "[1,2]"), ("[1, 2]", "[1,2]"), ("None", None), ("postgres://u:pw@h", "postgres://u:[redacted]@h")],
)  # fmt: skip
def test_the_result_column_is_the_text_of_a_string_else_json(value: Any, column: Any) -> None:
    assert stored(result=value).get("result") == column


def test_error_messages_are_redacted() -> None:
    cols = stored(error_message="Run job error, exc: connect postgres://app:pw@db/x password=pw")
    assert cols["error_message"] == (
        "Run job error, exc: connect postgres://app:[redacted]@db/x password=[redacted]"
    )
    assert prepare_text("t", "token=abc", RULES) == "token=[redacted]"
    assert prepare_text("ex", "token=abc", RULES) == "token=abc"


def test_positional_args_and_header_pairs_are_redacted() -> None:
    cols = stored(
        args=["postgres://u:pw@h/db", "password", "hunter2"],
        kwargs={"headers": [["Authorization", "Bearer x"], ["Accept", "json"]]},
    )
    assert cols["args"] == ["postgres://u:[redacted]@h/db", "password", "hunter2"]
    assert cols["kwargs"] == {"headers": [["Authorization", REDACTED], ["Accept", "json"]]}
    assert stored(args=["password", "hunter2"])["args"] == ["password", REDACTED]


def test_extra_patterns_and_exempt_tasks(settings) -> None:
    settings.REARQ_TASKS = {
        "REDACT_EXTRA_PATTERNS": [r"^otpx$"],
        "REDACT_EXEMPT_TASKS": ["debug_task"],
    }
    assert stored(kwargs={"otpx": "1", "otpxy": "2"})["kwargs"] == {"otpx": REDACTED, "otpxy": "2"}
    exempt = stored("debug_task", kwargs={"password": "p", "dsn": "postgres://u:pw@h"})
    assert exempt["kwargs"] == {"password": "p", "dsn": "postgres://u:pw@h"}


def test_replacing_the_patterns_drops_the_defaults(settings) -> None:
    settings.REARQ_TASKS = {"REDACT_PATTERNS": ["^pin$"]}
    assert stored(kwargs={"pin": 1, "password": "p"})["kwargs"] == {
        "pin": REDACTED,
        "password": "p",
    }


def test_a_prepared_record_is_returned_as_it_is_and_missing_fields_stay_missing() -> None:
    record = prepare_record({"job_id": "j", "task_name": "t", "kwargs": {"password": "p"}}, RULES)
    assert record["prepared"] is True and "args" not in record and "result" not in record
    assert prepare_record(record, RULES) is record
    plain = prepare_record({"job_id": "j", "task_name": "t", "args": [1]}, RULES)
    assert plain == {"job_id": "j", "task_name": "t", "args": [1], "prepared": True}
    bare = {"job_id": "j", "status": "queued"}
    assert prepare_record(bare, RULES) is bare


def test_is_lossy_sees_redaction_and_truncation_markers() -> None:
    assert not is_lossy([1, "a"], {"n": {"x": [2]}})
    assert is_lossy([{"password": REDACTED}], {})
    assert is_lossy([], {"dsn": "postgres://u:[redacted]@h"})
    assert is_lossy({TRUNCATED_KEY: True, "original_bytes": 9, "preview": ""}, {})
    assert is_lossy([], {"deep": "[max depth]"})


class Custom:
    def __repr__(self) -> str:
        return "Custom()"


class Color(enum.Enum):
    RED = "red"


def test_values_json_cannot_hold_get_a_faithful_text_form() -> None:
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID(int=1)
    cyclic: list = []
    cyclic.append(cyclic)
    value = json_safe(
        {
            "b": b"\xff\x00",
            "t": b"text",
            "d": decimal.Decimal("1.10"),
            "when": moment,
            "day": moment.date(),
            "s": {3, 1, 2},
            "nan": float("nan"),
            "inf": float("-inf"),
            "obj": Custom(),
            "id": ident,
            1: "int key",
            "tuple": (1, 2),
            "cyclic": cyclic,
            "color": Color.RED,
        }
    )
    json.dumps(value, allow_nan=False)
    assert value["b"] == "base64:/wA=" and value["t"] == "text"
    assert value["d"] == "1.10" and value["when"] == moment.isoformat()
    assert value["s"] == [1, 2, 3]
    assert (value["nan"], value["inf"]) == ("nan", "-inf")
    assert value["obj"] == "Custom()" and value["id"] == str(ident) and value["1"] == "int key"
    assert json_safe({True: 1, None: 2, 1.5: 3}) == {"true": 1, "null": 2, "1.5": 3}  # as JSON
    assert value["tuple"] == [1, 2] and value["cyclic"] == ["[cycle]"] and value["color"] == "red"


def test_dumps_never_raises_on_keys_json_refuses() -> None:
    assert json.loads(dumps({(1, 2): dt.date(2026, 1, 2)})) == {"(1, 2)": "2026-01-02"}


def test_parse_result_text_never_evaluates_and_bounds_its_input() -> None:
    assert parse_result_text('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert parse_result_text("{'a': (1, True, None, nan)}")["a"][:3] == (1, True, None)
    assert (
        parse_result_text("__import__('os').system('echo hi')")
        == "__import__('os').system('echo hi')"
    )
    assert parse_result_text("[1, __import__('os')]") == "[1, __import__('os')]"
    deep = "[" * 100_000 + "]" * 100_000
    assert parse_result_text(deep) == deep
    huge = "[" + "'x', " * (LITERAL_MAX_CHARS // 4) + "]"
    assert parse_result_text(huge) is huge
    assert parse_result_text("hello") == "hello" and parse_result_text(None) is None


def test_size_is_bounded_with_a_visible_marker(settings) -> None:
    settings.REARQ_TASKS = {"PAYLOAD_MAX_BYTES": 1024}
    cols = stored(
        args=["x" * 5000],
        kwargs={"blob": "é" * 5000},
        result="r" * 10_000_000,
        error_message="e" * 4000,
    )
    assert cols["args"][TRUNCATED_KEY] is True and cols["args"]["original_bytes"] > 5000
    assert cols["kwargs"][TRUNCATED_KEY] is True
    assert len(cols["result"].encode()) < 1200 and "truncated: 10,000,000 bytes" in cols["result"]
    assert cols["error_message"].startswith("e" * 100) and "truncated" in cols["error_message"]
    big = json.loads(stored(result=list(range(1000)))["result"])
    assert big[TRUNCATED_KEY] is True


def test_a_secret_at_the_cut_of_a_huge_text_is_not_kept() -> None:
    rules = PayloadRules(limit=1000, pattern=RULES.pattern, exempt=frozenset())
    text = "-----BEGIN PRIVATE KEY-----" + "A" * 6000 + "-----END PRIVATE KEY----- " * 1
    text += "x " * 2000 + "postgres://u:hunter2@h " + "y" * 10_000
    assert "hunter2" not in prepare_text("t", text, rules)


def test_non_list_args_and_non_dict_kwargs_are_kept() -> None:
    cols = stored(args=5, kwargs=["a"])
    assert cols["args"] == [5] and cols["kwargs"] == {"__value__": ["a"]}


@pytest.mark.django_db
def test_hostile_payloads_store_and_read_back_on_every_database(settings) -> None:
    """NUL bytes (PostgreSQL rejects them in text), 10 MB results, odd types."""
    settings.REARQ_TASKS = {"PAYLOAD_MAX_BYTES": 64 * 1024}
    cols = stored(
        args=[b"\x00bin", decimal.Decimal("2.5"), {"k\x00": "v\x00"}],
        kwargs={"password": "p", "when": timezone.now()},
        result="ok\x00" + "x" * (10 * 1024 * 1024),
        error_message="Traceback\x00 with NUL",
    )
    log = TaskLog.objects.create(
        job_id="hostile", task_name="t", queue_name="default", enqueue_time=timezone.now(), **cols
    )
    log.refresh_from_db()
    assert log.args[0] == "\\x00bin" and log.args[1] == "2.5"
    assert log.args[2] == {"k\\x00": "v\\x00"}
    assert log.kwargs["password"] == REDACTED
    assert log.result.startswith("ok\\x00xxx") and "truncated" in log.result
    assert log.error_message == "Traceback\\x00 with NUL"


@pytest.mark.django_db
def test_the_capture_and_reconcile_write_path_stores_safe_payloads() -> None:
    """Both paths end in ``upsert_records``: secrets and NULs never reach the table."""
    from rearq_tasks.capture.events import now_ms
    from rearq_tasks.capture.upsert import upsert_records

    base = {
        "job_id": "sec-1",
        "task_name": "t",
        "queue_name": "default",
        "args": [{"password": "pw-123", "n": 1}],
        "kwargs": {"api_key": "k-456", "when": "now"},
    }
    upsert_records([{**base, "status": "queued", "enqueue_time": now_ms()}])
    upsert_records(
        [
            {
                **base,
                "status": "failed",
                "error_message": "boom\x00 token=t-789",
                "result": str({"token": "t"}),
                "enqueue_time": now_ms(),
            }
        ]
    )
    log = TaskLog.objects.get(job_id="sec-1")
    assert log.args == [{"password": REDACTED, "n": 1}]
    assert log.kwargs == {"api_key": REDACTED, "when": "now"}
    assert log.error_message == "boom\\x00 token=[redacted]" and log.status == "failed"
    assert json.loads(log.result) == {"token": REDACTED}


# --- properties ------------------------------------------------------------------------------
SECRETISH = st.sampled_from(
    ["4111 1111 1111 1111", "4111111111111112", "a\x00b", "[1, 2]", '{"a":1}', "password=x",
     "postgres://u:pw@h/db", "Bearer abc123XYZ", "x: y", "'token': 't'", "None", "3", "nan"]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**22), 10**22)
    | st.sampled_from([4111111111111111, 4111111111111112, 1700000000000])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | SECRETISH
)
_KEYS = (
    st.text(max_size=12)
    | st.sampled_from(["password", "api_key", "n", "k\x00", "tokens_used", "x=1"])
    | st.integers()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.builds(lambda k, v: [k, v], st.sampled_from(["password", "note"]), inner)
        | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    args=st.none() | st.lists(_VALUES, max_size=4) | _VALUES,
    kwargs=st.none() | st.dictionaries(_KEYS, _VALUES, max_size=4) | _VALUES,
    result=st.none() | st.text(max_size=40) | _VALUES,
    error=st.none() | st.text(max_size=40) | SECRETISH,
    task=st.sampled_from(["t", "ex"]),
    limit=st.sampled_from([60, 64 * 1024]),
)
def test_prepare_record_shortcut_stores_what_the_full_path_stores(
    args, kwargs, result, error, task, limit
) -> None:
    """Records the fast path keeps (nothing to redact, bound or clean) equal the full path's."""
    rules = PayloadRules(limit=limit, pattern=RULES.pattern, exempt=RULES.exempt)
    record = {"job_id": "j", "task_name": task, "args": args, "kwargs": kwargs,
              "result": result, "error_message": error}  # fmt: skip
    expected = {**record, "prepared": True}
    for name in PAYLOAD_FIELDS:
        if record[name] is not None:
            expected[name] = _column(name, record[name], task, rules)
    if not any(record[name] is not None for name in PAYLOAD_FIELDS):
        expected = record
    assert prepare_record(dict(record), rules) == expected


def _login(user, password, *rest):
    return None


@settings(max_examples=200, deadline=None)
@given(
    args=st.none() | st.lists(_VALUES, max_size=4),
    kwargs=st.none() | st.dictionaries(_KEYS, _VALUES, max_size=4),
    result=st.none() | st.text(max_size=40) | _VALUES,
    error=st.none() | st.text(max_size=40) | SECRETISH,
    task=st.sampled_from(["t", "ex", "tests.payloads.login"]),
    limit=st.sampled_from([60, 64 * 1024]),
)
def test_arguments_prepared_once_store_what_a_whole_preparation_stores(
    args, kwargs, result, error, task, limit
) -> None:
    """A worker prepares a job's args and kwargs once, for ReArq's "→" log line, and its
    events reuse them (``arguments_prepared``): the stored columns are the same."""
    register_positional("tests.payloads.login", _login)  # a secret-named positional parameter
    rules = PayloadRules(limit=limit, pattern=RULES.pattern, exempt=RULES.exempt)
    arguments = {"task_name": task, "args": list(args or []), "kwargs": dict(kwargs or {})}
    event = {"job_id": "j", **arguments, "status": "success", "result": result,
             "error_message": error}  # fmt: skip
    whole = prepare_record(dict(event), rules)
    logged = prepare_record(dict(arguments), rules)
    reused = prepare_record(
        {**event, "args": logged["args"], "kwargs": logged["kwargs"]}, rules,
        arguments_prepared=True,
    )  # fmt: skip
    assert reused == whole
    assert reused["prepared"] is True


_LITERALS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | SECRETISH,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.sets(st.integers() | st.text(max_size=5), max_size=3)
        | st.dictionaries(
            st.text(max_size=8) | st.integers() | st.booleans() | st.none(), inner, max_size=4
        )  # fmt: skip
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=_LITERALS, limit=st.sampled_from([60, 64 * 1024]))
def test_a_result_and_rearqs_text_of_it_store_the_same_column(value: Any, limit: int) -> None:
    """Capture passes the value, reconcile ``parse_result_text(str(value))``: one column."""
    rules = PayloadRules(limit=limit, pattern=RULES.pattern, exempt=frozenset())
    assert stored(result=value, rules=rules) == stored(
        result=parse_result_text(str(value)), rules=rules
    )


class Level(enum.IntEnum):
    LOW = 1


_ODD = st.recursive(
    _SCALARS
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.sampled_from([Color.RED, Level.LOW, b"bytes", math.inf]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.frozensets(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.integers() | st.booleans(), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(args=st.lists(_ODD, max_size=3), kwargs=st.dictionaries(st.text(max_size=6), _ODD))
def test_payloads_store_the_same_with_or_without_a_json_round_trip(args, kwargs) -> None:
    """The emitter JSON-encodes events with ``json_default``: the stored columns must not care."""
    through = json.loads(json.dumps({"args": args, "kwargs": kwargs}, default=json_default))
    assert stored(args=args, kwargs=kwargs) == stored(**through)
    assert stored(args=args, kwargs=kwargs) == stored(
        **json.loads(dumps({"args": args, "kwargs": kwargs}))
    )


def test_payload_rules_follow_the_settings(settings) -> None:
    settings.REARQ_TASKS = {"PAYLOAD_MAX_BYTES": 2048, "REDACT_EXEMPT_TASKS": ["a"]}
    rules = payload_rules()
    assert rules.limit == 2048 and not rules.redacts("a") and rules.redacts("b")
    assert rules.pattern is compile_patterns(DEFAULT_REDACT_PATTERNS)
