"""Hostile input on every API parameter: never a 5xx, never slow, a JSON 400 naming the parameter.

The figures (payloads tried, 5xx count) are stated in docs/security.md; the test checks the
stated count so the page stays true.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.test import Client
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.api.filters import TaskLogFilterSet
from rearq_tasks.api.serializers import PeriodParams, RetriesParams, TasksParams, TimelineParams
from rearq_tasks.api.workers import WorkersParams
from rearq_tasks.models import TaskLog

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
BASE = "/cfg/tasks/logs/"
# Generous: a healthy request takes milliseconds; an injected sleep or a runaway scan would not.
SLOW_SECONDS = 5.0

SQLISH = (
    "' OR '1'='1",
    "1' OR 1=1 --",
    '" OR ""="',
    "1; DROP TABLE django_cfg_task_log; --",
    "x' UNION SELECT password FROM auth_user --",
    "1) OR SLEEP(5) #",
    "'; SELECT pg_sleep(5); --",
    "%' AND 1=0 UNION SELECT NULL --",
    "-id,(SELECT 1)",
    "status__in=1&id__gt=0",
    "\\' OR 1=1 /*",
    "' OR 1=1 LIMIT 1 OFFSET 1000000000000 --",
)
RAW = (  # already percent-encoded: invalid UTF-8, NUL, a lone surrogate's bytes, over-long
    "%FF%FE",
    "%00",
    "abc%00def",
    "%C0%AF",
    "%ED%A0%80",
    "%E2%80%AE%00",
)
# Every parameter gets the first few of each; free-text ones (where injection would live) all.
EVERY_PARAM = 4
TEXT_PARAMS = {"search", "ordering", "task_name", "queue_name", "job_id", "worker_id", "username",
               "status", "interval", "state"}  # fmt: skip
ENDPOINTS = {
    BASE: [*TaskLogFilterSet.base_filters, "page", "page_size"],
    f"{BASE}stats/": list(PeriodParams().fields),
    f"{BASE}timeline/": list(TimelineParams().fields),
    f"{BASE}tasks/": list(TasksParams().fields),
    f"{BASE}retries/": list(RetriesParams().fields),
    "/cfg/tasks/workers/": list(WorkersParams().fields),
}
SPECIAL = (
    (BASE, "page", str(10**12)),
    (BASE, "page", "-" + str(10**30)),
    (BASE, "page_size", str(10**9)),
    (BASE, "page_size", "9" * 400),
    (BASE, "search", "a" * 10_000),
    (BASE, "search", "%" * 10_000),
    (BASE, "search", "_" * 10_000),
    (BASE, "task_name_in", ",".join(["x"] * 5_000)),
    (BASE, "ordering", ",".join(["-enqueue_time"] * 500)),
    (BASE, "duration_min", "1e400"),
    (BASE, "duration_min", "NaN"),
    (BASE, "period_hours", str(10**30)),
    (BASE, "enqueued_after", "9999-12-31T23:59:59+14:00"),
    (BASE, "enqueued_after", "0001-01-01T00:00:00-14:00"),
    (f"{BASE}stats/", "period_hours", str(10**30)),
    (f"{BASE}timeline/", "interval", "hour' OR 1=1 --"),
    (f"{BASE}tasks/", "limit", str(10**12)),
    (f"{BASE}retries/", "errors", str(10**12)),
    (BASE, "attempts_min", str(10**30)),
)
PATHS = (
    f"{BASE}%00/",
    f"{BASE}%FF%FE/",
    f"{BASE}{'9' * 10_000}/",
    f"{BASE}1%20OR%201=1/",
    f"{BASE}1;DROP%20TABLE%20x/related/",
    f"{BASE}1;DROP%20TABLE%20x/events/",
    f"{BASE}?%FF%FE=1",
    f"{BASE}?%00=%00",
    f"{BASE}?{'&'.join(f'p{i}=1' for i in range(1_000))}",
)
AUTHORIZATION = (
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
    "Basic " + base64.b64encode(b"hostile:" + b"p" * 10_000).decode(),
    "Basic",
    "Token",
    "Token ",
    "Token two words",
    "Token " + "k" * 10_000,
    "Token ' OR '1'='1",
    "Bearer",
    "Bearer " + "b" * 10_000,
    'Digest username="x"',
    "\x00\x01\x02",
    "Basic " + "A" * 100_000,
)


def hostile_requests() -> list[tuple[str, str | None, str]]:
    """(path with raw query, parameter, label) for every payload on every parameter."""
    requests: list[tuple[str, str | None, str]] = []
    for endpoint, params in ENDPOINTS.items():
        for param in params:
            count = None if param in TEXT_PARAMS else EVERY_PARAM
            for value in SQLISH[:count]:
                requests.append((f"{endpoint}?{param}={quote(value)}", param, value))
            for raw in RAW[:count]:
                requests.append((f"{endpoint}?{param}={raw}", param, raw))
    for endpoint, param, value in SPECIAL:
        requests.append((f"{endpoint}?{param}={value}", param, value[:40]))
    for path in PATHS:
        requests.append((path, None, path[:40]))
    return requests


REQUESTS = hostile_requests()
PAYLOADS_TRIED = len(REQUESTS) + len(AUTHORIZATION) * 2


def test_the_doc_states_how_many_payloads_are_tried() -> None:
    stated = re.search(r"Payloads tried: \*\*(\d+)\*\*", DOC.read_text())
    assert stated, "docs/security.md must state the number of hostile payloads"
    assert int(stated.group(1)) == PAYLOADS_TRIED


def _problems(response, param: str | None, label: str, seconds: float) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"{response.status_code} for {param}={label!r}")
    if seconds > SLOW_SECONDS:
        problems.append(f"{seconds:.1f} s for {param}={label!r}")
    if response.status_code == 400:
        body = response.json()
        if param is not None and param not in body:
            problems.append(f"400 for {param}={label!r} does not name it: {body}")
    return problems


def test_hostile_query_strings_never_fail_the_server() -> None:
    TaskLogFactory.create_batch(3)
    rows = TaskLog.objects.count()
    client = APIClient()  # forced authentication: no session look-up per request
    client.force_authenticate(UserFactory(username="root", is_staff=True, is_superuser=True))
    problems: list[str] = []
    statuses: dict[int, int] = {}
    for path, param, label in REQUESTS:
        started = time.perf_counter()
        response = client.get(path)
        problems += _problems(response, param, label, time.perf_counter() - started)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if param is not None:  # unroutable paths get Django's own 404 page
            assert response["Content-Type"].startswith("application/json"), (path, response)
    assert problems == []
    assert set(statuses) <= {200, 400, 404}, statuses
    assert statuses[400] > len(REQUESTS) // 4  # most of it is refused, not silently ignored
    assert TaskLog.objects.count() == rows


@pytest.mark.parametrize("rule", ["nul", "sqlish-number"])
def test_invalid_values_are_a_400_naming_the_parameter(rule: str) -> None:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    value = "%00" if rule == "nul" else quote("1 OR 1=1")
    refused = []
    for endpoint, params in ENDPOINTS.items():
        for param in params:
            response = client.get(f"{endpoint}?{param}={value}")
            if response.status_code == 400:
                assert param in response.json(), (endpoint, param, response.json())
                refused.append(param)
    if rule == "nul":
        # No text parameter lets a NUL through to the database.
        assert {"search", "task_name", "job_id", "ordering", "interval"} <= set(refused)
    else:
        assert {"page", "page_size", "duration_min", "period_hours", "limit"} <= set(refused)


def test_malformed_authorization_headers() -> None:
    client = Client()
    for header in AUTHORIZATION:
        for path in (BASE, "/cfg/tasks/metrics/"):
            response = client.get(path, HTTP_AUTHORIZATION=header)
            assert response.status_code in (401, 403), (header[:40], path, response.status_code)


COMMAND_OPTIONS = {
    "seed_task_logs": ["--count", "--days", "--seed", "--batch-size", "--database"],
    "cleanup_task_logs": ["--days", "--failed-days", "--batch-size", "--database"],
    "check_task_alerts": ["--rule"],
}
COMMAND_VALUES = ("1; DROP TABLE django_cfg_task_log", "' OR '1'='1", "abc\x00def", "9" * 400, "-1")


def test_hostile_command_options_are_command_errors() -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    TaskLogFactory.create_batch(2)
    rows = TaskLog.objects.count()
    tried = 0
    for command, options in COMMAND_OPTIONS.items():
        for option in options:
            for value in COMMAND_VALUES:
                if option == "--seed" and value.lstrip("-").isdigit():
                    continue  # any integer is a valid seed
                with pytest.raises(CommandError):
                    call_command(command, option, value)
                tried += 1
    assert tried == 48  # stated in docs/security.md
    assert TaskLog.objects.count() == rows
