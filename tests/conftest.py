from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("REARQ_TASKS_FULL") == "1":
        return
    skip = pytest.mark.skip(reason="packaging/docs build runs in the env with REARQ_TASKS_FULL=1")
    for item in items:
        if "packaging" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rearq_redis():
    """ReArq's Redis (the test REDIS_URL, a DB of its own); ReArq keys removed before and after."""
    from rearq_tasks.queue.connection import redis_client

    client = redis_client(timeout=2)

    def clean() -> None:
        keys = list(client.scan_iter("rearq:*"))
        if keys:
            client.delete(*keys)

    clean()
    yield client
    clean()
    client.close()
