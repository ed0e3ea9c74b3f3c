"""Event times (issue #19): ``to_ms``/``now_ms`` skip ``round(…, 3)`` but keep its value."""

from __future__ import annotations

import datetime as dt
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from rearq_tasks.capture.events import from_ms, now_ms, to_ms

AWARE = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2038, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7, minutes=-30)),
                               dt.timezone(dt.timedelta(hours=13))]),
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(AWARE)
def test_to_ms_is_the_rounded_timestamp(value: dt.datetime) -> None:
    assert to_ms(value) == round(value.timestamp() * 1000, 3)
    assert from_ms(to_ms(value)) == value


def test_to_ms_stays_exact_where_the_float_timestamp_is_not() -> None:
    """Past 2038 a float timestamp's last bit is about a microsecond; whole µs are not."""
    value = dt.datetime(2110, 1, 1, 0, 0, 0, 11, tzinfo=dt.UTC)
    assert to_ms(value) == 4417977600000.011


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2037, 1, 1)))
def test_a_naive_time_is_read_as_local_time_as_before(value: dt.datetime) -> None:
    assert to_ms(value) == round(value.timestamp() * 1000, 3)


def test_now_ms_is_now_to_the_microsecond() -> None:
    before = time.time() * 1000
    now = now_ms()
    after = time.time() * 1000
    assert before - 0.001 <= now <= after + 0.001
    assert now == round(now, 3)
    assert to_ms(None) is None
