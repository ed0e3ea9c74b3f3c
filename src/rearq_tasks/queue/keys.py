"""ReArq 0.2.9's Redis protocol, named once: key names, the cancel message, sentinel nodes.

Read from ``rearq/constants.py``, ``rearq/worker.py`` and ``rearq/task.py`` (see
docs/capture.md). This module imports nothing: capture hooks and reconcile use it alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

QUEUE_PREFIX = "rearq:queue:"  # a queue is the stream QUEUE_PREFIX + name
DEFAULT_QUEUE = "default"
CHANNEL = "rearq:channel"  # pub/sub: {"type": "cancel_task", "task_name", "job_id"}
CANCEL_TASK = "cancel_task"
TASK_KEY = "rearq:task"  # hash: task name -> "enabled" / "disabled"
TASK_DISABLED = "disabled"
WORKER_KEY = "rearq:worker"  # hash: worker name -> JSON heartbeat {queue, is_timer, ms, ...}
TASK_NOT_FOUND = "task not found"  # the JobResult text of a task a worker does not know
# Ours, not ReArq's: marks a job id whose stream message was added, so an operation that
# replays a chunk never adds a second message for the same retry (see queue/operations.py).
ENQUEUED_MARK = "rearq_tasks:enqueued:"
ENQUEUED_MARK_SECONDS = 7 * 24 * 3600
# KEYS: the queue stream, the mark; ARGV: job id, mark TTL. XADD only if the mark is new.
XADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], '*', 'job_id', ARGV[1])
end
return false
"""


def queue_key(name: str | None) -> str:
    """``default`` → ``rearq:queue:default`` (a key passes through unchanged)."""
    name = name or DEFAULT_QUEUE
    return name if name.startswith(QUEUE_PREFIX) else QUEUE_PREFIX + name


def short_queue(key: str | None) -> str | None:
    """``rearq:queue:default`` → ``default``: TaskLog stores the queue's own name."""
    if key is None:
        return None
    return key[len(QUEUE_PREFIX) :] if key.startswith(QUEUE_PREFIX) else key


def job_status(job: Any) -> str:
    """A ReArq ``Job``'s status as text (``JobStatus`` member or, on a bare object, a str)."""
    return getattr(job.status, "value", job.status)


def sentinel_nodes(nodes: Iterable[Any]) -> list[tuple[str, int]]:
    """``["host:port", ("host", port)]`` → ``[("host", port)]``, as redis-py's Sentinel takes."""
    parsed = []
    for node in nodes:
        if isinstance(node, str):
            host, port = node.rsplit(":", 1)
        else:
            host, port = node
        parsed.append((str(host), int(port)))
    return parsed
