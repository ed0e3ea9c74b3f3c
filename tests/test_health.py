from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core import mail
from django.urls import include, path
from django.utils import timezone
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from harness.factories import TaskLogFactory, consume, finished_jobs, push_heartbeat
from harness.network import free_port
from rearq_tasks.models import StatusChoices
from rearq_tasks.ops.health import HealthView, ReArqRedis, ReArqWorkers, TaskQueue

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cron_tasks(monkeypatch):
    """ReArq keeps cron tasks in a class-level registry: start every test without any."""
    from rearq.task import CronTask

    monkeypatch.setattr(CronTask, "_cron_tasks", {})


def running_since(seconds: float, count: int = 1) -> None:
    start = timezone.now() - dt.timedelta(seconds=seconds)
    TaskLogFactory.create_batch(
        count, status=StatusChoices.IN_PROGRESS, start_time=start, enqueue_time=start
    )


def test_task_queue_is_healthy_on_an_empty_table() -> None:
    TaskQueue().run()


def test_stuck_job_is_unavailable_and_says_figure_and_threshold() -> None:
    running_since(7200, count=2)
    with pytest.raises(ServiceUnavailable) as exc:
        TaskQueue().run()
    assert "2 job(s) in progress for more than 3600 s (threshold 3600 s)" in exc.value.message


def test_long_running_job_warns_before_it_is_stuck() -> None:
    running_since(2000)
    with pytest.raises(ServiceWarning) as exc:
        TaskQueue().run()
    assert not isinstance(exc.value, ServiceUnavailable)
    assert "more than 1800 s (stuck threshold 3600 s)" in exc.value.message


def test_failure_rate_needs_the_minimum_sample() -> None:
    finished_jobs("send_email", 9, failed=9)
    TaskQueue().run()


def test_failure_rate_above_threshold_is_unavailable() -> None:
    finished_jobs("send_email", 20, failed=5)
    with pytest.raises(ServiceUnavailable) as exc:
        TaskQueue().run()
    assert "failure rate 25.0 % (5/20 jobs of all tasks together in the last 1 h;" in (
        exc.value.message
    )
    assert exc.value.message.endswith("per task) above 10 %")


def test_failure_rate_warns_at_half_the_threshold() -> None:
    finished_jobs("send_email", 100, failed=7)
    with pytest.raises(ServiceWarning) as exc:
        TaskQueue().run()
    assert not isinstance(exc.value, ServiceUnavailable)
    assert "7.0 %" in exc.value.message and "threshold 10 %" in exc.value.message


def test_failure_rate_ignores_canceled_jobs_like_the_summary() -> None:
    finished_jobs("send_email", 20, failed=5)
    TaskLogFactory.create_batch(
        30, task_name="send_email", status=StatusChoices.CANCELED,
        enqueue_time=timezone.now() - dt.timedelta(minutes=5),
    )  # fmt: skip
    with pytest.raises(ServiceUnavailable) as exc:
        TaskQueue().run()
    assert "failure rate 25.0 % (5/20 jobs of all tasks together" in exc.value.message


def test_old_failures_do_not_count() -> None:
    TaskLogFactory.create_batch(
        20,
        status=StatusChoices.FAILED,
        success=False,
        enqueue_time=timezone.now() - dt.timedelta(hours=3),
    )
    TaskQueue().run()


def test_backlog_levels_per_queue() -> None:
    TaskLogFactory.create_batch(60, queue_name="low")
    with pytest.raises(ServiceWarning) as warning:
        TaskQueue().run()
    assert "60 jobs queued on 'low'" in warning.value.message
    TaskLogFactory.create_batch(41, queue_name="low")
    with pytest.raises(ServiceUnavailable) as exc:
        TaskQueue().run()
    assert "101 jobs queued on 'low' (threshold 100)" in exc.value.message


def test_thresholds_come_from_settings_and_fields(settings) -> None:
    finished_jobs("send_email", 20, failed=5)
    TaskQueue(failure_rate_threshold=50, warning_ratio=0.9).run()
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "FAILURE_RATE_THRESHOLD": 30.0}
    assert TaskQueue().failure_rate_threshold == 30.0
    with pytest.raises(ServiceWarning):
        TaskQueue().run()


