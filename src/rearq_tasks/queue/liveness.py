"""What ReArq's own Redis says about its workers: heartbeats, queue consumers, the timer.

ReArq 0.2.9 writes one field per worker into the hash ``rearq:worker`` every 10 s (value
JSON ``{queue, is_timer, ms, group, consumer}``) and deletes it on a clean stop; a killed
worker leaves its last heartbeat behind, so age decides liveness, not presence. A worker
consuming several queues overwrites its single field once per queue, so its heartbeat
names only the last one: the queues' consumer groups (``XINFO CONSUMERS``) fill the gap —
Redis lists a consumer there once a message of that queue has been delivered to it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from rearq_tasks.conf import conf
from rearq_tasks.queue.connection import redis_client
from rearq_tasks.queue.keys import WORKER_KEY, queue_key, short_queue

__all__ = ["Heartbeat", "WorkerState", "read_workers", "redis_client"]


@dataclass(frozen=True)
class Heartbeat:
    """One field of ``rearq:worker``."""

    name: str
    queue: str
    is_timer: bool
    last_seen: dt.datetime
    group: str
    consumer: str
    alive: bool

    @property
    def age_seconds(self) -> float:
        return (dt.datetime.now(dt.UTC) - self.last_seen).total_seconds()


@dataclass(frozen=True)
class WorkerState:
    """Everything a health check or a metric needs, read in one round of commands."""

    heartbeats: tuple[Heartbeat, ...]
    queues: dict[str, set[str]] = field(default_factory=dict)

    @property
    def live_workers(self) -> list[Heartbeat]:
        return [hb for hb in self.heartbeats if hb.alive and not hb.is_timer]

    @property
    def dead_workers(self) -> list[Heartbeat]:
        return [hb for hb in self.heartbeats if not hb.alive]

    @property
    def timer_alive(self) -> bool:
        return any(hb.alive and hb.is_timer for hb in self.heartbeats)

    def live_by_queue(self) -> dict[str, int]:
        """Live (non-timer) workers per queue name, queues without any omitted."""
        counts: dict[str, int] = {}
        for names in self.queues.values():
            for queue in names:
                counts.setdefault(queue, 0)
        for hb in self.live_workers:
            for queue in self.queues.get(hb.name, {hb.queue}):
                counts[queue] = counts.get(queue, 0) + 1
        return counts


def parse_heartbeat(name: str, raw: str, now: dt.datetime, stale_after: float) -> Heartbeat | None:
    """Decode one hash field; None for a value ReArq would not have written."""
    try:
        value = json.loads(raw)
        last_seen = dt.datetime.fromtimestamp(int(value["ms"]) / 1000, tz=dt.UTC)
    except (ValueError, TypeError, KeyError):
        return None
    return Heartbeat(
        name=name,
        queue=short_queue(str(value.get("queue") or "")) or "",
        is_timer=bool(value.get("is_timer")),
        last_seen=last_seen,
        group=str(value.get("group") or ""),
        consumer=str(value.get("consumer") or ""),
        alive=(now - last_seen).total_seconds() <= stale_after,
    )


def read_workers(
    client: redis.Redis,
    stale_after: float | None = None,
    queues: Iterable[str] = (),
    now: dt.datetime | None = None,
    every_queue: bool = False,
) -> WorkerState:
    """Read heartbeats and, for ``queues``, which live workers consume them.

    The consumer groups of a queue some live heartbeat names already are skipped (enough for
    a health check); ``every_queue`` reads them all, and those of every queue a heartbeat
    names, for every worker's complete list.

    Raises ``redis.RedisError`` when Redis cannot be reached: callers decide what that means.
    """
    stale_after = conf.WORKER_STALE_SECONDS if stale_after is None else stale_after
    now = now or dt.datetime.now(dt.UTC)
    heartbeats = tuple(
        hb
        for name, raw in sorted(client.hgetall(WORKER_KEY).items())
        if (hb := parse_heartbeat(name, raw, now, stale_after)) is not None
    )
    served: dict[str, set[str]] = {hb.name: {hb.queue} for hb in heartbeats if not hb.is_timer}
    by_identity = {(hb.group, hb.consumer): hb.name for hb in heartbeats if not hb.is_timer}
    # A timer's heartbeat names a queue it does not read: only workers' heartbeats count here.
    named = {hb.queue for hb in heartbeats if hb.alive and not hb.is_timer}
    if every_queue:  # every queue given or named by any worker's heartbeat
        extra = sorted(set(queues) | {hb.queue for hb in heartbeats if not hb.is_timer})
    else:
        extra = sorted(set(queues) - named)
    for queue in extra:
        for group, consumer in _consumers(client, queue_key(queue)):
            name = by_identity.get((group, consumer))
            if name is not None:
                served[name].add(queue)
    return WorkerState(heartbeats=heartbeats, queues=served)


def _consumers(client: redis.Redis, stream: str) -> list[tuple[str, str]]:
    """(group, consumer) pairs reading ``stream``; none when the stream does not exist."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return []
    pipe = client.pipeline(transaction=False)  # one round trip, however many groups
    for group in groups:
        pipe.xinfo_consumers(stream, group["name"])
    pairs = []
    for group, consumers in zip(groups, pipe.execute(), strict=True):
        pairs.extend((str(group["name"]), str(consumer["name"])) for consumer in consumers)
    return pairs
