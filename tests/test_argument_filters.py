"""``?kwargs=`` and ``?args=``: JSON containment with PostgreSQL's meaning on every database.

Nested objects, numbers versus strings, booleans versus numbers, arrays, unicode, NUL and
huge values; the rule in Python (:func:`arguments.contains`) is checked against the
database's answer for the same pairs.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, staff_viewer
from rearq_tasks.models import TaskLog
from rearq_tasks.queries import arguments

pytestmark = pytest.mark.django_db

BASE = "/cfg/tasks/logs/"
STORED = {
    "int": {"order_id": 123, "user": {"plan": "business", "seats": 5}},
    "str": {"order_id": "123", "user": {"plan": "free"}},
    "float": {"order_id": 123.5, "tags": ["a", "b", {"k": 1}]},
    "bool": {"order_id": True, "flag": False},
    "null": {"order_id": None},
    "unicode": {"name": "Zoë 北京 🚀", "order_id": 7},
    "long": {"blob": "x" * 20000, "order_id": 8},
    "empty": {},
}
ARGS = {
    "int": [123, "eur", {"x": [1, 2]}],
    "str": ["123"],
    "float": [[1, 2], [3]],
    "bool": [True],
    "null": [None],
    "unicode": ["Zoë"],
    "long": ["x" * 20000],
    "empty": [],
}


@pytest.fixture
def client() -> APIClient:
    api = APIClient()
    api.force_authenticate(staff_viewer(username="finder"))
    return api


@pytest.fixture
def stored() -> None:
    for name, kwargs in STORED.items():
        TaskLogFactory(job_id=name, kwargs=kwargs, args=ARGS[name])


def found(client: APIClient, **params: object) -> set[str]:
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    response = client.get(BASE, {**query, "page_size": 100})
    assert response.status_code == 200, response.json()
    return {row["job_id"] for row in response.json()["results"]}


KWARGS_CASES = [
    ({"order_id": 123}, {"int"}),
    ({"order_id": "123"}, {"str"}),
    ({"order_id": 123.0}, {"int"}),
    ({"order_id": 123.5}, {"float"}),
    ({"order_id": True}, {"bool"}),
    ({"order_id": 1}, set()),
    ({"order_id": None}, {"null"}),
    ({"user": {"plan": "business"}}, {"int"}),
    ({"user": {"plan": "business", "seats": 5}}, {"int"}),
    ({"user": {"plan": "business", "seats": 6}}, set()),
    ({"user": {}}, {"int", "str"}),
    ({"tags": ["b"]}, {"float"}),
    ({"tags": [{"k": 1}]}, {"float"}),
    ({"tags": "a"}, set()),
    ({"name": "Zoë 北京 🚀"}, {"unicode"}),
    ({"name": "Zoe"}, set()),
    ({"blob": "x" * 20000}, {"long"}),
    ({"order_id": 8}, {"long"}),
    ({"flag": False}, {"bool"}),
    ({"missing": 1}, set()),
]


@pytest.mark.parametrize(("wanted", "expected"), KWARGS_CASES)
def test_kwargs_containment(client, stored, wanted, expected) -> None:
    if len(json.dumps(wanted)) > arguments.MAX_JSON_LENGTH:
        # Too long for a query parameter; the Q still answers it (served from the ORM).
        assert (
            set(TaskLog.objects.filter(arguments.kwargs_q(wanted)).values_list("job_id", flat=True))
            == expected
        )
        return
    assert found(client, kwargs=wanted) == expected


ARGS_CASES = [
    ([123], {"int"}),
    (["123"], {"str"}),
    (["eur", 123], {"int"}),
    ([{"x": [2]}], {"int"}),
    ([[1]], {"float"}),
    ([[3]], {"float"}),
    ([True], {"bool"}),
    ([None], {"null"}),
    (["Zoë"], {"unicode"}),
    ([], set(STORED)),
]


@pytest.mark.parametrize(("wanted", "expected"), ARGS_CASES)
def test_args_containment(client, stored, wanted, expected) -> None:
    assert found(client, args=wanted) == expected


def test_array_element_inside_a_nested_array(client, stored) -> None:
    """The documented MariaDB difference: JSON_CONTAINS looks into nested arrays."""
    expected = {"float"} if connection.vendor == "mysql" else set()
    assert found(client, args=[1]) == expected


def test_python_rule_agrees_with_the_database(stored) -> None:
    """The SQLite function is the rule in Python; PostgreSQL and MariaDB answer the same."""
    for wanted, expected in KWARGS_CASES:
        assert {n for n, kw in STORED.items() if arguments.contains(kw, wanted)} == expected
    for wanted, expected in ARGS_CASES:
        assert {n for n, a in ARGS.items() if arguments.contains(a, wanted)} == expected


def test_containment_combines_with_filters_and_search(client, stored) -> None:
    assert found(client, kwargs={"order_id": 123}, args=["eur"]) == {"int"}
    assert found(client, kwargs={"order_id": 123}, args=["nope"]) == set()
    assert found(client, kwargs={"user": {}}, search="kwargs.user.plan:free") == {"str"}


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("kwargs", "{order_id: 1}", "not valid JSON"),
        ("kwargs", "[1]", "JSON object"),
        ("kwargs", '"x"', "JSON object"),
        ("args", '{"a": 1}', "JSON array"),
        ("args", "1", "JSON array"),
        ("kwargs", '{"a": NaN}', "not JSON"),
        ("kwargs", '{"a": 1e999}', "finite"),
        ("kwargs", '{"a": 99999999999999999999}', "64 bits"),
        ("kwargs", '{"a": "x\\u0000y"}', "NUL"),
        ("kwargs", '{"a\\u0000": 1}', "NUL"),
        ("args", '["\\u0000"]', "NUL"),
        ("kwargs", json.dumps({"a": "x" * 5000}), "characters"),
        ("kwargs", '{"a":' * 20 + "1" + "}" * 20, "nested"),
        ("args", "[" * 5000 + "]" * 5000, "characters"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(client, stored, param, value, message) -> None:
    response = client.get(BASE, {param: value})
    assert response.status_code == 400, response.content
    assert set(response.json()) == {param}
    assert message in response.json()[param][0]


def test_nul_byte_in_the_raw_parameter_is_400(client) -> None:
    response = client.get(BASE, {"kwargs": '{"a": "\x00"}'})
    assert response.status_code == 400
    assert "kwargs" in response.json()


def test_sqlite_function_ignores_unreadable_rows() -> None:
    assert arguments.json_contains("not json", "{}") == 0
    assert arguments.json_contains(None, "{}") is None
    assert arguments.json_contains('{"a": [1, 2]}', '{"a": [2]}') == 1


def test_newest_first_and_ordering_still_apply(client) -> None:
    """Argument filters keep the list's order (PostgreSQL sorts the matches itself)."""
    from django.utils import timezone

    now = timezone.now()
    for i in range(4):
        TaskLogFactory(job_id=f"o{i}", kwargs={"k": 1}, duration_ms=10 - i,
                       enqueue_time=now - dt.timedelta(minutes=i))  # fmt: skip
    rows = client.get(BASE, {"kwargs": '{"k": 1}'}).json()["results"]
    assert [r["job_id"] for r in rows] == ["o0", "o1", "o2", "o3"]
    rows = client.get(BASE, {"search": "kwargs.k:1", "ordering": "duration_ms"}).json()["results"]
    assert [r["job_id"] for r in rows] == ["o3", "o2", "o1", "o0"]
