from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from harness.factories import TaskLogFactory, finished_jobs
from rearq_tasks.models import AlertState, StatusChoices
from rearq_tasks.ops.alerts import run_alerts

pytestmark = pytest.mark.django_db
SECRET_PATH = "/services/T000/B000/sl4ck-s3cret"


class Endpoint:
    """A local HTTP server standing in for Slack or a webhook: ok, 500, or too slow."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.bodies: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                endpoint.bodies.append(json.loads(self.rfile.read(length)))
                if endpoint.mode == "slow":
                    time.sleep(1.5)
                status = 500 if endpoint.mode == "error" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints():
    made: list[Endpoint] = []

    def make(mode: str = "ok") -> Endpoint:
        made.append(Endpoint(mode))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


@pytest.fixture
def channels(settings, endpoints):
    slack, webhook = endpoints(), endpoints()
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.MANAGERS = [("Boss", "boss@example.com")]
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_SLACK_WEBHOOK_URL": slack.url,
        "ALERT_WEBHOOK_URL": webhook.url,
        "ALERT_HTTP_TIMEOUT_SECONDS": 0.5,
    }
    return slack, webhook


def run(*args: str) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("check_task_alerts", *args, stdout=out, stderr=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_healthy_exits_0_and_sends_nothing(channels) -> None:
    finished_jobs("send_email", 50, failed=1)
    code, out = run()
    assert code == 0 and "no alerts" in out
    assert mail.outbox == [] and channels[0].bodies == [] and channels[1].bodies == []


def test_failure_rate_alert_goes_to_every_channel(channels) -> None:
    slack, webhook = channels
    finished_jobs("send_email", 40, failed=10)
    code, out = run()
    assert code == 1
    assert "FIRING failure_rate:send_email: 25.0 % of 40 finished jobs failed" in out
    (email,) = mail.outbox
    assert email.to == ["ops@example.com"]
    assert email.subject == "[ReArq tasks] 1 alert firing"
    assert (
        "FIRING  failure_rate:send_email: 25.0 % of 40 finished jobs failed in the last 60 min "
        "(10 failed; threshold 10 %)"
    ) in email.body
    assert "    latest error: ValueError: boom " in email.body
    assert ":rotating_light: *FIRING* `failure_rate:send_email`" in slack.bodies[0]["text"]
    (note,) = webhook.bodies[0]["notifications"]
    assert note["key"] == "failure_rate:send_email" and note["status"] == "firing"
    assert note["value"] == 25.0 and note["threshold"] == 10.0
    state = AlertState.objects.get(key="failure_rate:send_email")
    assert state.firing and state.sent_value == 25.0 and state.last_sent_at is not None


def test_failure_rate_alert_counts_only_succeeded_and_failed_jobs(channels) -> None:
    finished_jobs("send_email", 40, failed=10)
    TaskLogFactory.create_batch(
        60, task_name="send_email", status=StatusChoices.CANCELED,
        enqueue_time=timezone.now() - dt.timedelta(minutes=10),
    )  # fmt: skip
    code, out = run()
    assert code == 1
    assert "FIRING failure_rate:send_email: 25.0 % of 40 finished jobs failed" in out


def test_minimum_sample_is_respected(channels) -> None:
    finished_jobs("send_email", 9, failed=9)
    assert run()[0] == 0


def test_cooldown_then_worse_then_reminder_then_resolved(channels) -> None:
    finished_jobs("send_email", 40, failed=8)  # 20 %
    assert run()[0] == 1
    assert len(mail.outbox) == 1

    code, out = run()  # same figure, inside the cooldown
    assert code == 1, "still firing: the cron line keeps paging"
    assert len(mail.outbox) == 1 and "not re-sent (cooldown): failure_rate:send_email" in out

    finished_jobs("send_email", 20, failed=20)  # 28/60 = 46.7 % ≥ 1.5 × 20 %
    assert run()[0] == 1
    assert len(mail.outbox) == 2 and "WORSE" in mail.outbox[1].body

    AlertState.objects.update(last_sent_at=timezone.now() - dt.timedelta(hours=2))
    run()
    assert len(mail.outbox) == 3 and "STILL FIRING" in mail.outbox[2].body

    from rearq_tasks.models import TaskLog

    TaskLog.objects.filter(status=StatusChoices.FAILED).update(
        enqueue_time=timezone.now() - dt.timedelta(hours=3)
    )
    code, out = run()
    assert code == 0
    assert mail.outbox[3].subject == "[ReArq tasks] 1 resolved"
    assert "RESOLVED  failure_rate:send_email: cleared (was: " in mail.outbox[3].body
    assert ":white_check_mark: *RESOLVED*" in channels[0].bodies[-1]["text"]
    assert not AlertState.objects.get().firing
    assert run()[0] == 0
    assert len(mail.outbox) == 4, "resolved is said once"


def test_failing_channels_are_reported_and_do_not_stop_the_others(settings, endpoints) -> None:
    broken, slow = endpoints("error"), endpoints("slow")
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_SLACK_WEBHOOK_URL": broken.url,
        "ALERT_WEBHOOK_URL": slow.url,
        "ALERT_HTTP_TIMEOUT_SECONDS": 0.5,
    }
    finished_jobs("send_email", 40, failed=10)
    code, out = run()  # the slow one answers after 1.5 s: only the 0.5 s timeout ends it
    assert code == 2
    assert "error: slack (http://127.0.0.1:" in out and ": HTTP 500" in out
    assert "error: webhook (http://127.0.0.1:" in out and "no answer within 0.5 s" in out
    assert "sl4ck-s3cret" not in out
    assert len(mail.outbox) == 1 and "delivered via email" in out
    assert broken.bodies and slow.bodies, "both were tried"
    assert AlertState.objects.get().last_sent_at is not None, "e-mail took it: not re-sent"


def test_nothing_delivered_is_retried_next_run(settings, endpoints) -> None:
    broken = endpoints("error")
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_EMAIL_RECIPIENTS": [],
        "ALERT_WEBHOOK_URL": broken.url,
    }
    finished_jobs("send_email", 40, failed=10)
    assert run()[0] == 2
    assert AlertState.objects.get().last_sent_at is None
    broken.mode = "ok"
    assert run()[0] == 1
    assert len(broken.bodies) == 2 and broken.bodies[1]["notifications"][0]["reason"] == "new"


def test_no_channel_configured_is_an_error(settings) -> None:
    settings.ADMINS = []
    finished_jobs("send_email", 40, failed=10)
    code, out = run()
    assert code == 2 and "no alert channel configured" in out


def test_recipients_admins_managers_and_addresses(settings, channels) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_EMAIL_RECIPIENTS": ["MANAGERS", "oncall@example.com", "ADMINS"],
    }
    finished_jobs("send_email", 40, failed=10)
    run()
    assert mail.outbox[0].to == ["boss@example.com", "oncall@example.com", "ops@example.com"]


def test_per_task_override(settings, channels) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "ALERT_TASK_OVERRIDES": {
            "charge_payment": {"FAILURE_RATE_THRESHOLD": 5},
            "flaky_partner_api": {"FAILURE_RATE_THRESHOLD": None},
        },
    }
    finished_jobs("charge_payment", 100, failed=7)
    finished_jobs("send_email", 100, failed=7)
    finished_jobs("flaky_partner_api", 100, failed=60)
    result = run_alerts(dry_run=True)
    assert [a.key for a in result.firing] == ["failure_rate:charge_payment"]
    assert result.firing[0].threshold == 5


def test_stuck_lists_the_ten_oldest_job_ids(channels) -> None:
    now = timezone.now()
    for minutes in range(12):
        start = now - dt.timedelta(hours=2, minutes=minutes)
        TaskLogFactory(
            job_id=f"stuck-{minutes:02d}",
            status=StatusChoices.IN_PROGRESS,
            start_time=start,
            enqueue_time=start,
            worker_id="host-a-1",
        )
    TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=now, enqueue_time=now)
    result = run_alerts(rules=["stuck"])
    (alert,) = result.firing
    assert alert.value == 12
    assert "12 job(s) in progress for more than 3600 s (default: 12)" in alert.message
    assert [d.split()[0] for d in alert.details] == [f"stuck-{m:02d}" for m in range(11, 1, -1)]
    assert "stuck-11  send_email on default, in progress since" in mail.outbox[0].body
    assert "on host-a-1" in mail.outbox[0].body


def test_backlog_duration_and_retries_rules(channels) -> None:
    TaskLogFactory.create_batch(101, queue_name="low")
    finished_jobs("export_csv", 3, failed=0, duration_ms=45_000)
    finished_jobs("sync_inventory", 3, failed=0, job_retries=6)
    result = run_alerts(dry_run=True)
    assert {a.key: a.value for a in result.firing} == {
        "backlog:low": 101,
        "avg_duration:export_csv": 45.0,
        "avg_retries:sync_inventory": 6.0,
    }


def test_dry_run_sends_and_records_nothing(channels) -> None:
    finished_jobs("send_email", 40, failed=10)
    code, out = run("--dry-run")
    assert code == 1 and "would send:" in out
    assert mail.outbox == [] and channels[0].bodies == [] and not AlertState.objects.exists()


def test_json_output(channels) -> None:
    finished_jobs("send_email", 40, failed=10)
    code, out = run("--json", "--dry-run")
    data = json.loads(out)
    assert code == data["exit_code"] == 1
    assert data["firing"][0]["key"] == "failure_rate:send_email"
    assert data["notifications"][0]["reason"] == "new"


def test_rule_option_is_repeatable_and_only_touches_its_rules(channels) -> None:
    finished_jobs("send_email", 40, failed=10)
    TaskLogFactory.create_batch(101, queue_name="low")
    code, out = run("--rule", "backlog", "--rule", "stuck")
    assert code == 1 and "backlog:low" in out and "failure_rate" not in out
    assert list(AlertState.objects.values_list("key", flat=True)) == ["backlog:low"]
    run("--rule", "failure_rate")
    assert AlertState.objects.get(key="backlog:low").firing, "not resolved by another rule's run"


def test_unknown_rule_is_a_command_error(channels) -> None:
    expected = "unknown --rule 'nope'; choose from failure_rate"
    with pytest.raises(CommandError, match=expected) as exc:
        call_command("check_task_alerts", "--rule", "nope")
    assert exc.value.returncode == 2
    assert mail.outbox == []


def test_cron_task_entry_point_returns_the_exit_code(channels) -> None:
    from rearq_tasks.ops.alerts import check_task_alerts

    assert check_task_alerts() == 0
    finished_jobs("send_email", 40, failed=10)
    assert check_task_alerts() == 1
    assert len(mail.outbox) == 1


def test_slack_text_escapes_control_characters_so_jobs_cannot_ping_or_disguise_links(
    channels,
) -> None:
    slack, webhook = channels
    task = "evil<!channel>&<@U123>"
    finished_jobs(task, 30, failed=0)
    TaskLogFactory.create_batch(
        10,
        task_name=task,
        status=StatusChoices.FAILED,
        success=False,
        enqueue_time=timezone.now() - dt.timedelta(minutes=10),
        error_message="see <http://evil.example|click> <!here>",
    )
    code, _ = run()
    assert code == 1
    text = slack.bodies[0]["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    assert "<http://evil.example|click>" not in text
    assert "<" not in text and ">" not in text
    assert "`failure_rate:evil&lt;!channel&gt;&amp;&lt;@U123&gt;`" in text
    assert "latest error: see &lt;http://evil.example|click&gt; &lt;!here&gt;" in text
    # The webhook's JSON and the e-mail keep the text as it is (they are not markup).
    assert webhook.bodies[0]["notifications"][0]["key"] == f"failure_rate:{task}"


def test_no_channel_says_not_sent_and_dry_run_exits_the_same(settings) -> None:
    settings.ADMINS = []
    finished_jobs("send_email", 40, failed=10)
    dry_code, dry_out = run("--dry-run")
    code, out = run()
    assert (dry_code, code) == (2, 2)
    assert "NOT sent (see the error below):" in out and "\nsent:" not in f"\n{out}"
    assert "would send:" in dry_out and "no alert channel configured" in dry_out


def test_health_and_alerts_explain_each_other_on_the_same_rows(channels) -> None:
    """18 jobs, 4 failed, over three tasks: 22.2 % overall, no task with 10 finished jobs."""
    from rearq_tasks.ops.health import ServiceUnavailable, TaskQueue

    finished_jobs("send_email", 6, failed=2)
    finished_jobs("resize", 6, failed=1)
    finished_jobs("sync", 6, failed=1)
    with pytest.raises(ServiceUnavailable) as exc:
        TaskQueue().run()
    assert "22.2 % (4/18 jobs of all tasks together" in exc.value.message
    assert "check_task_alerts judges each task on its own" in exc.value.message
    code, out = run()
    assert code == 0 and "no alerts" in out
    assert "note: all tasks together: 22.2 % of 18 finished jobs failed" in out
    assert "judges each task on its own" in out and "/health/" in out
