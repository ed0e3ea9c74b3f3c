from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from rearq_tasks.models import TaskLog
from rearq_tasks.payloads import (
    REDACTED,
    TRUNCATED_KEY,
    PayloadRules,
    _compile,
    json_safe,
    looks_like_card_number,
    prepare,
    prepare_record,
)
from rearq_tasks.redaction import DEFAULT_REDACT_PATTERNS


def test_redacts_secret_keys_recursively() -> None:
    payload = prepare(
        "t",
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
    assert payload.args == [
        {"user": "bob", "password": REDACTED, "nested": [{"api_key": REDACTED, "ok": 1}]}
    ]
    kw = payload.kwargs
    assert kw["Authorization"] == REDACTED
    assert kw["config"] == {"db": {"PASSWD": REDACTED, "host": "h"}, "tokens": REDACTED}
    assert kw["session_id"] == REDACTED and kw["private-key"] == REDACTED
    assert kw["card_number"] == REDACTED
    assert kw["note"] == REDACTED  # a Luhn-valid card number under an innocent key
    assert kw["amount"] == 12


def test_redacts_inside_a_json_text_result() -> None:
    payload = prepare("t", result='{"token": "abc", "items": [1, 2]}')
    assert json.loads(payload.result) == {"token": REDACTED, "items": [1, 2]}


def test_card_detection_needs_luhn() -> None:
    assert looks_like_card_number("4111-1111-1111-1111")
    assert not looks_like_card_number("4111111111111112")
    assert not looks_like_card_number("12345")


def test_extra_patterns_and_exempt_tasks(settings) -> None:
    settings.REARQ_TASKS = {
        "REDACT_EXTRA_PATTERNS": [r"^otp$"],
        "REDACT_EXEMPT_TASKS": ["debug_task"],
    }
    assert prepare("t", kwargs={"otp": "1", "otpx": "2"}).kwargs == {"otp": REDACTED, "otpx": "2"}
    assert prepare("debug_task", kwargs={"password": "p"}).kwargs == {"password": "p"}


def test_replacing_the_patterns_drops_the_defaults(settings) -> None:
    settings.REARQ_TASKS = {"REDACT_PATTERNS": ["^pin$"]}
    assert prepare("t", kwargs={"pin": 1, "password": "p"}).kwargs == {
        "pin": REDACTED,
        "password": "p",
    }


class Custom:
    def __repr__(self) -> str:
        return "Custom()"


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
        }
    )
    json.dumps(value, allow_nan=False)
    assert value["b"] == "base64:/wA=" and value["t"] == "text"
    assert value["d"] == "1.10" and value["when"] == moment.isoformat()
    assert value["s"] == [1, 2, 3]
    assert (value["nan"], value["inf"]) == ("nan", "-inf")
    assert value["obj"] == "Custom()" and value["id"] == str(ident) and value["1"] == "int key"
    assert value["tuple"] == [1, 2] and value["cyclic"] == ["[cycle]"]


def test_size_is_bounded_with_a_visible_marker(settings) -> None:
    settings.REARQ_TASKS = {"PAYLOAD_MAX_BYTES": 1024}
    payload = prepare(
        "t",
        args=["x" * 5000],
        kwargs={"blob": "é" * 5000},
        result="r" * 10_000_000,
        error_message="e" * 4000,
    )
    assert payload.args[TRUNCATED_KEY] is True and payload.args["original_bytes"] > 5000
    assert payload.kwargs[TRUNCATED_KEY] is True
    assert len(payload.result.encode()) < 1200 and "truncated: 10,000,000 bytes" in payload.result
    assert payload.error_message.startswith("e" * 100) and "truncated" in payload.error_message


def test_non_list_args_and_non_dict_kwargs_are_kept() -> None:
    payload = prepare("t", args=5, kwargs=["a"])
    assert payload.args == [5] and payload.kwargs == {"__value__": ["a"]}


