"""The live feed (``/cfg/tasks/logs/stream/``) on the real Redis: events written to the capture
stream the way emitters write them, read back as Server-Sent Events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.test import AsyncClient, Client

from harness.factories import UserFactory, staff_viewer
from rearq_tasks.capture.events import dumps, now_ms
from rearq_tasks.conf import conf
from rearq_tasks.queue import feed as feeds

pytestmark = pytest.mark.django_db
URL = "/cfg/tasks/logs/stream/"


@pytest.fixture
def stream(settings, rearq_redis):
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "CAPTURE_STREAM": f"rearq_tasks:test-feed:{uuid.uuid4().hex}",
        "STREAM_MAX_SECONDS": 2,
        "STREAM_HEARTBEAT_SECONDS": 0.5,
    }
    yield conf.CAPTURE_STREAM
    rearq_redis.delete(conf.CAPTURE_STREAM)


def add(redis: Any, job_id: str, status: str, **fields: Any) -> str:
    event = {"job_id": job_id, "task_name": "send_email", "queue_name": "default"}
    event.update(status=status, enqueue_time=now_ms(), **fields)
    return redis.xadd(conf.CAPTURE_STREAM, {"e": dumps(event)})


def parse(text: str) -> list[dict[str, Any]]:
    """SSE messages as dicts (comments and the ``retry:`` hint dropped; ``data`` decoded)."""
    messages = []
    for block in text.split("\n\n"):
        message: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name and not line.startswith(":"):
                message[name] = json.loads(value) if name == "data" else value
        if "event" in message or "data" in message:
            messages.append(message)
    return messages


def server_close(response: Any) -> None:
    """Close a response the way a server does when its client goes away, keeping the test's
    database connection (Django's test client does the same for a consumed response)."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def read_all(response: Any) -> list[dict[str, Any]]:
    """The whole feed (it ends by itself: STREAM_MAX_SECONDS is short here)."""
    return parse("".join(c.decode() for c in response.streaming_content))


def viewer() -> Client:
    client = Client()
    client.force_login(staff_viewer(username=f"v-{uuid.uuid4().hex[:6]}"))
    return client


def transitions(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (m["data"]["job_id"], m["data"]["status"])
        for m in messages
        if m.get("event") == "transition"
    ]


def test_needs_the_list_permission(stream) -> None:
    assert Client().get(URL).status_code == 403
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    assert staff.get(URL).status_code == 403


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=bogus", "status"),
        ("status_in=queued,nope", "status_in"),
        ("ordering=id", "ordering"),
    ],
)
def test_bad_parameter_is_a_400_naming_it(stream, query: str, named: str) -> None:
    response = viewer().get(f"{URL}?{query}")
    assert response.status_code == 400 and named in response.json()


