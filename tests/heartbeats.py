"""Write worker heartbeats exactly the way ReArq 0.2.9's ``Worker._push_heartbeat`` does."""

from __future__ import annotations

import json
import time

import redis


def push_heartbeat(
    client,
    group: str = "host-a",
    consumer: str | int = 4242,
    queue: str = "default",
    is_timer: bool = False,
    age_seconds: float = 0,
) -> str:
    name = f"{group}-{consumer}"
    value = {
        "queue": f"rearq:queue:{queue}",
        "is_timer": is_timer,
        "ms": int((time.time() - age_seconds) * 1000),
        "group": group,
        "consumer": consumer,
    }
    client.hset("rearq:worker", name, value=json.dumps(value))
    return name


def consume(client, queue: str, group: str, consumer: str | int) -> None:
    """What a worker's XREADGROUP leaves behind once it took a job: the group knows the consumer.

    (Redis creates a consumer only when a message is delivered to it, not on an empty read.)
    """
    stream = f"rearq:queue:{queue}"
    try:
        client.xgroup_create(stream, group, mkstream=True)
    except redis.ResponseError as exc:  # BUSYGROUP: the group exists already
        if "BUSYGROUP" not in str(exc):
            raise
    client.xadd(stream, {"job_id": "j1"})
    client.xreadgroup(group, str(consumer), {stream: ">"}, count=1, block=None)
