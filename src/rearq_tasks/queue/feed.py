"""The live event feed: job transitions read from the capture stream, as Server-Sent Events.

Workers' emitters write every transition to ``CAPTURE_STREAM``; a feed reads that stream with
plain ``XRANGE``/``XREAD`` from its own position (never as a member of the collectors'
consumer group, which would take entries away from them), so it costs the database nothing
and any number of feeds see every entry. A stream entry id is the SSE event id: a client that
reconnects with ``Last-Event-ID`` resumes right after it.

Collectors trim entries once written (``XTRIM MINID``: always from the front), so a position
may point before what the stream still holds. Each read also asks, in the same transaction,
whether the position's own entry is still there and what the stream holds (``XINFO STREAM``,
Redis 7): when it was trimmed and the stream starts after it, entries after the position may
be gone, and the client gets ``event: reset`` (re-read the list, then follow the feed)
instead of a silent gap.

:class:`Feed` is the state of one connection; :func:`iter_sync` (WSGI: holds a thread) and
:func:`iter_async` (ASGI: a coroutine on the event loop) drive it the same way.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from rearq_tasks.capture.events import iso_from_ms, loads
from rearq_tasks.conf import conf
from rearq_tasks.payloads import prepare_record

READ_COUNT = 200  # entries per read: what one connection holds in memory at most
RETRY_MS = 2000  # the reconnect delay the feed asks EventSource to use
EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
FIELDS: tuple[str, ...] = (
    "job_id", "task_name", "queue_name", "status", "success", "job_retries", "duration_ms",
    "enqueue_time", "start_time", "finish_time", "worker_id", "error_message",
)  # fmt: skip
TIMES = ("enqueue_time", "start_time", "finish_time")


def parse_event_id(value: str) -> tuple[int, int] | None:
    """A stream entry id (``<ms>-<seq>``) as a sortable pair; None when it is not one."""
    match = EVENT_ID.match(value.strip())
    return (int(match[1]), int(match[2])) if match else None


def _key(entry_id: str) -> tuple[int, int]:
    return parse_event_id(entry_id) or (0, 0)


@dataclass(frozen=True)
class FeedFilter:
    """The list's filters that an event can answer (empty: no condition)."""

    task_contains: str = ""
    task_names: frozenset[str] = frozenset()
    queue_names: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    job_ids: frozenset[str] = frozenset()
    worker_ids: frozenset[str] = frozenset()

    def matches(self, event: dict[str, Any]) -> bool:
        task = str(event.get("task_name") or "")
        checks = (
            (self.task_names, task),
            (self.queue_names, event.get("queue_name")),
            (self.statuses, event.get("status")),
            (self.job_ids, event.get("job_id")),
            (self.worker_ids, event.get("worker_id")),
        )
        if any(allowed and value not in allowed for allowed, value in checks):
            return False
        return self.task_contains.lower() in task.lower()


@dataclass(frozen=True)
class FeedLimits:
    max_seconds: float
    max_events: int
    heartbeat: float

    @classmethod
    def from_conf(cls) -> FeedLimits:
        return cls(conf.STREAM_MAX_SECONDS, conf.STREAM_MAX_EVENTS, conf.STREAM_HEARTBEAT_SECONDS)


def public(event: dict[str, Any]) -> dict[str, Any]:
    """What a feed shows of an event: the list's columns, redacted and bounded like the row."""
    event = prepare_record(event)
    data = {name: event.get(name) for name in FIELDS}
    for name in TIMES:
        data[name] = iso_from_ms(data[name])
    return data


def frame(data: Any, event: str | None = None, event_id: str | None = None) -> str:
    """One SSE message (``data`` as one line of JSON)."""
    lines = [f"id: {event_id}"] if event_id else []
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return "\n".join(lines) + "\n\n"


