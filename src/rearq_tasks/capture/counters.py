"""Capture counters of this process, readable by other modules (metrics, health checks)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass
class CaptureStats:
    emitted: int = 0  # events handed to the stream
    buffered: int = 0  # events waiting in this process's buffer right now
    overflowed: int = 0  # events dropped because the buffer was full
    refused: int = 0  # events the full stream refused (kept in the buffer, sent later)
    send_failures: int = 0  # failed sends to Redis (the events stay buffered)
    read: int = 0  # events a collector in this process read from the stream
    written: int = 0  # TaskLog rows upserted by a collector in this process
    retried: int = 0  # write batches retried after a database error
    claimed: int = 0  # events taken over from a collector that died
    unknown_users: int = 0  # rows written without their user: no such user in the database


_lock = threading.Lock()
_stats = CaptureStats()


def incr(name: str, amount: int = 1) -> None:
    with _lock:
        setattr(_stats, name, getattr(_stats, name) + amount)


def set_value(name: str, value: int) -> None:
    with _lock:
        setattr(_stats, name, value)


def get_capture_stats() -> dict[str, int]:
    """A snapshot of this process's counters (cumulative since start, except ``buffered``)."""
    with _lock:
        return asdict(_stats)


def reset_capture_stats() -> None:
    global _stats
    with _lock:
        _stats = CaptureStats()
