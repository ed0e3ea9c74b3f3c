"""The Django database stays down longer than capture can buffer: the overflow is counted,
logged and visible in the metrics, nothing unwritten is trimmed from the stream silently,
and ``sync_task_logs`` repairs every row afterwards."""

from __future__ import annotations

import os
import re

import pytest
from django.db import connection

from harness.network import FaultProxy
from harness.waiting import wait_for
from rearq_tasks.capture.collector import GROUP
from rearq_tasks.capture.emitter import counters_key
from rearq_tasks.models import TaskLog
from tests.integration.test_capture import assert_matches_rearq, rearq_state, wait_status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("REARQ_TASKS_TEST_DB", "sqlite") == "sqlite",
        reason="needs a networked Django database to cut (PostgreSQL or MariaDB)",
    ),
]
CAP, BUFFER, JOBS = 30, 20, 60


def worker_logs(pool) -> str:
    return "".join(log.read_text(errors="replace") for log in pool.logs)


def test_overflow_is_counted_logged_in_metrics_and_repaired(worker_pool, settings) -> None:
    import redis

    from rearq_tasks.conf import conf
    from rearq_tasks.ops.metrics import render
    from rearq_tasks.queue.jobs import enqueue_sync, sync_task_logs

    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "CAPTURE_STREAM_MAXLEN": CAP}
    client = redis.Redis.from_url(settings.REARQ_TASKS["REDIS_URL"], decode_responses=True)
    stream = conf.CAPTURE_STREAM
    proxy = FaultProxy(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"])
    )
    env = {
        "REARQ_TASKS_WORKER_DB_PORT": str(proxy.port),
        "REARQ_TASKS_WORKER_CAPTURE_STREAM_MAXLEN": str(CAP),
        "REARQ_TASKS_WORKER_CAPTURE_BUFFER_SIZE": str(BUFFER),
    }
    try:
        worker_pool.start("default", extra_env=env)
        wait_status(enqueue_sync("add", 1, 1), "success")
        proxy.cut()
        ids = [enqueue_sync("add", i, 2) for i in range(JOBS)]
        wait_for(lambda: all(rearq_state(i)[0].status.value == "success" for i in ids), 30)
        # Every job sent an enqueue and a finish event: far more than stream + buffer hold.
        wait_for(lambda: int(client.hget(counters_key(stream), "overflowed") or 0) > 0, 10)
        assert client.xlen(stream) <= CAP
        counters = client.hgetall(counters_key(stream))
        assert int(counters["refused"]) > 0

        def exported() -> float | None:
            body = render()[0].decode()
            found = re.search(
                r'rearq_tasks_capture_events_total\{outcome="overflowed"\} (\S+)', body
            )
            return float(found.group(1)) if found else None

        # The metric shows Redis's count. A worker adds the drops it has not counted yet at
        # its next send (the last jobs' finish events may still be on their way), so the
        # two are compared once the count holds still for a moment.
        def settled() -> bool:
            before = client.hget(counters_key(stream), "overflowed")
            value = exported()
            return value == int(before) == int(client.hget(counters_key(stream), "overflowed"))

        wait_for(settled, 15, "the overflowed metric to match Redis's count")
        assert "capture buffer full" in worker_logs(worker_pool)

        proxy.restore()

        def drained() -> bool:
            groups = client.xinfo_groups(stream)
            return all(g["pending"] == 0 and g["lag"] == 0 for g in groups)

        wait_for(drained, 30, "the collector to write what the stream held")
        # Nothing waiting in the stream was trimmed before the collector wrote it.
        assert all(g["lag"] is not None for g in client.xinfo_groups(stream))
        wait_for(lambda: "events were dropped (buffer full)" in worker_logs(worker_pool), 20)
        assert re.search(r"capture: \d+ events were dropped", worker_logs(worker_pool))
        written = TaskLog.objects.filter(job_id__in=ids, status="success").count()
        assert written < JOBS  # the dropped events left rows missing or behind
    finally:
        proxy.close()

    report = sync_task_logs()
    assert report.scanned >= JOBS + 1
    rows = list(TaskLog.objects.filter(job_id__in=ids))
    assert len(rows) == JOBS
    for row in rows:
        assert row.status == "success"
        assert_matches_rearq(row)
    assert GROUP in {g["name"] for g in client.xinfo_groups(stream)}
