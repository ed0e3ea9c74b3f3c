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
