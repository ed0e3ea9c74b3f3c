"""The permission matrix of docs/security.md, asserted cell by cell.

The table in the doc is the single source: it is parsed at collection time and every
(surface, principal) cell becomes one test, so the page and the behaviour cannot drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import TaskLogFactory, UserFactory, staff_viewer

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
METRICS_TOKEN = "metrics-bearer-0123456789abcdef"
PRINCIPALS = (
    "anonymous", "user", "staff", "staff + view", "superuser", "API token", "metrics token",
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
def world(settings) -> dict[str, Any]:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "METRICS_TOKEN": METRICS_TOKEN,
                            "REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip
    log = TaskLogFactory()
    TaskLogFactory(task_name=log.task_name)
    token = Token.objects.create(user=staff_viewer(username="token-holder"))
    return {"log": log, "token": token.key}


def client_for(principal: str, world: dict[str, Any]) -> Client:
    client = Client()
    if principal == "user":
        client.force_login(UserFactory(username="plain"))
    elif principal == "staff":
        client.force_login(UserFactory(username="staff-no-perm", is_staff=True))
    elif principal == "staff + view":
        client.force_login(staff_viewer(username="viewer"))
    elif principal == "superuser":
        client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    elif principal == "API token":
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {world['token']}"
    elif principal == "metrics token":
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
    return client


def assert_cell(response: Any, expected: str) -> None:
    if expected == "login":
        assert response.status_code == 302, response.status_code
        assert "/login/" in response["Location"]
    elif expected == "open":
        assert response.status_code in (200, 500), response.status_code
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
    response = client.generic(method, path)
    assert_cell(response, expected)
