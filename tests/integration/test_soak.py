"""The fault-injection soak (bench/soakkit.py) at 1,000 jobs, on PostgreSQL.

Enabled by ``REARQ_TASKS_SOAK=1`` (set in tox.ini for py311-django52-postgres only): it takes
about two minutes. Its fault windows are shorter than the 10,000-job bench's (the database
down 4 s then slow 4 s instead of 10 s + 10 s); see docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connection

from bench.soakkit import SoakConfig, format_report, run_soak
from rearq_tasks.models import TaskEvent, TaskLog

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("REARQ_TASKS_SOAK") != "1",
        reason="the soak runs where REARQ_TASKS_SOAK=1 (tox env py311-django52-postgres)",
    ),
]


def _require(condition: bool, message: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_soak_1000_jobs_nothing_lost_under_faults(tmp_path, capsys) -> None:
    _require(connection.vendor == "postgresql", "the soak needs PostgreSQL as Django database")
    _require(shutil.which("redis-server") is not None, "the soak needs redis-server on PATH")
    # Compared row for row with ReArq's tables: the table holds the soak's rows only.
    TaskEvent.objects.all().delete()
    TaskLog.objects.all().delete()
    name = connection.settings_dict["NAME"]
    config = SoakConfig(
        jobs=1000, rate=40, db_down_s=4, db_slow_s=4, redis_down_s=1, django_db=name,
        rearq_db=f"{name}_soak_rearq", migrate=False, workdir=tmp_path, log=print,
    )  # fmt: skip
    result = run_soak(config)
    report = format_report(result)
    with capsys.disabled():
        print("\n" + report)
    c = result.comparison
    assert c.rearq_jobs >= 1000 and c.rows == c.rearq_jobs, report
    assert (c.missing, c.duplicated, c.wrong, c.extra) == (0, 0, 0, 0), report
    assert c.left_in_progress == 0, report
    # Every job a killed worker fetched but never started ran exactly once, as its re-run.
    assert (c.unstarted_left_lost, c.recovered_not_run_once) == (0, 0), report
    assert len(result.faults) == 5, report