def test_bad_last_event_id_is_a_400(stream) -> None:
    response = viewer().get(URL, headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400 and "Last-Event-ID" in response.json()


def test_resumes_after_last_event_id_in_order_with_filters(stream, rearq_redis) -> None:
    first = add(rearq_redis, "a", "queued")
    add(rearq_redis, "a", "in_progress", start_time=now_ms(), worker_id="w-1")
    add(rearq_redis, "b", "queued", task_name="resize")
    add(rearq_redis, "c", "queued", queue_name="slowq")
    add(rearq_redis, "a", "success", finish_time=now_ms(), duration_ms=5, success=True)
    response = viewer().get(URL, headers={"Last-Event-ID": first})
    assert response["Content-Type"].startswith("text/event-stream")
    assert transitions(read_all(response)) == [
        ("a", "in_progress"), ("b", "queued"), ("c", "queued"), ("a", "success"),
    ]  # fmt: skip
    filtered = viewer().get(
        f"{URL}?task_name=EMAIL&queue_name=default&status_in=in_progress,success",
        headers={"Last-Event-ID": "0-0"},
    )
    messages = read_all(filtered)
    assert transitions(messages) == [("a", "in_progress"), ("a", "success")]
    done = [m for m in messages if m.get("event") == "transition"][-1]["data"]
    assert done["success"] is True and done["duration_ms"] == 5
    assert done["finish_time"].endswith("Z") and "kwargs" not in done
    assert messages[-1]["event"] == "end" and messages[-1]["data"]["reason"] == "max_seconds"


def test_new_client_starts_at_the_end_and_sees_what_comes(stream, rearq_redis) -> None:
    add(rearq_redis, "old", "queued")
    response = viewer().get(URL)
    chunks = iter(response.streaming_content)
    opening = next(chunks)
    assert b"retry: 2000" in opening
    add(rearq_redis, "new", "queued")
    text = "".join(c.decode() for c in chunks)
    assert transitions(parse(text)) == [("new", "queued")]


def test_trimmed_position_gets_a_reset(stream, rearq_redis) -> None:
    gone = add(rearq_redis, "a", "queued")
    add(rearq_redis, "a", "in_progress")
    kept = add(rearq_redis, "a", "success")
    rearq_redis.xtrim(conf.CAPTURE_STREAM, minid=kept, approximate=False)
    messages = read_all(viewer().get(URL, headers={"Last-Event-ID": gone}))
    assert messages[0]["event"] == "reset" and messages[0]["data"]["reason"] == "trimmed"
    assert transitions(messages) == [("a", "success")]
    assert messages[1]["id"] == kept


def test_position_from_another_stream_gets_a_reset(stream, rearq_redis) -> None:
    add(rearq_redis, "a", "queued")
    messages = read_all(viewer().get(URL, headers={"Last-Event-ID": "99999999999999-0"}))
    assert messages[0]["event"] == "reset" and messages[0]["data"]["reason"] == "unknown_id"


def test_max_events_ends_the_connection_at_a_resumable_id(settings, stream, rearq_redis) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "STREAM_MAX_EVENTS": 2}
    ids = [add(rearq_redis, f"j{n}", "queued") for n in range(4)]
    messages = read_all(viewer().get(URL, headers={"Last-Event-ID": "0-0"}))
    assert transitions(messages) == [("j0", "queued"), ("j1", "queued")]
    assert messages[-1]["event"] == "end" and messages[-1]["data"]["reason"] == "max_events"
    again = read_all(viewer().get(URL, headers={"Last-Event-ID": messages[-1]["id"]}))
    assert transitions(again) == [("j2", "queued"), ("j3", "queued")]
    assert messages[-1]["id"] == ids[1]


def test_heartbeats_carry_the_position_past_filtered_entries(stream, rearq_redis) -> None:
    skipped = add(rearq_redis, "a", "queued", task_name="other")
    text = "".join(
        c.decode()
        for c in viewer().get(f"{URL}?task_name_exact=nothing&last_event_id=0-0").streaming_content
    )
    assert ": keep-alive\nid: " + skipped in text


def test_connections_are_capped_and_slots_come_back(settings, stream) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "STREAM_MAX_CONNECTIONS": 1}
    client = viewer()
    opened = client.get(URL)
    refused = client.get(URL)
    assert refused.status_code == 503 and refused["Retry-After"] == "5"
    assert "STREAM_MAX_CONNECTIONS" in refused.json()["detail"]
    server_close(opened)  # before its first byte: the client went away
    assert feeds.SLOTS.open == 0
    again = client.get(URL)
    assert again.status_code == 200
    server_close(again)


def test_error_text_is_redacted_like_the_row(stream, rearq_redis) -> None:
    add(rearq_redis, "a", "failed", error_message="ValueError: bad password='hunter2secret'")
    (message,) = [
        m
        for m in read_all(viewer().get(URL, headers={"Last-Event-ID": "0-0"}))
        if m.get("event") == "transition"
    ]
    assert "hunter2secret" not in json.dumps(message)


@pytest.mark.django_db(transaction=True)
async def test_asgi_feed_is_an_async_stream(stream, rearq_redis) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(staff_viewer)(username="async-viewer")
    client = AsyncClient()
    await client.aforce_login(user)
    first = add(rearq_redis, "a", "queued")
    add(rearq_redis, "a", "success")
    started = time.monotonic()
    response = await client.get(URL, headers={"Last-Event-ID": first})
    assert response.is_async
    text = "".join([c.decode() async for c in response.streaming_content])
    assert transitions(parse(text)) == [("a", "success")]
    assert time.monotonic() - started < 10
    from django.db import connections

    await sync_to_async(connections.close_all)()  # the view's thread: the test client keeps it


def test_redis_down_is_an_error_event_without_the_url(settings, stream) -> None:
    from harness.network import free_port

    url = f"redis://:pa55-secret@127.0.0.1:{free_port()}/0"
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": url}
    response = viewer().get(URL)
    text = "".join(c.decode() for c in response.streaming_content)
    (message,) = parse(text)
    assert message["event"] == "error" and message["data"]["reason"] == "redis_unavailable"
    assert "pa55-secret" not in text and "retry: 2000" in text
    assert feeds.SLOTS.open == 0
