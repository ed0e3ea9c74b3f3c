"""The search language (queries/language.py) through the API's ``search`` parameter.

Every qualifier, OR of a repeated one, AND across them, quoting, typed values, and the
errors: each bad search is a 400 naming what is wrong, never a 500 or a silent empty page.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks.models import StatusChoices
from rearq_tasks.queries import language

pytestmark = pytest.mark.django_db

S = StatusChoices
BASE = "/cfg/tasks/logs/"
NOW = timezone.now()


@pytest.fixture
def client() -> APIClient:
    api = APIClient()
    api.force_authenticate(staff_viewer(username="searcher"))
    return api


@pytest.fixture
def jobs() -> dict[str, str]:
    """Five jobs that differ in every searchable attribute; name → job id."""
    alice = UserFactory(username="alice")
    data = {
        "order": dict(task_name="shop.charge_order", queue_name="critical", status=S.FAILED,
                      success=False, worker_id="worker-a", user=alice,
                      error_message="CardDeclined: insufficient funds",
                      kwargs={"order_id": 123, "customer": {"plan": "business", "name": "Zoë"}},
                      args=[123, "eur"], enqueue_time=NOW - dt.timedelta(hours=1)),
        "order_text": dict(task_name="shop.charge_order", queue_name="critical",
                           status=S.EXPIRED, success=False, worker_id="worker-b",
                           kwargs={"order_id": "123", "customer": {"plan": "free"}},
                           args=["123"], enqueue_time=NOW - dt.timedelta(hours=3)),
        "email": dict(task_name="mail.send_email", queue_name="default", status=S.SUCCESS,
                      success=True, worker_id="worker-a",
                      kwargs={"to": "bob@example.com", "urgent": True, "retries": None,
                              "tags": ["a", "b"]},
                      args=[], enqueue_time=NOW - dt.timedelta(days=2)),
        "report": dict(task_name="reports.build", queue_name="default", status=S.IN_PROGRESS,
                       worker_id="worker-c", kwargs={"order_id": 1234, "ratio": 1.5},
                       args=[[1, 2], {"deep": "x"}], enqueue_time=NOW - dt.timedelta(days=9)),
        "queued": dict(task_name="mail.send_email", queue_name="low", status=S.QUEUED,
                       kwargs={}, args=[True], enqueue_time=NOW - dt.timedelta(minutes=5)),
    }  # fmt: skip
    return {
        name: TaskLogFactory(job_id=f"job-{name}", **fields).job_id for name, fields in data.items()
    }


def found(client: APIClient, search: str) -> set[str]:
    response = client.get(BASE, {"search": search, "page_size": 100})
    assert response.status_code == 200, response.json()
    return {row["job_id"].removeprefix("job-") for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("task:charge_order", {"order", "order_text"}),
        ("task:SEND_EMAIL", {"email", "queued"}),
        ("queue:critical", {"order", "order_text"}),
        ("status:failed", {"order"}),
        ("status:failed status:expired", {"order", "order_text"}),
        ("status:FAILED status:success status:queued", {"order", "email", "queued"}),
        ("worker:worker-a", {"order", "email"}),
        ("user:alice", {"order"}),
        ("id:job-report", {"report"}),
        ("id:job-report id:job-email", {"report", "email"}),
        ("error:insufficient", {"order"}),
        ('error:"insufficient funds"', {"order"}),
        ("kwargs.order_id:123", {"order", "order_text"}),
        ("kwargs.order_id:1234", {"report"}),
        ("kwargs.customer.plan:business", {"order"}),
        ("kwargs.customer.name:Zoë", {"order"}),
        ("kwargs.urgent:true", {"email"}),
        ("kwargs.retries:null", {"email"}),
        ("kwargs.ratio:1.5", {"report"}),
        ("kwargs.tags:b", {"email"}),
        ("kwargs.tags:b kwargs.tags:zzz", {"email"}),
        ("kwargs.order_id:123 status:expired", {"order_text"}),
        ("args:123", {"order", "order_text"}),
        ("args:eur", {"order"}),
        ("args:true", {"queued"}),
        ("after:-2h", {"order", "queued"}),
        ("before:-2h", {"order_text", "email", "report"}),
        ("after:-7d before:-1d", {"email"}),
        (f"after:{(NOW - dt.timedelta(days=3)).date()}", {"order", "order_text", "email", "queued"}),  # noqa: E501
        ("task:charge_order status:expired", {"order_text"}),
        ("task:charge_order task:reports", {"order", "order_text", "report"}),
        ("task:nothing_like_this", set()),
        # Plain words keep their meaning: task, queue, worker, error text or a job id.
        ("worker-c", {"report"}),
        ("CardDeclined", {"order"}),
        ("job-email", {"email"}),
        ("status:failed CardDeclined", {"order"}),
        ('"CardDeclined: insufficient"', {"order"}),
    ],
)  # fmt: skip
def test_qualifiers(client, jobs, search, expected) -> None:
    assert found(client, search) == expected


def test_user_by_id(client, jobs) -> None:
    from rearq_tasks.models import TaskLog

    user_id = TaskLog.objects.get(job_id="job-order").user_id
    assert found(client, f"user:{user_id}") == {"order"}


def test_combines_with_the_other_filters(client, jobs) -> None:
    response = client.get(BASE, {"search": "kwargs.order_id:123", "status": "failed"})
    assert {row["job_id"] for row in response.json()["results"]} == {"job-order"}


@pytest.mark.parametrize(
    ("search", "named"),
    [
        ("colour:red", "colour:"),
        ("http://example.com", "http:"),
        ("status:bogus", "status:"),
        ("after:yesterday", "after:"),
        ("before:-2y", "before:"),
        ("after:-999999w", "after:"),
        ("after:2026-13-45", "after:"),
        ('task:"unterminated', "task:"),
        ('"unterminated', "unterminated quote"),
        ("task:", "task:"),
        ('task:""', "task:"),
        ("kwargs.:1", "kwargs.:"),
        ("kwargs.a..b:1", "kwargs.a..b:"),
        ("user:", "user:"),
        ("x" * 1001, "1000 characters"),
        ("task:a\x00b", "NUL"),
    ],
)
def test_bad_searches_are_400_naming_the_fault(client, jobs, search, named) -> None:
    response = client.get(BASE, {"search": search})
    assert response.status_code == 400, response.content
    (message,) = response.json()["search"]
    assert named in message


def test_parse_terms_and_words() -> None:
    query = language.parse(
        'task:a status:failed  status:expired "two words" kwargs.x.y:"1 2" plain'
    )
    assert query.terms == {"task": ["a"], "status": ["failed", "expired"], "kwargs.x.y": ["1 2"]}
    assert query.words == ["two words", "plain"]
    assert query.text == "two words plain"
    assert not language.parse("   ")


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        ("123", ["123", 123]),
        ("-7", ["-7", -7]),
        ("1.5", ["1.5", 1.5]),
        ("true", ["true", True]),
        ("null", ["null", None]),
        ("abc", ["abc"]),
        ("99999999999999999999", ["99999999999999999999", 1e20]),
    ],
)
def test_typed_values(value, typed) -> None:
    assert language.typed_values(value) == typed


def test_relative_and_iso_moments() -> None:
    now = timezone.now()
    assert language.parse_moment("-2h", now) == now - dt.timedelta(hours=2)
    assert language.parse_moment("-7d", now) == now - dt.timedelta(days=7)
    assert language.parse_moment("2026-01-02T03:04:05+02:00") == dt.datetime(
        2026, 1, 2, 1, 4, 5, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError):
        language.parse_moment("soon")
