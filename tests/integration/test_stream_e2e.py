"""The live feed end to end: a real worker runs jobs while a client follows
``/cfg/tasks/logs/stream/``, reconnecting with ``Last-Event-ID`` each time the server closes."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from harness.factories import staff_viewer
from tests.test_stream import URL, parse

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_feed_shows_each_transition_once_in_order_across_reconnects(
    shared_worker, settings
) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "STREAM_MAX_EVENTS": 4,  # the server closes after 4 events: several reconnects
        "STREAM_MAX_SECONDS": 20,
        "STREAM_HEARTBEAT_SECONDS": 0.5,
    }
    client = Client()
    client.force_login(staff_viewer(username="feed-reader"))
    first = client.get(URL, {"task_name_exact": "sleep"})
    chunks = iter(first.streaming_content)
    assert b"retry:" in next(chunks)  # the position is taken: what follows is seen
    job_ids = [enqueue_sync("sleep", 0.3) for _ in range(3)]

    messages = parse("".join(c.decode() for c in chunks))
    connections = 1
    deadline = time.monotonic() + 60
    seen = [m for m in messages if m.get("event") == "transition"]
    while time.monotonic() < deadline:
        done = {m["data"]["job_id"] for m in seen if m["data"]["status"] == "success"}
        if done >= set(job_ids):
            break
        last_id = messages[-1]["id"]  # the "end" event names where to resume
        response = client.get(URL, {"task_name_exact": "sleep"}, headers={"Last-Event-ID": last_id})
        connections += 1
        messages = parse("".join(c.decode() for c in response.streaming_content))
        assert messages[-1]["event"] == "end"
        assert not [m for m in messages if m.get("event") == "reset"]
        seen += [m for m in messages if m.get("event") == "transition"]

    assert connections >= 3, "9 transitions at 4 per connection need reconnects"
    ids = [m["id"] for m in seen]
    assert len(ids) == len(set(ids)), "no event twice"
    for job_id in job_ids:
        statuses = [m["data"]["status"] for m in seen if m["data"]["job_id"] == job_id]
        assert statuses == ["queued", "in_progress", "success"], (job_id, statuses)
    assert {m["data"]["job_id"] for m in seen} == set(job_ids)
    worker = next(m for m in seen if m["data"]["status"] == "in_progress")["data"]["worker_id"]
    assert worker.startswith("tests-")