@pytest.mark.django_db
def test_hostile_payloads_store_and_read_back_on_every_database(settings) -> None:
    """NUL bytes (PostgreSQL rejects them in text), 10 MB results, odd types."""
    settings.REARQ_TASKS = {"PAYLOAD_MAX_BYTES": 64 * 1024}
    payload = prepare(
        "t",
        args=[b"\x00bin", decimal.Decimal("2.5"), {"k\x00": "v\x00"}],
        kwargs={"password": "p", "when": timezone.now()},
        result="ok\x00" + "x" * (10 * 1024 * 1024),
        error_message="Traceback\x00 with NUL",
    )
    log = TaskLog.objects.create(
        job_id="hostile",
        task_name="t",
        queue_name="default",
        enqueue_time=timezone.now(),
        args=payload.args,
        kwargs=payload.kwargs,
        result=payload.result,
        error_message=payload.error_message,
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

    # Every event carries the job's identity and payload, as capture.events.job_event builds it.
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
                "error_message": "boom\x00",
                "result": '{"token": "t"}',
                "enqueue_time": now_ms(),
            }
        ]
    )
    log = TaskLog.objects.get(job_id="sec-1")
    assert log.args == [{"password": REDACTED, "n": 1}]
    assert log.kwargs == {"api_key": REDACTED, "when": "now"}
    assert log.error_message == "boom\\x00" and log.status == "failed"
    assert json.loads(log.result) == {"token": REDACTED}


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**22), 10**22)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["4111 1111 1111 1111", "4111111111111112", "a\x00b", "[1, 2]", '{"a":1}'])
)
_KEYS = (
    st.text(max_size=12) | st.sampled_from(["password", "api_key", "n", "k\x00"]) | st.integers()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    args=st.none() | st.lists(_VALUES, max_size=4) | _VALUES,
    kwargs=st.none() | st.dictionaries(_KEYS, _VALUES, max_size=4) | _VALUES,
    result=st.none() | st.text(max_size=40) | _SCALARS,
    error=st.none() | st.text(max_size=40),
    task=st.sampled_from(["t", "exempt"]),
    limit=st.sampled_from([60, 64 * 1024]),
)
def test_prepare_record_shortcut_stores_what_the_full_path_stores(
    args, kwargs, result, error, task, limit
) -> None:
    """Records kept as they are (nothing to redact, bound or clean) equal the full path's."""
    rules = PayloadRules(limit=limit, pattern=_compile(DEFAULT_REDACT_PATTERNS),
                         exempt=frozenset({"exempt"}))  # fmt: skip
    record = {"job_id": "j", "task_name": task, "args": args, "kwargs": kwargs,
              "result": result, "error_message": error}  # fmt: skip
    full = prepare(task, args=args, kwargs=kwargs, result=result, error_message=error, rules=rules)
    expected = dict(record)
    for name in ("args", "kwargs", "result", "error_message"):
        if record[name] is not None:
            expected[name] = getattr(full, name)
    assert prepare_record(record, rules) == expected


@pytest.mark.parametrize(
    "args, kwargs, lossy",
    [
        ([1, "two"], {"to": "a@example.com", "n": {"deep": [None, 1.5]}}, False),
        ([], {"password": REDACTED}, True),
        (["dsn postgres://u:[redacted]@h/db"], {}, True),
        ([[{"token": REDACTED}]], {}, True),
        ({TRUNCATED_KEY: True, "original_bytes": 9, "preview": ""}, {}, True),
        ([], {"blob": {TRUNCATED_KEY: True}}, True),
        ([], {"tree": "[max depth]"}, True),
        (None, None, False),
    ],
)
def test_is_lossy_finds_every_marker_a_stored_copy_can_carry(args, kwargs, lossy) -> None:
    from rearq_tasks.payloads import is_lossy

    assert is_lossy(args, kwargs) is lossy


def test_what_prepare_cuts_is_lossy_and_what_it_keeps_is_not() -> None:
    from rearq_tasks.payloads import is_lossy

    rules = PayloadRules(limit=200, pattern=_compile(DEFAULT_REDACT_PATTERNS), exempt=frozenset())
    kept = prepare("t", args=[1], kwargs={"to": "x"}, rules=rules)
    assert not is_lossy(kept.args, kept.kwargs)
    secret = prepare("t", kwargs={"password": "hunter2"}, rules=rules)
    assert is_lossy(secret.args, secret.kwargs)
    big = prepare("t", args=["x" * 500], rules=rules)
    assert is_lossy(big.args, big.kwargs)
