"""``manage.py rearq_worker`` creates the queues' streams and groups before ReArq reads them.

ReArq 0.2.9 alone crashes (``NOGROUP`` on ``XREADGROUP``) when a worker reads several queues
and some have no consumer group yet; real worker processes, real Redis.
"""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from rearq_tasks.queue.keys import queue_key
from tests.integration.test_capture import wait_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

GROUP = "tests"  # the worker pool's group name


@pytest.fixture
def r() -> redis.Redis:
    return redis.Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)


def groups(r: redis.Redis, queue: str) -> list[str]:
    return [g["name"] for g in r.xinfo_groups(queue_key(queue))]


def test_rearq_alone_crashes_when_one_of_its_queues_has_no_group(worker_pool, r) -> None:
    """The control: the bug this command works around, with ReArq's own CLI. The crash comes
    at its first ``XREADGROUP``, which on a loaded machine may be after the heartbeat that
    makes the pool call it started: then the test waits for the exit (no timing assumed)."""
    import subprocess

    r.xgroup_create(queue_key("default"), GROUP, id="$", mkstream=True)
    r.delete(queue_key("slowq"))  # no stream, no group: what ReArq trips over
    try:
        proc = worker_pool.start("default", "slowq", cli=True)
    except RuntimeError as exc:  # it crashed before it looked ready
        assert "NOGROUP" in str(exc), str(exc)
        return
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        consumers = {
            g["name"]: r.xinfo_consumers(queue_key("slowq"), g["name"])
            for g in r.xinfo_groups(queue_key("slowq"))
        } if r.exists(queue_key("slowq")) else {}  # fmt: skip
        raise AssertionError(f"ReArq kept running; slowq's groups: {consumers}") from None
    assert proc.returncode != 0
    assert "NOGROUP" in worker_pool.output(tail=20_000), worker_pool.output()


@pytest.mark.parametrize("existing", [(), ("default",)], ids=["fresh", "one-group-exists"])
def test_worker_reads_two_queues_whose_streams_do_not_exist(worker_pool, r, existing) -> None:
    from rearq_tasks.queue.jobs import enqueue_sync

    for queue in existing:
        r.xgroup_create(queue_key(queue), GROUP, id="$", mkstream=True)
    assert not r.exists(queue_key("slowq"))
    proc = worker_pool.start("default", "slowq")
    assert groups(r, "default") == [GROUP] and groups(r, "slowq") == [GROUP]
    fast, slow = enqueue_sync("add", 2, 3), enqueue_sync("sleep", 0.01)
    assert wait_status(fast, "success").result == "5"
    assert wait_status(slow, "success").queue_name == "slowq"
    assert proc.poll() is None, worker_pool.output()
