"""User-controlled text (task names, queues, args, results, errors...) renders inert everywhere."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import json

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices, TaskLog

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("xss-script")</script>'
IMG = '<img src=x onerror=alert("xss-img")>'
PAYLOAD = SCRIPT + IMG
CLOSE = 'evil</script><script>alert("xss-close")</script>'
RAW_MARKERS = ("<script>alert(", "<img src=x onerror", '</script><script>alert("xss-close")')


@pytest.fixture
def evil_logs():
    cache.clear()
    user = UserFactory(username=f"u{IMG}"[:150], email="x@example.com", first_name=PAYLOAD)
    start = timezone.now() - dt.timedelta(minutes=10)
    common = {
        "queue_name": f"q{IMG}"[:100],
        "args": [PAYLOAD, {PAYLOAD: CLOSE}],
        "kwargs": {PAYLOAD: [IMG], "k": CLOSE},
        "worker_id": f"w{IMG}"[:100],
        "user": user,
        "start_time": start,
        "finish_time": start + dt.timedelta(seconds=2),
        "duration_ms": 2000,
    }
    failed = TaskLogFactory(
        job_id=f"j{IMG}"[:100],
        task_name=CLOSE,
        status=StatusChoices.FAILED,
        success=False,
        error_message=PAYLOAD + CLOSE,
        result=PAYLOAD,
        job_retries=1,
        job_retry=3,
        **common,
    )
    succeeded = TaskLogFactory(
        job_id=f"s{SCRIPT}"[:100],
        task_name=PAYLOAD,
        status=StatusChoices.SUCCESS,
        success=True,
        result=json.dumps({"html": PAYLOAD, "close": CLOSE}),
        **common,
    )
    yield failed, succeeded
    cache.clear()


@pytest.fixture
def root(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def assert_inert(page: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in page, f"unescaped payload {marker!r} in the page"


def test_changelist_renders_payloads_inert(root, evil_logs) -> None:
    for query in ("", "?quick=failed", f"?task_name={CLOSE}", "?q=evil"):
        response = root.get(reverse("admin:tasks_tasklog_changelist") + query.replace("#", ""))
        assert response.status_code == 200
        page = response.content.decode()
        assert_inert(page)
    # The filter sidebar lists the task name too, escaped.
    page = root.get(reverse("admin:tasks_tasklog_changelist")).content.decode()
    assert htmllib.escape(CLOSE, quote=False) in page or "evil&lt;/script&gt;" in page


@pytest.mark.parametrize("which", [0, 1])
def test_detail_renders_payloads_inert(root, evil_logs, settings, which) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REARQ_UI_URL": "http://ui.local"}
    log = evil_logs[which]
    response = root.get(reverse("admin:tasks_tasklog_change", args=[log.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert_inert(page)
    assert "&lt;script&gt;alert(" in page  # shown, as text
    if log.status == StatusChoices.FAILED:
        assert "Error details" in page


def test_confirmation_pages_render_payloads_inert(root, evil_logs) -> None:
    failed = evil_logs[0]
    for name in ("admin:tasks_tasklog_retry_job", "admin:tasks_tasklog_cancel_job"):
        page = root.get(reverse(name, args=[failed.pk])).content.decode()
        assert_inert(page)


def test_dashboard_renders_payloads_inert_including_chart_json(root, evil_logs) -> None:
    response = root.get(reverse("admin:tasks_tasklog_dashboard"))
    assert response.status_code == 200
    page = response.content.decode()
    assert_inert(page)
    # The failures chart carries the task name in a data attribute: escaped for HTML,
    # and still the exact name once the browser decodes the attribute and parses the JSON.
    start = page.index('data-value="', page.index("Failures by task")) + len('data-value="')
    attribute = page[start : page.index('"', start)]
    assert "<" not in attribute
    chart = json.loads(htmllib.unescape(attribute))
    assert chart["labels"] == [CLOSE]
    assert TaskLog.objects.filter(task_name=CLOSE).exists()
