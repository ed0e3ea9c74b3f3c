"""The capture stream is the buffer while the Django database is down: it is never trimmed
below what the collector group still has to read or acknowledge (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from rearq_tasks.capture.collector import GROUP
from rearq_tasks.capture.emitter import counters_key, send


@pytest.fixture
def stream(rearq_redis) -> Iterator[str]:
    name = f"rearq_tasks:test:{uuid.uuid4().hex}"
    yield name
    rearq_redis.delete(name, counters_key(name))


def _send(stream: str, cap: int, events: list[str], dropped: int = 0, refused: int = 0) -> int:
    from redis.asyncio import Redis

    async def go() -> int:
        client = Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
        try:
            return await send(client, stream, cap, events, dropped, refused)
        finally:
            await client.close()

    return asyncio.run(go())


def _read(client, stream: str, count: int | None = None) -> list[str]:
    found = client.xreadgroup(GROUP, "c1", {stream: ">"}, count=count)
    return [fields["e"] for _, items in found for _id, fields in items]


def test_full_stream_refuses_instead_of_trimming_unwritten_events(rearq_redis, stream) -> None:
    client = rearq_redis
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    first = [f"e{i}" for i in range(10)]
    assert _send(stream, 10, first) == 10
    assert _send(stream, 10, ["x1", "x2", "x3"]) == 0

    read = _read(client, stream, count=4)  # delivered, not acknowledged: still needed
    assert read == first[:4]
    assert _send(stream, 10, ["x1", "x2", "x3"]) == 0
    assert client.xlen(stream) == 10

    pending = client.xpending_range(stream, GROUP, "-", "+", 10)
    client.xack(stream, GROUP, *[p["message_id"] for p in pending])
    # Acknowledged entries make room (the last delivered one is kept as the group's mark).
    assert _send(stream, 10, ["x1", "x2", "x3"]) == 3
    assert _read(client, stream) == first[4:] + ["x1", "x2", "x3"]  # nothing unread was lost


def test_without_a_group_nothing_is_trimmed_and_the_cap_holds(rearq_redis, stream) -> None:
    assert _send(stream, 3, ["a", "b", "c", "d", "e"]) == 3
    assert [fields["e"] for _id, fields in rearq_redis.xrange(stream)] == ["a", "b", "c"]


def test_dropped_and_refused_events_are_counted_in_redis(rearq_redis, stream) -> None:
    assert _send(stream, 10, [], dropped=5) == 0
    assert _send(stream, 10, ["a"], dropped=2, refused=4) == 1
    counters = rearq_redis.hgetall(counters_key(stream))
    assert (counters["overflowed"], counters["refused"]) == ("7", "4")


def test_emitter_holds_refused_events_then_drops_past_its_buffer(rearq_redis, stream) -> None:
    from redis.asyncio import Redis

    from rearq_tasks.capture import counters
    from rearq_tasks.capture.emitter import Emitter

    counters.reset_capture_stats()
    rearq_redis.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async def go() -> tuple[list[bool], int]:
        client = Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
        emitter = Emitter(client, stream, maxlen=3, buffer_size=5, interval_ms=50)
        for i in range(7):
            emitter.emit({"job_id": f"j{i}", "status": "success"})
        sent = [await emitter.flush(), await emitter.flush()]
        rearq_redis.xreadgroup(GROUP, "c1", {stream: ">"})  # the collector reads ...
        rearq_redis.xack(stream, GROUP, *[i for i, _ in rearq_redis.xrange(stream)])  # ... writes
        sent.append(await emitter.flush())
        await client.close()
        return sent, len(emitter._buffer)

    sent, left = asyncio.run(go())
    assert sent == [False, False, True] and left == 0
    counted = counters.get_capture_stats()
    # 7 events, buffer 5: 2 dropped; 3 sent, 2 held while the stream was full (counted once).
    assert (counted["overflowed"], counted["refused"], counted["emitted"]) == (2, 2, 5)
    counters = rearq_redis.hgetall(counters_key(stream))
    assert (counters["overflowed"], counters["refused"]) == ("2", "2")
    assert [fields["e"] for _id, fields in rearq_redis.xrange(stream)][-2:] == [
        '{"job_id":"j3","status":"success"}',
        '{"job_id":"j4","status":"success"}',
    ]


@pytest.mark.django_db
def test_metrics_show_dropped_and_refused_events(rearq_redis) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from rearq_tasks.conf import conf
    from rearq_tasks.ops.metrics import render

    key = counters_key(conf.CAPTURE_STREAM)
    rearq_redis.delete(key, conf.CAPTURE_STREAM)
    try:
        rearq_redis.hset(key, mapping={"overflowed": 12, "refused": 40})
        rearq_redis.xadd(conf.CAPTURE_STREAM, {"e": "{}"})
        body, _ = render()
        found = {
            (s.name, s.labels.get("outcome")): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name.startswith("rearq_tasks_capture")
        }
        assert found[("rearq_tasks_capture_events_total", "overflowed")] == 12
        assert found[("rearq_tasks_capture_events_total", "refused")] == 40
        assert found[("rearq_tasks_capture_stream_length", None)] == 1
    finally:
        rearq_redis.delete(key, conf.CAPTURE_STREAM)


def _send_keeping(stream: str, cap: int, events: list[str], keep_ms: int) -> int:
    from redis.asyncio import Redis

    async def go() -> int:
        client = Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
        try:
            return await send(client, stream, cap, events, keep_ms=keep_ms)
        finally:
            await client.close()

    return asyncio.run(go())


def _ack_all(client, stream: str) -> None:
    _read(client, stream)
    pending = client.xpending_range(stream, GROUP, "-", "+", 1000)
    client.xack(stream, GROUP, *[p["message_id"] for p in pending])


def test_written_events_stay_for_live_feeds_while_the_stream_has_room(rearq_redis, stream):
    rearq_redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    assert _send_keeping(stream, 100, ["a", "b", "c"], keep_ms=60_000) == 3
    _ack_all(rearq_redis, stream)
    assert _send_keeping(stream, 100, ["d"], keep_ms=60_000) == 1
    kept = [fields["e"] for _id, fields in rearq_redis.xrange(stream)]
    assert kept == ["a", "b", "c", "d"], "written, but young: a feed may still resume from them"
    assert _send_keeping(stream, 100, ["e"], keep_ms=0) == 1
    assert [f["e"] for _i, f in rearq_redis.xrange(stream)] == ["c", "d", "e"], "trimmed at once"


def test_kept_events_never_take_the_room_of_unwritten_ones(rearq_redis, stream):
    rearq_redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    assert _send_keeping(stream, 10, [f"w{i}" for i in range(6)], keep_ms=60_000) == 6
    _ack_all(rearq_redis, stream)
    # At half the cap written entries are trimmed as without a window: all 10 slots are free
    # for unwritten events again (the group's last delivered entry stays as its mark).
    added = _send_keeping(stream, 10, [f"u{i}" for i in range(20)], keep_ms=60_000)
    assert added == 9
    assert [f["e"] for _i, f in rearq_redis.xrange(stream)][0] == "w5"


@pytest.mark.django_db(transaction=True)
def test_an_unknown_user_does_not_hold_back_its_batch() -> None:
    """A user id that names no user (deleted since the enqueue) fails the foreign key: the
    batch is written all the same, that row without its user, and counted."""
    from rearq_tasks.capture import counters
    from rearq_tasks.capture.collector import _write
    from rearq_tasks.models import TaskLog

    counters.reset_capture_stats()
    base = {"task_name": "t", "queue_name": "default", "status": "queued",
            "enqueue_time": 1_764_000_000_000.0}  # fmt: skip
    records = [
        {**base, "job_id": "known-user-less"},
        {**base, "job_id": "ghost", "user_id": 987654},
    ]
    assert _write(records) == 2
    assert TaskLog.objects.get(job_id="ghost").user_id is None
    assert TaskLog.objects.filter(job_id="known-user-less").exists()
    assert counters.get_capture_stats()["unknown_users"] == 1


def test_one_argument_carries_a_flush_and_each_event_is_one_entry(rearq_redis, stream) -> None:
    events = ['{"job_id":"a","e":"x\\ny"}', "{}", '{"s":"\\u00e9 \\" ,"}']
    assert _send(stream, 10, events) == 3
    assert [fields["e"] for _id, fields in rearq_redis.xrange(stream)] == events
    with pytest.raises(ValueError, match="raw newline"):
        _send(stream, 10, ["{}", '{"a":\n1}'])
    assert rearq_redis.xlen(stream) == 3  # nothing of the refused call went in


def test_start_is_built_at_flush_only_while_the_job_runs(rearq_redis, stream) -> None:
    import datetime as dt
    import json
    from types import SimpleNamespace

    from redis.asyncio import Redis

    from rearq_tasks.capture.emitter import Emitter

    def job(job_id: str) -> SimpleNamespace:
        return SimpleNamespace(job_id=job_id, task="t", args=[1], kwargs={}, job_retry=0,
                               job_retries=0, job_retry_after=60, expire_time=None,
                               enqueue_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # fmt: skip

    async def go() -> None:
        client = Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
        emitter = Emitter(client, stream, maxlen=100, buffer_size=100, interval_ms=50)
        emitter.started(job("ended"), "rearq:queue:q", "w", 1.5)
        emitter.started(job("running"), "rearq:queue:q", "w", 2.5)
        emitter.emit({"job_id": "ended", "status": "success"})
        assert await emitter.flush()
        await client.close()

    asyncio.run(go())
    sent = [json.loads(f["e"]) for _id, f in rearq_redis.xrange(stream)]
    assert [(e["job_id"], e["status"]) for e in sent] == [
        ("ended", "success"),
        ("running", "in_progress"),
    ]
    start = sent[1]
    assert (start["start_time"], start["worker_id"], start["queue_name"]) == (2.5, "w", "q")
    assert start["args"] == [1] and start["enqueue_time"] == 1767225600000.0
