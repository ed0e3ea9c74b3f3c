"""The PagerDuty channel (Events API v2) against a local HTTP server on loopback."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from harness.factories import finished_jobs
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.ops.channels import ChannelError, PagerDutyChannel, configured_channels
from tests.test_alerts import Endpoint, run

pytestmark = pytest.mark.django_db
ROUTING_KEY = "R0UT1NGk3y-s3cret-0123456789abcdef"


@pytest.fixture
def pagerduty(settings):
    endpoint = Endpoint()
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_EMAIL_RECIPIENTS": [],
        "ALERT_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "ALERT_PAGERDUTY_URL": endpoint.url,
        "ALERT_HTTP_TIMEOUT_SECONDS": 0.5,
    }
    yield endpoint
    endpoint.close()


def test_trigger_then_resolve_with_the_alert_key_as_dedup_key(pagerduty) -> None:
    finished_jobs("send_email", 40, failed=10)
    code, out = run()
    assert code == 1 and "delivered via pagerduty" in out
    (trigger,) = pagerduty.bodies
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "failure_rate:send_email"
    payload = trigger["payload"]
    assert payload["severity"] == "error" and payload["source"] == "django-rearq-tasks"
    assert payload["summary"].startswith("FIRING failure_rate:send_email: 25.0 % of 40")
    assert payload["component"] == "failure_rate"
    assert payload["custom_details"]["value"] == 25.0

    TaskLog.objects.filter(status=StatusChoices.FAILED).update(
        enqueue_time=timezone.now() - dt.timedelta(hours=3)
    )
    assert run()[0] == 0
    resolve = pagerduty.bodies[-1]
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "failure_rate:send_email",
        "event_action": "resolve",
    }
    assert run()[0] == 0 and len(pagerduty.bodies) == 2, "resolved is sent once"


def test_one_event_per_alert(pagerduty) -> None:
    finished_jobs("send_email", 40, failed=10)
    finished_jobs("resize", 40, failed=20)
    run()
    keys = sorted(body["dedup_key"] for body in pagerduty.bodies)
    assert keys == ["failure_rate:resize", "failure_rate:send_email"]


def test_routing_key_never_shown(pagerduty, settings, capsys) -> None:
    (channel,) = configured_channels()
    assert isinstance(channel, PagerDutyChannel)
    assert ROUTING_KEY not in repr(channel)
    pagerduty.mode = "error"
    finished_jobs("send_email", 40, failed=10)
    code, out = run()
    assert code == 2 and "error: pagerduty (http://127.0.0.1:" in out and "HTTP 500" in out
    assert ROUTING_KEY not in out
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "ALERT_PAGERDUTY_ROUTING_KEY": "short"}
    with pytest.raises(Exception) as raised:
        call_command("check", fail_level="ERROR")
    assert "ALERT_PAGERDUTY_ROUTING_KEY" in str(raised.value)
    assert "short" not in str(raised.value)


def test_failed_events_are_counted_in_the_error(pagerduty) -> None:
    from rearq_tasks.ops.alerts import Notification

    pagerduty.mode = "error"
    channel = PagerDutyChannel(pagerduty.url, 0.5, routing_key=ROUTING_KEY)
    note = Notification("firing", "new", "backlog:q", "backlog", "m", 1.0, 1.0)
    with pytest.raises(ChannelError, match=r"2 of 2 events not delivered"):
        channel.send([note, note])
