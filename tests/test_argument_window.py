"""An argument search's page from the newest rows (:mod:`rearq_tasks.queries.window`) is the
page the GIN-sorted query gives: same rows, same order, same count, whether the window holds
the page or not. The window is shrunk to 20 rows (and "few matches" to none) so both cases
occur with 30 rows; on SQLite and MariaDB no window is ever tried.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, staff_viewer
from rearq_tasks.queries import window

pytestmark = pytest.mark.django_db

BASE = "/cfg/tasks/logs/"
ROWS = 30
WINDOW = 20
POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def client() -> APIClient:
    api = APIClient()
    api.force_authenticate(staff_viewer(username="window"))
    return api


@pytest.fixture
def rows() -> None:
    """Row ``i`` is ``i`` minutes old: even rows are "common", every third one failed."""
    now = timezone.now()
    for i in range(ROWS):
        TaskLogFactory(
            job_id=f"j{i:02}",
            kwargs={"plan": "common" if i % 2 == 0 else "other", "order": i},
            status="failed" if i % 3 == 0 else "success",
            error_message="timed out" if i % 4 == 0 else None,
            enqueue_time=now - dt.timedelta(minutes=i),
        )


def _get(
    client: APIClient, params: dict[str, str], monkeypatch, windowed: bool, few: int = 0
) -> tuple:
    monkeypatch.setattr(window, "WINDOW_ROWS", WINDOW)
    monkeypatch.setattr(window, "FEW_MATCHES", few)
    monkeypatch.setattr(window, "MAX_WINDOW_PAGE_END", WINDOW if windowed else 0)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(BASE, params)
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    sqls = [q["sql"] for q in queries.captured_queries]
    tried = any(f"DESC LIMIT {WINDOW}) " in sql for sql in sqls)
    sorted_ = any("ORDER BY COALESCE(" in sql for sql in sqls)
    page = (body["count"], [r["job_id"] for r in body["results"]], body["next"])
    return page, tried, sorted_


CASES = [
    # (params, pages to read, which pages the window holds on PostgreSQL)
    ({"kwargs": json.dumps({"plan": "common"})}, range(1, 6), {1, 2, 3}),
    ({"search": "kwargs.plan:common status:failed"}, range(1, 3), {1, 2}),  # 2: [3:5]
    ({"search": 'kwargs.plan:common error:"timed out"'}, range(1, 3), {1}),
    (
        {"kwargs": json.dumps({"plan": "common"}), "ordering": "-enqueue_time"},
        range(1, 6),
        {1, 2, 3},
    ),
    ({"kwargs": json.dumps({"order": 27})}, range(1, 2), set()),  # older than the window
    ({"kwargs": json.dumps({"order": 3}), "search": "status:failed"}, range(1, 2), {1}),
]


@pytest.mark.parametrize(("params", "pages", "held"), CASES)
def test_window_page_equals_the_sorted_page(client, rows, monkeypatch, params, pages, held):
    for page in pages:
        query = {**params, "page_size": "3", "page": str(page)}
        expected, tried, sorted_ = _get(client, query, monkeypatch, windowed=False)
        assert not tried
        got, tried, sorted_ = _get(client, query, monkeypatch, windowed=True)
        assert got == expected, (params, page)
        assert tried == POSTGRES
        assert sorted_ == (POSTGRES and page not in held), (params, page)


def test_window_rows_are_the_newest_matches(client, rows, monkeypatch) -> None:
    query = {"kwargs": json.dumps({"plan": "common"}), "page_size": "4"}
    (count, ids, _), _, _ = _get(client, query, monkeypatch, windowed=True)
    assert count == ROWS // 2
    assert ids == ["j00", "j02", "j04", "j06"]


def test_other_orders_and_deep_pages_skip_the_window(client, rows, monkeypatch) -> None:
    ordered = {"kwargs": json.dumps({"plan": "common"}), "ordering": "-duration_ms"}
    _, tried, _ = _get(client, ordered, monkeypatch, windowed=True)
    assert not tried
    deep = {"kwargs": "{}", "page_size": "25"}  # 30 matches: the page ends past 20
    _, tried, _ = _get(client, deep, monkeypatch, windowed=True)
    assert not tried


def test_searches_without_arguments_are_unchanged(client, rows, monkeypatch) -> None:
    _, tried, sorted_ = _get(
        client, {"search": 'error:"timed out" status:failed'}, monkeypatch, windowed=True
    )
    assert not tried and not sorted_


def test_few_matches_go_straight_to_the_sort(client, rows, monkeypatch) -> None:
    """A count of at most FEW_MATCHES: sorting them is cheap, a window could only miss."""
    query = {"kwargs": json.dumps({"plan": "common"}), "page_size": "3"}
    expected, _, _ = _get(client, query, monkeypatch, windowed=False)
    got, tried, sorted_ = _get(client, query, monkeypatch, windowed=True, few=ROWS // 2)
    assert got == expected
    assert not tried
    assert sorted_ == POSTGRES
    _, tried, _ = _get(client, query, monkeypatch, windowed=True, few=ROWS // 2 - 1)
    assert tried == POSTGRES


def test_uncapped_count_also_skips_the_window_for_few(client, rows, monkeypatch) -> None:
    from rearq_tasks.conf import conf

    monkeypatch.setattr(conf, "COUNT_LIMIT", 0)
    query = {"kwargs": json.dumps({"plan": "common"}), "page_size": "3"}
    expected, _, _ = _get(client, query, monkeypatch, windowed=False)
    got, tried, _ = _get(client, query, monkeypatch, windowed=True, few=ROWS)
    assert got == expected and not tried
    got, tried, _ = _get(client, query, monkeypatch, windowed=True)
    assert got == expected and tried == POSTGRES


def _admin_page(client, monkeypatch, term: str, page: int, windowed: bool) -> tuple:
    from django.contrib import admin
    from django.urls import reverse

    from rearq_tasks.models import TaskLog

    monkeypatch.setattr(admin.site._registry[TaskLog], "list_per_page", 3)
    monkeypatch.setattr(window, "WINDOW_ROWS", WINDOW)
    monkeypatch.setattr(window, "MAX_WINDOW_PAGE_END", WINDOW if windowed else 0)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:tasks_tasklog_changelist"), {"q": term, "p": page})
    assert response.status_code == 200
    sqls = [q["sql"] for q in queries.captured_queries]
    tried = any(f"LIMIT {WINDOW}) " in sql for sql in sqls)
    sorted_ = any("ORDER BY COALESCE(" in sql for sql in sqls)
    return [row.job_id for row in response.context["cl"].result_list], tried, sorted_


@pytest.mark.parametrize(
    ("term", "held"),
    [("kwargs.plan:common", {1, 2, 3}), ('kwargs.plan:common error:"timed out"', {1})],
)
def test_admin_changelist_window_equals_the_sorted_page(client, rows, monkeypatch, term, held):
    from harness.factories import UserFactory

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))  # admin
    for page in range(1, 5):
        expected, tried, _ = _admin_page(client, monkeypatch, term, page, windowed=False)
        assert not tried
        got, tried, sorted_ = _admin_page(client, monkeypatch, term, page, windowed=True)
        assert got == expected, (term, page)
        assert tried == POSTGRES
        assert sorted_ == (POSTGRES and page not in held), (term, page)
    assert _admin_page(client, monkeypatch, term, 1, windowed=True)[0][:1] == ["j00"]
