"""The permission matrix of docs/security.md, asserted cell by cell.

The table in the doc is the single source: it is parsed at collection time and every
(surface, principal) cell becomes one test, so the page and the behaviour cannot drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks.models import StatusChoices

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
METRICS_TOKEN = "metrics-bearer-0123456789abcdef"
CSRF_SECRET = "a" * 32  # cookie and form field agree: a valid CSRF token
PRINCIPALS = (
    "anonymous", "user", "staff", "staff + view", "operator", "operator without view",
    "superuser", "API token", "metrics token",
)  # fmt: skip


def read_matrix(text: str) -> dict[tuple[str, str, str], str]:
    """{(surface, "METHOD path", principal): expected} from the marked table."""
    block = text.split("<!-- permission-matrix:start -->", 1)[1]
    block = block.split("<!-- permission-matrix:end -->", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in block.strip().splitlines()]
    header = [cell.strip() for cell in rows[0]]
    assert tuple(header[2:]) == PRINCIPALS, header
    matrix: dict[tuple[str, str, str], str] = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row]
        surface, request = cells[0], cells[1].strip("`")
        for principal, expected in zip(PRINCIPALS, cells[2:], strict=True):
            matrix[(surface, request, principal)] = expected
    return matrix


MATRIX = read_matrix(DOC.read_text())


def test_the_doc_states_how_many_cells_are_checked() -> None:
    stated = re.search(r"Cells checked: \*\*(\d+)\*\*", DOC.read_text())
    assert stated, "docs/security.md must state the number of cells checked"
    assert int(stated.group(1)) == len(MATRIX)


@pytest.fixture
def world(settings, monkeypatch) -> dict[str, Any]:
    from rearq_tasks.queue import client as rearq_client

    # Retry/Cancel reach for ReArq: the client is rebuilt on an unreachable Redis, so an
    # action that runs says "ReArq is unavailable" and nothing is enqueued anywhere.
    monkeypatch.setattr(rearq_client, "_client", None)
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "METRICS_TOKEN": METRICS_TOKEN,
                            "REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip
    log = TaskLogFactory(status=StatusChoices.FAILED, success=False, error_message="boom")
    TaskLogFactory(task_name=log.task_name)
    token = Token.objects.create(user=staff_viewer(username="token-holder"))
    return {"log": log, "token": token.key}


def blind_operator() -> Any:
    """Staff with Retry and Cancel but not ``tasks.view_tasklog``."""
    from django.contrib.auth.models import Permission

    user = UserFactory(username="blind-operator", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="tasks", codename__in=["retry_tasklog", "cancel_tasklog"]
        )
    )
    return user


def client_for(principal: str, world: dict[str, Any]) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF_SECRET
    if principal == "user":
        client.force_login(UserFactory(username="plain"))
    elif principal == "staff":
        client.force_login(UserFactory(username="staff-no-perm", is_staff=True))
    elif principal == "staff + view":
        client.force_login(staff_viewer(username="viewer"))
    elif principal == "operator":
        client.force_login(staff_viewer("retry_tasklog", "cancel_tasklog", username="operator"))
    elif principal == "operator without view":
        client.force_login(blind_operator())
    elif principal == "superuser":
        client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    elif principal == "API token":
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {world['token']}"
    elif principal == "metrics token":
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
    return client


def assert_cell(response: Any, expected: str, world: dict[str, Any], kind: str = "") -> None:
    if expected == "acted":
        assert response.status_code == 302, response.status_code
        assert response["Location"].endswith(f"/{world['log'].pk}/change/")
        (message,) = [str(m) for m in get_messages(response.wsgi_request)]
        # The action ran and reported on this job: ReArq is unreachable (retry) or the job
        # is not cancellable (cancel); either way nothing reached ReArq.
        assert message.startswith(f"Could not {kind} job {world['log'].job_id}"), message
    elif expected == "login":
        assert response.status_code == 302, response.status_code
        assert "/login/" in response["Location"]
    elif expected == "open":
        assert response.status_code in (200, 503), response.status_code
        checks = response.json()  # {check: "OK" or its message}
        assert any(name.startswith("ReArqRedis(") for name in checks), checks
    else:
        assert response.status_code == int(expected), (response.status_code, expected)


@pytest.mark.parametrize(("surface", "request_line", "principal"), sorted(MATRIX))
def test_cell(world, surface: str, request_line: str, principal: str) -> None:
    expected = MATRIX[(surface, request_line, principal)]
    method, path = request_line.split(" ", 1)
    path = path.replace("{id}", str(world["log"].pk))
    client = client_for(principal, world)
    if method == "POST":
        response = client.post(path, {"csrfmiddlewaretoken": CSRF_SECRET})
    else:
        response = client.generic(method, path)
    if getattr(response, "streaming", False):  # the live feed: read it to its end
        b"".join(response.streaming_content)
    assert_cell(response, expected, world, kind=path.rstrip("/").rsplit("/", 1)[-1])
    world["log"].refresh_from_db()
    assert world["log"].status == StatusChoices.FAILED  # nothing edited the row


@pytest.mark.parametrize("kind", ["retry", "cancel"])
def test_actions_refuse_a_post_without_csrf_token(world, kind: str) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse(f"admin:tasks_tasklog_{kind}_job", args=[world["log"].pk])
    response = client.post(url)
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert list(get_messages(response.wsgi_request)) == []


@pytest.mark.parametrize("kind", ["retry", "cancel"])
def test_the_confirmation_get_does_not_act(world, kind: str) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse(f"admin:tasks_tasklog_{kind}_job", args=[world["log"].pk])
    response = client.get(url)
    assert response.status_code == 200
    assert b'method="post"' in response.content and b"csrfmiddlewaretoken" in response.content
    assert list(get_messages(response.wsgi_request)) == []  # ReArq was not even asked


@pytest.mark.parametrize("principal", ["staff + view", "operator", "operator without view"])
def test_bulk_actions_are_offered_only_with_their_permission(world, principal: str) -> None:
    client = client_for(principal, world)
    response = client.get(reverse("admin:tasks_tasklog_changelist"))
    allowed = principal == "operator"
    if principal == "operator without view":  # no changelist, so no bulk action either
        assert response.status_code == 403
    else:
        form = response.context["action_form"]  # None when no action is allowed at all
        offered = set(dict(form.fields["action"].choices)) if form else set()
        assert ("retry_selected" in offered) is allowed
        assert ("cancel_selected" in offered) is allowed
    posted = client.post(
        reverse("admin:tasks_tasklog_changelist"),
        {"action": "retry_selected", "_selected_action": [world["log"].pk],
         "csrfmiddlewaretoken": CSRF_SECRET},
    )  # fmt: skip
    texts = [str(m) for m in get_messages(posted.wsgi_request)]
    assert any("ReArq is unavailable" in text for text in texts) is allowed, texts