def test_no_worker_is_unavailable(rearq_redis) -> None:
    with pytest.raises(ServiceUnavailable, match="no live ReArq worker"):
        ReArqWorkers().run()


def test_fresh_heartbeat_is_a_live_worker(rearq_redis) -> None:
    push_heartbeat(rearq_redis)
    ReArqWorkers().run()


def test_stale_heartbeat_of_a_killed_worker_counts_as_dead(rearq_redis) -> None:
    push_heartbeat(rearq_redis, age_seconds=45)
    with pytest.raises(ServiceUnavailable) as exc:
        ReArqWorkers().run()
    assert "no live ReArq worker (1 stale heartbeat(s) of dead workers)" in exc.value.message


def test_a_timer_alone_is_not_a_worker(rearq_redis) -> None:
    push_heartbeat(rearq_redis, consumer="timer", is_timer=True)
    with pytest.raises(ServiceUnavailable, match="no live ReArq worker"):
        ReArqWorkers().run()


def test_configured_queue_without_worker_is_unavailable(rearq_redis, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "WORKER_QUEUES": ["default", "critical"]}
    push_heartbeat(rearq_redis, queue="default")
    push_heartbeat(rearq_redis, consumer=7, queue="critical", age_seconds=120)
    with pytest.raises(ServiceUnavailable) as exc:
        ReArqWorkers().run()
    assert "no live worker for queue(s) critical; 1 live worker(s)" in exc.value.message


def test_a_timer_heartbeat_does_not_hide_the_consumers_of_its_queue(rearq_redis) -> None:
    # `rearq_worker -q default -q high --with-timer`: the timer's heartbeat says "default",
    # the worker's says "high"; only the consumer group shows the worker reads "default".
    push_heartbeat(rearq_redis, group="host-c", consumer="timer", queue="default", is_timer=True)
    push_heartbeat(rearq_redis, group="host-c", consumer=5, queue="high")
    consume(rearq_redis, "default", "host-c", 5)
    ReArqWorkers(queues=("default", "high")).run()


def test_multi_queue_worker_is_found_through_its_consumer_group(rearq_redis) -> None:
    # ReArq writes one heartbeat field per worker, so a worker on two queues shows only the last.
    push_heartbeat(rearq_redis, group="host-b", consumer=99, queue="high")
    consume(rearq_redis, "critical", "host-b", 99)
    ReArqWorkers(queues=("critical", "high")).run()
    consume(rearq_redis, "low", "host-b", 12345)  # a consumer of a worker long gone
    with pytest.raises(ServiceUnavailable, match="queue\\(s\\) low"):
        ReArqWorkers(queues=("critical", "low")).run()


def test_queued_jobs_on_a_queue_nobody_reads_warn(rearq_redis) -> None:
    push_heartbeat(rearq_redis, queue="default")
    TaskLogFactory.create_batch(3, queue_name="reports")
    with pytest.raises(ServiceWarning) as exc:
        ReArqWorkers().run()
    assert "no live worker reads queue(s) reports (3 queued)" in exc.value.message


def test_timer_down_warns_when_retries_wait(rearq_redis) -> None:
    push_heartbeat(rearq_redis)
    ReArqWorkers().run()
    TaskLogFactory(status=StatusChoices.DEFERRED, job_retries=1)
    with pytest.raises(ServiceWarning, match="timer is down"):
        ReArqWorkers().run()
    push_heartbeat(rearq_redis, consumer="timer", is_timer=True)
    ReArqWorkers().run()


def test_timer_down_warns_when_cron_tasks_are_registered(rearq_redis, monkeypatch) -> None:
    from rearq import ReArq
    from rearq.task import CronTask

    push_heartbeat(rearq_redis)
    app = ReArq(redis_url="redis://127.0.0.1:1/0")
    monkeypatch.setattr(CronTask, "_cron_tasks", {})
    ReArqWorkers().run()
    nightly = CronTask(
        bind=False, name="nightly", function=print, queue="rearq:queue:default", rearq=app,
        job_retry=0, job_retry_after=60, job_timeout=60, cron="0 3 * * *",
    )  # fmt: skip
    monkeypatch.setattr(CronTask, "_cron_tasks", {"nightly": nightly})
    with pytest.raises(ServiceWarning, match="timer is down"):
        ReArqWorkers().run()


