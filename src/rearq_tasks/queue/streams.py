"""The queue streams and consumer groups a worker reads, created before ReArq reads them.

ReArq 0.2.9's ``Worker._pre_run`` creates the groups in one ``try`` around the loop: the first
``BUSYGROUP`` (a queue this group already reads) ends the loop, the queues after it get no
group, and the worker's first ``XREADGROUP`` crashes with ``NOGROUP`` — e.g. ``-q a -q b``
when only ``a`` was read before, or ``-q default -q new`` on a Redis that has ``default``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.exceptions import ResponseError

from rearq_tasks.queue.keys import DEFAULT_QUEUE, queue_key


async def ensure_queue_groups(redis: Any, queues: Iterable[str], group: str) -> list[str]:
    """``XGROUP CREATE <stream> <group> $ MKSTREAM`` for each queue, one at a time.

    A group that already exists (``BUSYGROUP``) is left as it is; any other error is raised.
    Returns the queues whose group was created now. ``$`` is what ReArq itself uses: a new
    group starts at the stream's end (jobs enqueued before any worker read it stay queued,
    as docs/capture.md says).
    """
    created = []
    for queue in list(queues) or [DEFAULT_QUEUE]:
        try:
            await redis.xgroup_create(queue_key(queue), group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:
            created.append(queue)
    return created
