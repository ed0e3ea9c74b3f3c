"""The export's bytes, pinned: whichever way rows are fetched and encoded (issue #17 made it
faster), a CSV or JSON Lines download of the same rows stays byte for byte what it was, on
every database. The rows are the awkward ones: NULLs, empty strings, unicode, newlines and
quotes, cells a spreadsheet would run, datetimes with and without microseconds, a redacted
payload, a JSON scalar, and values of 100 kB.

JSON payloads are chosen so their stored text is the same on every database (keys in the
order PostgreSQL's jsonb prints them, ASCII only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.db import connection

from harness.factories import UserFactory
from rearq_tasks.models import TaskLog
from rearq_tasks.queries import export

pytestmark = pytest.mark.django_db

UTC = dt.UTC
HUGE_ERROR = 'x"y,' * 25_000 + "\n"
HUGE_RESULT = "z" * 100_000


def _rows() -> list[TaskLog]:
    user = UserFactory(username="owner")
    common = {"queue_name": "default", "job_retries": 0}
    return [
        TaskLog.objects.create(
            job_id="=cmd|' /C calc'!A0", task_name="tâche.ünï 🚀", queue_name="q,with,commas",
            status="failed", success=False, args=[], result='"quoted" text',
            kwargs={"pw": "[REDACTED]", "note": "=1+1"}, error_message="one\ntwo\r\nthree",
            worker_id="", user=user, job_retries=2, duration_ms=-5,
            enqueue_time=dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            start_time=dt.datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC),
        ),
        TaskLog.objects.create(
            job_id="plain", task_name="\ttab", status="success", success=True, args=-1,
            kwargs="@x", result="+1", error_message="\rcr", worker_id="@w", duration_ms=0,
            enqueue_time=dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
            start_time=dt.datetime(2000, 1, 1, tzinfo=UTC),
            finish_time=dt.datetime(2000, 1, 1, 0, 0, 1, 500000, tzinfo=UTC), **common,
        ),
        TaskLog.objects.create(
            job_id="nulls", task_name="-", status="queued", success=None, args=[1, "a"],
            kwargs={}, result=None, error_message=None, worker_id=None, duration_ms=None,
            enqueue_time=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            **common,
        ),
        TaskLog.objects.create(
            job_id="huge", task_name="big", status="failed", success=False,
            kwargs={"a": {"b": [None, True, 1.5]}}, result=HUGE_RESULT,
            error_message=HUGE_ERROR, duration_ms=2**31 - 1,
            enqueue_time=dt.datetime(2026, 6, 30, 12, 0, 0, 999999, tzinfo=UTC), **common,
        ),
    ]  # fmt: skip


def _export(fmt: str) -> bytes:
    return b"".join(export.stream(TaskLog.objects.order_by("id"), fmt))


@pytest.fixture(params=["server-side cursor", "DISABLE_SERVER_SIDE_CURSORS"])
def cursors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Both ways PostgreSQL rows can be read (PgBouncer in transaction mode needs the
    setting); other databases ignore it."""
    settings_dict = connection.settings_dict
    before = settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = request.param != "server-side cursor"
    yield
    if before is None:
        settings_dict.pop("DISABLE_SERVER_SIDE_CURSORS")
    else:
        settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = before


