"""The admin's search box speaks the search language; bad searches show a message naming the
fault (never a 500, never a silent empty list); the box suggests qualifiers and names."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:tasks_tasklog_changelist"
S = StatusChoices


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def root(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def found(root, term: str) -> set[str]:
    response = root.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    return {row.job_id for row in response.context["cl"].result_list}


def test_qualifiers_in_the_search_box(root) -> None:
    TaskLogFactory(
        job_id="a",
        task_name="shop.charge",
        status=S.FAILED,
        kwargs={"order_id": 123, "user": {"plan": "business"}},
        args=[5],
    )
    TaskLogFactory(
        job_id="b",
        task_name="shop.charge",
        status=S.EXPIRED,
        kwargs={"order_id": "123"},
        queue_name="critical",
    )
    TaskLogFactory(job_id="c", task_name="mail.send", status=S.SUCCESS, worker_id="w-1",
                   error_message="smtp refused")  # fmt: skip
    assert found(root, "kwargs.order_id:123") == {"a", "b"}
    assert found(root, "kwargs.user.plan:business") == {"a"}
    assert found(root, "status:failed status:expired") == {"a", "b"}
    assert found(root, "task:charge queue:critical") == {"b"}
    assert found(root, "args:5") == {"a"}
    assert found(root, 'error:"smtp refused"') == {"c"}
    assert found(root, "id:c") == {"c"}
    assert found(root, "after:-1h") == {"a", "b", "c"}
    assert found(root, "before:-1h") == set()
    # Plain words keep the admin's meaning: exact task name, worker or job id.
    assert found(root, "mail.send") == {"c"}
    assert found(root, "w-1 status:success") == {"c"}
    assert found(root, "c") == {"c"}


@pytest.mark.parametrize(
    ("term", "named"),
    [("colour:red", "colour:"), ("status:bogus", "status:"), ('"open', "unterminated"),
     ("after:soon", "after:")],
)  # fmt: skip
def test_a_bad_search_shows_a_message_naming_it(root, term, named) -> None:
    TaskLogFactory()
    response = root.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    messages = [str(m) for m in response.context["messages"]]
    assert any(named in m and m.startswith("Search:") for m in messages), messages


def test_the_box_suggests_qualifiers_and_names(root) -> None:
    TaskLogFactory(task_name="shop.charge", queue_name="critical")
    TaskLogFactory(task_name="mail send", queue_name="default")
    html = root.get(reverse(CHANGELIST)).content.decode()
    assert 'list="tasklog-search-suggestions"' in html
    assert '<datalist id="tasklog-search-suggestions">' in html
    for value in ("task:shop.charge", "queue:critical", "queue:default", "status:failed",
                  "after:-2h", "&quot;task:mail send&quot;"):  # fmt: skip
        assert f'<option value="{value}">' in html, value
