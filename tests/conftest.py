from __future__ import annotations

import os
import warnings

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


@pytest.fixture(autouse=True)
def _no_rows_of_earlier_tests(request: pytest.FixtureRequest) -> None:
    """A test that reads figures of the whole table (health, stats, alerts, metrics) starts
    from an empty table whatever ran before: rows a process wrote after an earlier test's
    cleanup are removed here (inside the test's own transaction when it has one) and named
    in a warning, so the leak is visible without failing an unrelated test. Integration
    tests use their own job ids next to a module's shared worker, and are left alone."""
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if not uses_db or request.node.get_closest_marker("integration") is not None:
        return
    request.getfixturevalue("_django_db_helper")
    from rearq_tasks.models import TaskEvent, TaskLog
    from rearq_tasks.rollups import TaskStat, TaskStatBin

    left = list(TaskLog.objects.values_list("job_id", "task_name")[:5])
    if left:
        warnings.warn(f"rows left by an earlier test, removed: {left}", stacklevel=1)
        TaskEvent.objects.all().delete()
        TaskLog.objects.all().delete()
    # The statistics read the rollups, which outlive deleted rows by design (retention): an
    # integration module's teardown DELETEs its workers' rows and leaves their counts, so a
    # health check here once saw 5 failures of 21 jobs instead of 5 of 20.
    if TaskStat.objects.exists() or TaskStatBin.objects.exists():
        TaskStatBin.objects.all().delete()
        TaskStat.objects.all().delete()