@dataclass
class Feed:
    """One connection: its position in the stream, its filter, its limits and counts."""

    stream: str
    filter: FeedFilter
    cursor: str | None  # None: start at the stream's end
    limits: FeedLimits
    clock: Callable[[], float] = time.monotonic
    sent: int = 0
    caught_up: bool = False
    ended: str | None = None
    _started: float = field(default=0.0, init=False)
    _last_write: float = field(default=0.0, init=False)
    _last_id_sent: str | None = field(default=None, init=False)
    _out: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self._started = self._last_write = self.clock()
        self._last_id_sent = self.cursor
        # Sent with the first read's events, once the position is known.
        self._out = f"retry: {RETRY_MS}\n: rearq-tasks live feed\n\n"

    def reads(self, pipe: Any) -> Any:
        """Add this read's commands to a MULTI pipeline: the stream's state and the next
        entries, seen at one instant (so a trim cannot slip between them)."""
        pipe.xinfo_stream(self.stream)
        if self.cursor is not None:
            pipe.xrange(self.stream, self.cursor, self.cursor)
            pipe.xrange(self.stream, f"({self.cursor}", "+", count=READ_COUNT)
        return pipe

    def advance(self, results: list[Any]) -> int | None:
        """Take one read's results; returns how long to block for new entries (None: there
        is something to send, or more to read, or the end is reached)."""
        self._out += self.handle(results)
        if self.caught_up and self.ended is None and not self._out:
            return self.wait_ms()
        return None

    def take(self) -> str:
        """What to send now: the read's frames, a heartbeat if due, the closing frame."""
        text = self._out + self.tick()
        self._out = ""
        if self.ended is not None:
            text += self.closing()
        return text

    def handle(self, results: list[Any]) -> str:
        """Frames for one read's results; moves the position on."""
        info = results[0] if isinstance(results[0], dict) else {}
        newest = info.get("last-generated-id") or "0-0"
        if self.cursor is None:
            self.cursor = newest
            self.caught_up = True
            return ""
        entries = results[2] if isinstance(results[2], list) else []
        frames = []
        if _key(self.cursor) > _key(newest):
            frames.append(self._reset("unknown_id", newest))
            entries = []
        elif _trimmed_after(self.cursor, info, position_kept=bool(results[1])):
            # What follows the position now is the stream's first entry: read on from there.
            frames.append(frame({"reason": "trimmed", "position": self.cursor}, "reset"))
        self.caught_up = len(entries) < READ_COUNT
        for entry_id, fields in entries:
            self.cursor = entry_id
            event = _decode(fields)
            if event is None or not self.filter.matches(event):
                continue
            frames.append(frame(public(event), "transition", entry_id))
            self._last_id_sent = entry_id
            self.sent += 1
            if self.sent >= self.limits.max_events:
                self.ended = "max_events"
                break
        return self._written("".join(frames))

    def _reset(self, reason: str, position: str) -> str:
        self.cursor = self._last_id_sent = position
        return frame({"reason": reason, "position": position}, "reset", position)

    def _written(self, text: str) -> str:
        if text:
            self._last_write = self.clock()
        return text

    def wait_ms(self) -> int:
        """How long the next blocking read may wait: until a heartbeat or the end is due."""
        now = self.clock()
        due = min(self._last_write + self.limits.heartbeat, self._started + self.limits.max_seconds)
        return max(1, int((due - now) * 1000))

    def tick(self) -> str:
        """A heartbeat comment when one is due (with the position, so a client whose filter
        skipped many entries does not resume from far back), and the time limit."""
        now = self.clock()
        if self.ended is None and now - self._started >= self.limits.max_seconds:
            self.ended = "max_seconds"
        if now - self._last_write < self.limits.heartbeat:
            return ""
        text = ": keep-alive\n"
        if self.cursor and self.cursor != self._last_id_sent:
            text += f"id: {self.cursor}\n"
            self._last_id_sent = self.cursor
        return self._written(text + "\n")

    def closing(self) -> str:
        if self.ended == "error":
            return ""
        return frame({"reason": self.ended, "position": self.cursor}, "end", self.cursor)

    def fail(self, exc: Exception) -> None:
        """Redis failed: say so and end (the client reconnects after ``retry``)."""
        self.ended = "error"
        detail = {"reason": "redis_unavailable", "detail": type(exc).__name__}
        self._out += frame(detail, "error")


def _trimmed_after(cursor: str, info: dict[str, Any], position_kept: bool) -> bool:
    """Whether entries after ``cursor`` may have been removed before this client read them.

    Trimming is from the front, so while the position's own entry is held nothing after it
    is gone. Otherwise: something was ever removed (more entries added than held, or an
    ``XDEL`` past the position) and the stream now starts after the position.
    """
    deleted = info.get("max-deleted-entry-id")
    if deleted and _key(deleted) > _key(cursor):
        return True
    if position_kept or not info:
        return False
    removed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
    first = info.get("recorded-first-entry-id") or info.get("last-generated-id") or "0-0"
    return removed and _key(first) > _key(cursor)


def _decode(fields: dict[str, str] | None) -> dict[str, Any] | None:
    raw = fields.get("e") if fields else None
    try:
        event = loads(raw) if raw is not None else None
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("job_id") else None


def iter_sync(feed: Feed, client: Any, on_close: Callable[[], None]) -> Iterator[str]:
    """The feed under WSGI: a generator that holds its server thread while it runs."""
    try:
        while feed.ended is None:
            try:
                wait = feed.advance(feed.reads(client.pipeline(transaction=True)).execute(False))
                if wait:
                    client.xread({feed.stream: feed.cursor}, count=1, block=wait)
            except RedisError as exc:
                feed.fail(exc)
            if text := feed.take():
                yield text
    finally:
        on_close()
        client.close()


async def iter_async(feed: Feed, client: Any, on_close: Callable[[], None]) -> AsyncIterator[str]:
    """The feed under ASGI: an async generator, no thread held between events."""
    try:
        while feed.ended is None:
            try:
                reads = feed.reads(client.pipeline(transaction=True))
                wait = feed.advance(await reads.execute(False))
                if wait:
                    await client.xread({feed.stream: feed.cursor}, count=1, block=wait)
            except RedisError as exc:
                feed.fail(exc)
            if text := feed.take():
                yield text
    finally:
        on_close()
        await client.close()


class Slots:
    """Counts open feeds in this process; ``take()`` is False at the limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def releaser(self) -> Callable[[], None]:
        """A release that counts once however often it is called (generator end, close)."""
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if not done.is_set():
                    done.set()
                    self.open -= 1

        return release


SLOTS = Slots()


def names(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(v for v in values or () if v)
