"""The OpenAPI document, and a schemathesis run against it: no 5xx, every response conforms."""

from __future__ import annotations

import base64
import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from harness.factories import TaskLogFactory, staff_viewer

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/cfg/tasks/schema/?format=json"


@pytest.fixture
def staff_headers() -> dict[str, str]:
    user = staff_viewer(username="schema-staff")
    user.set_password("pw")
    user.save()
    token = base64.b64encode(b"schema-staff:pw").decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, without closing the test's connection after each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(staff_headers, wsgi_app):
    TaskLogFactory.create_batch(3)
    return schemathesis.openapi.from_wsgi(SCHEMA_URL, wsgi_app, headers=staff_headers)


def test_schema_documents_every_endpoint_and_filter(staff_headers) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=staff_headers["Authorization"])
    response = api.get(SCHEMA_URL)
    assert response.status_code == 200
    document = response.json()
    assert set(document["paths"]) == {
        "/cfg/tasks/logs/",
        "/cfg/tasks/logs/{id}/",
        "/cfg/tasks/logs/{id}/related/",
        "/cfg/tasks/logs/bulk/",
        "/cfg/tasks/operations/",
        "/cfg/tasks/operations/{id}/",
        "/cfg/tasks/operations/{id}/cancel/",
        "/cfg/tasks/logs/{id}/events/",
        "/cfg/tasks/logs/overview/",
        "/cfg/tasks/logs/retries/",
        "/cfg/tasks/logs/stats/",
        "/cfg/tasks/logs/tasks/",
        "/cfg/tasks/logs/timeline/",
        "/cfg/tasks/logs/export/",
        "/cfg/tasks/workers/",
        "/cfg/tasks/workers/{name}/repair/",
    }
    list_params = {p["name"] for p in document["paths"]["/cfg/tasks/logs/"]["get"]["parameters"]}
    assert {"page", "page_size", "search", "ordering", "is_failed", "status_in"} <= list_params
    timeline = document["paths"]["/cfg/tasks/logs/timeline/"]["get"]["parameters"]
    assert {p["name"] for p in timeline} == {"period_hours", "task_name", "queue_name", "interval"}
    assert "post" not in document["paths"]["/cfg/tasks/logs/"]
    export = document["paths"]["/cfg/tasks/logs/export/"]["get"]
    assert {"format", "kwargs", "args", "search", "status"} <= {
        p["name"] for p in export["parameters"]
    }
    assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}


def test_api_conforms_to_its_schema(api_schema, staff_headers) -> None:
    """Generated requests for every operation: no 5xx, status/content type/body as documented.

    Each operation's strategy runs under hypothesis directly (schemathesis' lazy pytest
    fixture loader does not support pytest 9 yet).
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 16
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("REARQ_TASKS_SCHEMATHESIS_EXAMPLES", "30")),
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def check(case) -> None:
            # Authentication is tested in test_api; here the staff credentials are fixed.
            case.call_and_validate(headers=staff_headers, excluded_checks=[ignored_auth])

        check()


def test_schema_violating_requests_are_refused_not_failed(api_schema, staff_headers) -> None:
    """Negative testing: requests that break the schema (wrong types, NUL, out-of-range
    numbers, unknown enum values) are never a 5xx, and many are refused with a 4xx.

    Schemathesis' ``negative_data_rejection`` check is not used: in a query string every
    value is text, so a "number" generated for a string parameter is valid input.
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    tried = []
    for operation in operations:

        @given(case=operation.as_strategy(GenerationMode.NEGATIVE))
        @settings(
            max_examples=int(os.environ.get("REARQ_TASKS_SCHEMATHESIS_EXAMPLES", "30")),
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
            ],
        )
        def check(case) -> None:
            response = case.call_and_validate(headers=staff_headers, checks=[not_a_server_error])
            tried.append(response.status_code)

        check()
    assert len(tried) >= len(operations)
    assert all(status < 500 for status in tried)
    # Many are refused (the rest are text that happens to be valid in a query string).
    assert sum(400 <= status < 500 for status in tried) > len(tried) // 5, tried