def test_csv_bytes_are_pinned(cursors) -> None:
    a, b, c, d = (row.pk for row in _rows())
    user = TaskLog.objects.get(pk=a).user_id
    huge_error = '"' + HUGE_ERROR.replace('"', '""') + '"'
    expected = (
        "id,job_id,task_name,queue_name,status,success,args,kwargs,result,error_message,"
        "worker_id,user_id,job_retries,duration_ms,enqueue_time,start_time,finish_time\r\n"
        f"{a},'=cmd|' /C calc'!A0,tâche.ünï 🚀,\"q,with,commas\",failed,false,[],"
        '"{""pw"": ""[REDACTED]"", ""note"": ""=1+1""}","""quoted"" text",'
        f'"one\ntwo\r\nthree",,{user},2,-5,2026-03-04T05:06:07.123456+00:00,'
        "2026-03-04T05:06:08+00:00,\r\n"
        f'{b},plain,\'\ttab,default,success,true,\'-1,"""@x""",\'+1,"\'\rcr",\'@w,,0,0,'
        "1999-12-31T23:59:59.000001+00:00,2000-01-01T00:00:00+00:00,"
        "2000-01-01T00:00:01.500000+00:00\r\n"
        f'{c},nulls,\'-,default,queued,,"[1, ""a""]",{{}},,,,,0,,'
        "2025-12-31T19:00:00+00:00,,\r\n"
        f'{d},huge,big,default,failed,false,[],"{{""a"": {{""b"": [null, true, 1.5]}}}}",'
        f"{HUGE_RESULT},{huge_error},,,0,2147483647,2026-06-30T12:00:00.999999+00:00,,\r\n"
    )
    assert _export("csv").decode("utf-8") == expected


def test_jsonl_bytes_are_pinned(cursors) -> None:
    a, b, c, d = (row.pk for row in _rows())
    user = TaskLog.objects.get(pk=a).user_id
    huge_error = HUGE_ERROR.replace('"', '\\"').replace("\n", "\\n")
    expected = (
        f'{{"id": {a}, "job_id": "=cmd|\' /C calc\'!A0", "task_name": "tâche.ünï 🚀", '
        '"queue_name": "q,with,commas", "status": "failed", "success": false, '
        '"result": "\\"quoted\\" text", "error_message": "one\\ntwo\\r\\nthree", '
        f'"worker_id": "", "user_id": {user}, "job_retries": 2, "duration_ms": -5, '
        '"enqueue_time": "2026-03-04T05:06:07.123456+00:00", '
        '"start_time": "2026-03-04T05:06:08+00:00", "finish_time": null, "args": [], '
        '"kwargs": {"pw": "[REDACTED]", "note": "=1+1"}}\n'
        f'{{"id": {b}, "job_id": "plain", "task_name": "\\ttab", "queue_name": "default", '
        '"status": "success", "success": true, "result": "+1", "error_message": "\\rcr", '
        '"worker_id": "@w", "user_id": null, "job_retries": 0, "duration_ms": 0, '
        '"enqueue_time": "1999-12-31T23:59:59.000001+00:00", '
        '"start_time": "2000-01-01T00:00:00+00:00", '
        '"finish_time": "2000-01-01T00:00:01.500000+00:00", "args": -1, "kwargs": "@x"}\n'
        f'{{"id": {c}, "job_id": "nulls", "task_name": "-", "queue_name": "default", '
        '"status": "queued", "success": null, "result": null, "error_message": null, '
        '"worker_id": null, "user_id": null, "job_retries": 0, "duration_ms": null, '
        '"enqueue_time": "2025-12-31T19:00:00+00:00", "start_time": null, '
        '"finish_time": null, "args": [1, "a"], "kwargs": {}}\n'
        f'{{"id": {d}, "job_id": "huge", "task_name": "big", "queue_name": "default", '
        f'"status": "failed", "success": false, "result": "{HUGE_RESULT}", '
        f'"error_message": "{huge_error}", "worker_id": null, "user_id": null, '
        '"job_retries": 0, "duration_ms": 2147483647, '
        '"enqueue_time": "2026-06-30T12:00:00.999999+00:00", "start_time": null, '
        '"finish_time": null, "args": [], "kwargs": {"a": {"b": [null, true, 1.5]}}}\n'
    )
    assert _export("jsonl").decode("utf-8") == expected


def test_an_empty_selection_is_the_header_alone() -> None:
    assert _export("csv") == (",".join(export.COLUMNS) + "\r\n").encode()
    assert _export("jsonl") == b""
