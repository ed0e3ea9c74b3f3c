"""Credentials never leak: password-bearing settings, every surface driven, all output grepped.

Redis and ReArq-database URLs with passwords, webhook URLs with secret paths and tokens and
the metrics token are configured; Redis is down (a closed port) and the channels fail. The
health report (HTML, JSON, OpenMetrics), system-check messages for wrong settings next to
them, log records at DEBUG, reprs of the health checks, metrics, API error responses, the
admin (pages, dashboard, a Retry with Redis down) and ``check_task_alerts`` output are
collected, and no secret may appear in any of it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from harness.network import free_port
from rearq_tasks.conf import redact_url
from rearq_tasks.conf.checks import check_settings
from rearq_tasks.models import StatusChoices
from rearq_tasks.ops.health import ReArqRedis, ReArqWorkers, TaskQueue

pytestmark = pytest.mark.django_db

REDIS_PW = "S3cretRedisPw"
DB_PW = "S3cretDbPw"
SLACK_SECRET = "S3cretSlackPath"
HOOK_SECRET = "S3cretWebhookToken"
METRICS_SECRET = "S3cretMetricsToken0123456789"
BASIC_PW = "S3cretBasicPw"
SECRETS = (REDIS_PW, DB_PW, SLACK_SECRET, HOOK_SECRET, METRICS_SECRET, BASIC_PW)


def assert_no_secret(output: list[str]) -> None:
    text = "\n".join(output)
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], [line for line in output if any(s in line for s in leaked)][:5]


@pytest.fixture
def secret_settings(settings):
    port = free_port()
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "REDIS_URL": f"redis://:{REDIS_PW}@127.0.0.1:{port}/0",
        "DB_URL": f"postgres://rearq:{DB_PW}@127.0.0.1:{port}/rearq",
        "ALERT_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/services/T0/B0/{SLACK_SECRET}",
        "ALERT_WEBHOOK_URL": f"http://hook:{HOOK_SECRET}@127.0.0.1:{port}/h?token={HOOK_SECRET}",
        "METRICS_TOKEN": METRICS_SECRET,
        "REDIS_TIMEOUT_SECONDS": 0.5,
        "ALERT_HTTP_TIMEOUT_SECONDS": 0.5,
    }
    settings.ADMINS = [("Ops", "ops@example.com")]
    return settings


def test_no_surface_shows_a_secret(secret_settings, caplog, monkeypatch) -> None:
    from rearq_tasks.queue import client as rearq_client

    monkeypatch.setattr(rearq_client, "_client", None)  # built again from these settings
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    staff = Client()
    staff.force_login(staff_viewer(username="viewer"))
    anonymous = Client()

    # Health, before any TaskLog row is written (its checks read from executor threads).
    for query, accept in (("?format=json", ""), ("", "text/html"), ("?format=openmetrics", "")):
        for client in (anonymous, staff):
            response = client.get(f"/health/{query}", HTTP_ACCEPT=accept or "*/*")
            seen.append(response.content.decode())
    assert "unreachable" in seen[0]
    assert "127.0.0.1" in seen[0]  # the target is shown, its password is not
    for check in (TaskQueue(), ReArqWorkers(), ReArqRedis()):
        seen += [repr(check), str(check), json.dumps(getattr(check, "labels", {}))]

    # Metrics with Redis down, through the session and the bearer token.
    seen.append(staff.get("/cfg/tasks/metrics/").content.decode())
    bearer = anonymous.get("/cfg/tasks/metrics/", HTTP_AUTHORIZATION=f"Bearer {METRICS_SECRET}")
    assert b"rearq_tasks_redis_up 0.0" in bearer.content
    seen.append(bearer.content.decode())
    wrong = anonymous.get("/cfg/tasks/metrics/", HTTP_AUTHORIZATION="Bearer nope")
    seen.append(wrong.content.decode())

    # API errors: refused, bad parameters, not found, wrong credentials.
    basic = base64.b64encode(f"viewer:{BASIC_PW}".encode()).decode()
    for client, path, headers in (
        (anonymous, "/cfg/tasks/logs/", {}),
        (anonymous, "/cfg/tasks/logs/", {"HTTP_AUTHORIZATION": f"Basic {basic}"}),
        (anonymous, "/cfg/tasks/logs/", {"HTTP_AUTHORIZATION": f"Token {METRICS_SECRET}"}),
        (anonymous, "/cfg/tasks/schema/", {"HTTP_AUTHORIZATION": f"Bearer {METRICS_SECRET}"}),
        (staff, "/cfg/tasks/logs/?page_size=x&is_failed=maybe&ordering=password", {}),
        (staff, f"/cfg/tasks/logs/?search={REDIS_PW}%00", {}),
        (staff, "/cfg/tasks/logs/999999/", {}),
        (staff, "/cfg/tasks/logs/stats/?period_hours=-1", {}),
        (staff, "/cfg/tasks/logs/overview/", {}),
    ):
        response = client.get(path, **headers)
        assert response.status_code < 500
        body = response.content.decode()
        # A secret the client sent itself may be echoed back to it only in the search error.
        seen.append(body.replace(f"{REDIS_PW}", "") if "search=" in path else body)

    # Alerts: something fires, Slack and the webhook are unreachable.
    enqueue = timezone.now() - dt.timedelta(minutes=10)
    for i in range(20):
        TaskLogFactory(
            task_name="charge_card",
            status=StatusChoices.FAILED,
            success=False,
            enqueue_time=enqueue,
            error_message=f"ValueError: boom {i}",
            duration_ms=100,
        )
    for options in (["--dry-run"], ["--dry-run", "--json"], ["--json"], []):
        out, err = StringIO(), StringIO()
        with pytest.raises(SystemExit) as exit_:
            call_command("check_task_alerts", *options, stdout=out, stderr=err)
        assert exit_.value.code in (1, 2)
        seen += [out.getvalue(), err.getvalue()]
    assert "webhook (http://127.0.0.1:" in "\n".join(seen)  # the channel failed, visibly
    seen += [f"{m.subject}\n{m.body}" for m in mail.outbox]
    assert mail.outbox

    # The admin: pages, the dashboard (it reads ReArq's Redis) and a Retry that cannot reach it.
    root = Client()
    root.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    log = TaskLogFactory(status=StatusChoices.FAILED, success=False, error_message="boom")
    for path in (
        "/admin/tasks/tasklog/",
        "/admin/tasks/tasklog/?q=x",
        f"/admin/tasks/tasklog/{log.pk}/change/",
        "/admin/tasks/tasklog/dashboard/",
        f"/admin/tasks/tasklog/{log.pk}/retry/",
    ):
        response = root.get(path)
        assert response.status_code == 200, path
        seen.append(response.content.decode())
    retried = root.post(f"/admin/tasks/tasklog/{log.pk}/retry/", follow=True)
    page = retried.content.decode()
    assert "ReArq is unavailable" in page and "127.0.0.1" in page
    seen.append(page)

    # Everything logged on the way, tracebacks included.
    seen.append(caplog.text)
    seen += [str(record.args) for record in caplog.records]
    assert_no_secret(seen)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_URL", f"http://:{REDIS_PW}@127.0.0.1:6379/0"),  # wrong scheme
        ("REDIS_URL", f"redis:/:{REDIS_PW}@127.0.0.1:6379/0"),  # typo: one slash
        ("REDIS_URL", f"redis://:{REDIS_PW}/x@127.0.0.1:6379/0".encode()),  # bytes
        ("REDIS_URL", [f"redis://:{REDIS_PW}@127.0.0.1:6379/0"]),  # a list
        ("DB_URL", f"oracle://rearq:{DB_PW}@db/rearq"),
        ("DB_URL", f"mysql:/rearq:{DB_PW}@db/rearq"),  # typo: one slash
        ("ALERT_SLACK_WEBHOOK_URL", f"ftp://hooks.slack.com/services/T0/B0/{SLACK_SECRET}"),
        ("ALERT_WEBHOOK_URL", f"ftp://example.com/hook?token={HOOK_SECRET}"),
        ("ALERT_WEBHOOK_URL", f"hooks.example.com/{HOOK_SECRET}"),
        ("ALERT_WEBHOOK_URL", 42),
        ("METRICS_TOKEN", METRICS_SECRET[:10]),  # too short
        ("METRICS_TOKEN", METRICS_SECRET.encode()),  # wrong type
    ],
)
def test_system_check_messages_hide_secrets(settings, key, value) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        key: value,
        "PAGE_SIZE": "fifty",  # a wrong setting next to it
        "REDIS_ULR": f"redis://:{REDIS_PW}@typo",  # an unknown key carrying a secret
    }
    errors = check_settings()
    assert len(errors) == 3, errors  # the secret-bearing setting is reported too
    text = "\n".join(f"{e.id} {e.msg} {e.hint}" for e in errors)
    secrets = [s for s in SECRETS if s in str(value)] + [METRICS_SECRET[:10]]
    assert [s for s in secrets if s in text] == [], text
    out = StringIO()
    with pytest.raises(Exception) as failure:  # noqa: PT011 - SystemCheckError
        call_command("check", stdout=out, stderr=out)
    assert [s for s in secrets if s in f"{failure.value}{out.getvalue()}"] == []


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{REDIS_PW}@127.0.0.1:6379/0",
        f"redis://user:{REDIS_PW}@127.0.0.1:6379/0",
        f"rediss://user:{REDIS_PW}@[::1]:6380/0",
        f"redis:/:{REDIS_PW}@127.0.0.1/0",
        f"redis://:{REDIS_PW}/with/slash@127.0.0.1/0",
        f"redis://:{REDIS_PW}@with@at@127.0.0.1/0",
        f"postgres://rearq:{DB_PW}@db:notaport/rearq",
        f"unix://:{REDIS_PW}@/run/redis.sock?db=0",
    ],
)
def test_redact_url(url: str) -> None:
    shown = redact_url(url)
    assert REDIS_PW not in shown and DB_PW not in shown
    assert "***@" in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://h/x?token={HOOK_SECRET}", "https://h/x?token=***"),
        (f"https://h/x?a=1&api_key={HOOK_SECRET}&b=2", "https://h/x?a=1&api_key=***&b=2"),
        (f"https://h/x?sig={HOOK_SECRET}#top", "https://h/x?sig=***#top"),
        (f"redis://h/0?password={REDIS_PW}", "redis://h/0?password=***"),
        ("https://h/x?page=2&q=tokens", "https://h/x?page=2&q=tokens"),
    ],
)
def test_redact_url_masks_secret_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_leaves_urls_without_password_alone() -> None:
    for url in ("redis://127.0.0.1:6379/0", "sqlite://x.sqlite3", "redis://user@host/0", None, ""):
        assert redact_url(url) == url


def _report(settings, filter_path: str) -> str:
    from django.test import RequestFactory
    from django.utils.module_loading import import_string
    from django.views.debug import ExceptionReporter

    request = RequestFactory().get("/health/", HTTP_AUTHORIZATION=f"Bearer {METRICS_SECRET}")
    # What DEFAULT_EXCEPTION_REPORTER_FILTER names (Django caches that setting's class).
    request.exception_reporter_filter = import_string(filter_path)()
    webhook_url = secret_url = settings.REARQ_TASKS["ALERT_WEBHOOK_URL"]  # noqa: F841 - a local
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        reporter = ExceptionReporter(request, type(exc), exc, exc.__traceback__)
        return reporter.get_traceback_text() + reporter.get_traceback_html()


def test_error_reports_hide_credentials(secret_settings) -> None:
    """The e-mail Django sends ADMINS on a 5xx lists every setting and the frame locals."""
    leaky = _report(secret_settings, "django.views.debug.SafeExceptionReporterFilter")
    assert REDIS_PW in leaky and HOOK_SECRET in leaky  # why the filter is needed
    safe = _report(secret_settings, "rearq_tasks.conf.reporting.SafeExceptionReporterFilter")
    assert "REARQ_TASKS" in safe and "redis://:***@127.0.0.1" in safe
    assert_no_secret([safe])


def test_check_asks_for_the_filter_while_credentials_are_configured(secret_settings) -> None:
    from rearq_tasks.conf.checks import check_error_reports

    assert check_error_reports() == []  # the example project sets it
    secret_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = (
        "django.views.debug.SafeExceptionReporterFilter"
    )
    warnings = check_error_reports()
    assert [w.id for w in warnings] == ["rearq_tasks.W001"]
    assert "REDIS_URL" in warnings[0].msg and "METRICS_TOKEN" in warnings[0].msg
    assert_no_secret([warnings[0].msg, warnings[0].hint])
    secret_settings.REARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert check_error_reports() == []
