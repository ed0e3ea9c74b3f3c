from __future__ import annotations

import os

import pytest

# marker -> the variable that turns it on (tox.ini sets each in one cell of the matrix)
OPT_IN = {"packaging": "REARQ_TASKS_FULL", "install": "REARQ_TASKS_INSTALL"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, variable in OPT_IN.items():
        if os.environ.get(variable) == "1":
            continue
        skip = pytest.mark.skip(reason=f"{marker} tests run in the env with {variable}=1")
        for item in items:
            if marker in item.keywords:
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