def test_redis_ping(rearq_redis) -> None:
    ReArqRedis().run()


def test_unreachable_redis_never_shows_credentials(settings) -> None:
    url = f"redis://admin:s3cr3t-pw@127.0.0.1:{free_port()}/0"
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": url}
    for check in (ReArqRedis(), ReArqWorkers()):
        with pytest.raises(ServiceUnavailable) as exc:
            check.run()
        text = f"{exc.value} {check!r} {check.labels}"
        assert "unreachable" in str(exc.value)
        assert "s3cr3t" not in text
    assert repr(ReArqRedis()) == f"ReArqRedis({url.replace('s3cr3t-pw', '***')})"


def test_health_view_formats(client, rearq_redis, settings) -> None:
    push_heartbeat(rearq_redis)
    response = client.get("/health/?format=json")
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert set(body.values()) == {"OK"}
    assert any(key.startswith("TaskQueue(") for key in body)
    assert any(key.startswith("ReArqWorkers(") for key in body)
    assert f"ReArqRedis({settings.REARQ_TASKS['REDIS_URL']})" in body
    html = client.get("/health/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and b"ReArqWorkers" in html.content
    metrics = client.get("/health/?format=openmetrics").content.decode()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    statuses = {s.labels["check"]: s.value for s in families["django_health_check_status"].samples}
    assert statuses == {"Database": 1, "TaskQueue": 1, "ReArqWorkers": 1, "ReArqRedis": 1}


def test_health_view_reports_a_dead_worker(client, rearq_redis) -> None:
    push_heartbeat(rearq_redis, age_seconds=300)
    response = client.get("/health/?format=json")
    assert response.status_code == 503
    assert "Unavailable: no live ReArq worker" in response.content.decode()


# --- the view: unhealthy answers mail nobody ---------------------------------------

urlpatterns = [
    path("ours/", HealthView.as_view(checks=["rearq_tasks.ops.health.TaskQueue"])),
    path("upstream/", HealthCheckView.as_view(checks=["rearq_tasks.ops.health.TaskQueue"])),
    path("", include("example_project.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)  # the checks run in a thread: rows must be committed
@pytest.mark.parametrize("fmt", ["json", "text", "html"])
def test_unhealthy_view_answers_503_without_mailing_admins(client, settings, caplog, fmt):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DEBUG = False
    finished_jobs("send_email", 20, failed=5)  # failure rate 25 %: TaskQueue unavailable
    query = "" if fmt == "html" else f"?format={fmt}"
    # The control: django-health-check's own view is a 500, which Django mails to ADMINS.
    upstream = client.get(f"/upstream/{query}", HTTP_ACCEPT="text/html")
    assert upstream.status_code == 500
    assert len(mail.outbox) == 1 and "ERROR" in mail.outbox[0].subject
    mail.outbox.clear()
    caplog.clear()
    for _ in range(3):  # a probe every few seconds
        response = client.get(f"/ours/{query}", HTTP_ACCEPT="text/html")
        assert response.status_code == 503
        assert "failure rate 25.0 %" in response.content.decode()
    assert mail.outbox == []
    logged = [
        (r.name, r.levelname) for r in caplog.records if r.name.startswith(("django", "rearq"))
    ]
    assert logged == [("rearq_tasks.health", "WARNING")] * 3
    assert "TaskQueue: Unavailable: failure rate 25.0 %" in caplog.records[-1].getMessage()


@pytest.mark.urls(__name__)
def test_healthy_view_is_200_and_logs_nothing(client, caplog) -> None:
    response = client.get("/ours/?format=json")
    assert response.status_code == 200 and set(response.json().values()) == {"OK"}
    assert not [r for r in caplog.records if r.name.startswith(("django.request", "rearq"))]
