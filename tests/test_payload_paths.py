"""Capture and reconcile store the same columns for the same job.

The capture path sees the real values: the hook builds the event, the emitter prepares it
(redaction, bounds) and encodes it for the Redis stream, the collector decodes, folds and
upserts. Reconcile sees ReArq's tables only: the original args/kwargs and ``str(result)``.
Whatever the payload, both paths must store identical args, kwargs, result and error text.
"""

from __future__ import annotations

import datetime as dt
import types
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rearq_tasks.capture.events import dumps, fold, job_event, loads
from rearq_tasks.capture.upsert import upsert_records
from rearq_tasks.models import TaskLog
from rearq_tasks.payloads import payload_rules, prepare_record
from rearq_tasks.queue.reconcile import record_from_rearq

SECRETS = ("hunter2", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")
KEYS = st.sampled_from(["password", "api_key", "token", "order_id", "author", "bypass_cache",
                        "tokens_used", "dsn", "note", "Authorization"])  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [f"postgres://u:{SECRETS[0]}@h/db", f"Bearer {SECRETS[1]}", "4111111111111111"]
    ),
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), TEXT,
                   st.floats(allow_nan=False, allow_infinity=False, width=32))  # fmt: skip
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _job(args: list[Any], kwargs: dict[str, Any], status: str) -> Any:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    return types.SimpleNamespace(
        job_id=uuid.uuid4().hex, task="paths", args=args, kwargs=kwargs, status=status,
        job_retry=0, job_retries=0, job_retry_after=60, enqueue_time=now, expire_time=None,
    )  # fmt: skip


def _through_capture(event: dict[str, Any]) -> None:
    """What the emitter and collector do with a worker's event."""
    raw = dumps(prepare_record(event, payload_rules()))
    upsert_records(fold([loads(raw)]))


def _stored(job_id: str) -> dict[str, Any]:
    return TaskLog.objects.filter(job_id=job_id).values(
        "args", "kwargs", "result", "error_message"
    )[0]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(VALUE, max_size=3), kwargs=st.dictionaries(KEYS, VALUE, max_size=4),
       result=VALUE)  # fmt: skip
def test_capture_and_reconcile_store_identical_columns(args, kwargs, result) -> None:
    finished = dt.datetime(2026, 11, 30, 12, 0, 1, tzinfo=dt.UTC)
    captured = _job(args, kwargs, "success")
    _through_capture(
        job_event(
            captured,
            "success",
            "default",
            success=True,
            result=result,
            start_time=1.0,
            finish_time=2.0,
        )  # fmt: skip
    )
    reconciled = _job(args, kwargs, "success")
    latest = types.SimpleNamespace(worker="w", start_time=finished, finish_time=finished,
                                   result=str(result), success=True)  # fmt: skip
    upsert_records([record_from_rearq(reconciled, latest, "default")])
    a, b = _stored(captured.job_id), _stored(reconciled.job_id)
    assert a == b
    for secret in SECRETS:
        assert secret not in repr(a)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message=st.one_of(TEXT, st.text(max_size=60)), secret_key=st.sampled_from(["password", "token"])
)
def test_error_messages_store_the_same_on_both_paths(message: str, secret_key: str) -> None:
    text = f"Run job error, exc: {message} {secret_key}={SECRETS[0]}"
    captured = _job([], {}, "failed")
    _through_capture(job_event(captured, "failed", "default", success=False, error_message=text))
    reconciled = _job([], {}, "failed")
    finished = dt.datetime(2026, 11, 30, 12, 0, 1, tzinfo=dt.UTC)
    latest = types.SimpleNamespace(worker="w", start_time=finished, finish_time=finished,
                                   result=text, success=False)  # fmt: skip
    upsert_records([record_from_rearq(reconciled, latest, "default")])
    a, b = _stored(captured.job_id), _stored(reconciled.job_id)
    assert a["error_message"] == b["error_message"]
    assert SECRETS[0] not in a["error_message"]
