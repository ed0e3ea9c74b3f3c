from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from harness.factories import TaskLogFactory, UserFactory, push_heartbeat, staff_viewer
from rearq_tasks.models import StatusChoices

pytestmark = pytest.mark.django_db
URL = "/cfg/tasks/metrics/"
TOKEN = "prometheus-scrape-token-0123"


@pytest.fixture
def staff_client(client):
    client.force_login(staff_viewer())
    return client


@pytest.fixture
def jobs():
    now = timezone.now()
    ago = now - dt.timedelta(minutes=30)
    for ms in (40, 300, 2000):
        TaskLogFactory(
            task_name="send_email",
            status=StatusChoices.SUCCESS,
            success=True,
            enqueue_time=ago,
            start_time=ago + dt.timedelta(milliseconds=200),
            finish_time=ago + dt.timedelta(milliseconds=200 + ms),
            duration_ms=ms,
        )
    TaskLogFactory(
        task_name="send_email",
        status=StatusChoices.FAILED,
        success=False,
        enqueue_time=ago,
        start_time=ago + dt.timedelta(seconds=3),
        duration_ms=7000,
    )
    TaskLogFactory.create_batch(3, task_name="export_csv", queue_name="low")
    old = now - dt.timedelta(hours=2)
    TaskLogFactory(
        task_name="export_csv",
        queue_name="low",
        status=StatusChoices.IN_PROGRESS,
        enqueue_time=old,
        start_time=old,
    )
    TaskLogFactory(task_name="send_email", enqueue_time=now - dt.timedelta(days=3))


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, name: str | None = None) -> dict:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if name is None or s.name == name
    }


def test_metrics_figures(staff_client, jobs, rearq_redis) -> None:
    push_heartbeat(rearq_redis, queue="default")
    push_heartbeat(rearq_redis, consumer=2, queue="low", age_seconds=600)
    response = staff_client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = families(response.content.decode())

    jobs_family = samples(found["rearq_tasks_jobs"])
    assert jobs_family[(("queue", "default"), ("status", "success"), ("task", "send_email"))] == 3
    assert jobs_family[(("queue", "default"), ("status", "failed"), ("task", "send_email"))] == 1
    assert jobs_family[(("queue", "low"), ("status", "queued"), ("task", "export_csv"))] == 3
    assert sum(jobs_family.values()) == 8  # the 3-day-old job is outside the 24 h window

    duration = found["rearq_tasks_job_duration_seconds"]
    buckets = samples(duration, "rearq_tasks_job_duration_seconds_bucket")
    assert buckets[(("le", "0.05"), ("task", "send_email"))] == 1
    assert buckets[(("le", "0.5"), ("task", "send_email"))] == 2
    assert buckets[(("le", "+Inf"), ("task", "send_email"))] == 4
    assert samples(duration, "rearq_tasks_job_duration_seconds_sum") == {
        (("task", "send_email"),): pytest.approx(9.34)
    }

    wait = samples(found["rearq_tasks_queue_wait_seconds"], "rearq_tasks_queue_wait_seconds_count")
    assert wait == {(("queue", "default"),): 4, (("queue", "low"),): 1}
    wait_sum = samples(
        found["rearq_tasks_queue_wait_seconds"], "rearq_tasks_queue_wait_seconds_sum"
    )
    assert wait_sum[(("queue", "default"),)] == pytest.approx(3.6)

    # the backlog is not windowed: the 3-day-old queued job still waits
    assert samples(found["rearq_tasks_backlog_jobs"]) == {
        (("queue", "default"),): 1,
        (("queue", "low"),): 3,
    }
    assert samples(found["rearq_tasks_stuck_jobs"]) == {(("queue", "low"),): 1}
    # a queue whose only worker died reads 0, so "== 0" alerts fire
    assert samples(found["rearq_tasks_workers"]) == {
        (("queue", "default"),): 1,
        (("queue", "low"),): 0,
    }
    assert samples(found["rearq_tasks_stale_worker_heartbeats"]) == {(): 1}
    assert samples(found["rearq_tasks_timer_up"]) == {(): 0}
    assert samples(found["rearq_tasks_redis_up"]) == {(): 1}
    assert "job_id" not in response.content.decode()


def test_configured_queue_without_workers_reads_zero(staff_client, rearq_redis, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "WORKER_QUEUES": ["critical"]}
    found = families(staff_client.get(URL).content.decode())
    assert samples(found["rearq_tasks_workers"]) == {(("queue", "critical"),): 0}


def test_openmetrics_when_the_scraper_asks(staff_client, rearq_redis) -> None:
    response = staff_client.get(URL, HTTP_ACCEPT="application/openmetrics-text;version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    names = {family.name for family in parse_openmetrics(response.content.decode())}
    assert {"rearq_tasks_jobs", "rearq_tasks_workers", "rearq_tasks_job_duration_seconds"} <= names


def test_redis_down_is_a_metric_not_an_error(staff_client, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": "redis://127.0.0.1:1/0"}
    found = families(staff_client.get(URL).content.decode())
    assert samples(found["rearq_tasks_redis_up"]) == {(): 0}
    assert "rearq_tasks_workers" not in found


def test_anonymous_and_non_staff_are_refused(client, rearq_redis) -> None:
    assert client.get(URL).status_code in (401, 403)
    client.force_login(UserFactory(is_staff=False))
    assert client.get(URL).status_code == 403


def test_bearer_token(client, settings, rearq_redis) -> None:
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code in (401, 403)
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "METRICS_TOKEN": TOKEN}
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    wrong = client.get(URL, HTTP_AUTHORIZATION="Bearer wrong-token-xxxxxxxx")
    assert wrong.status_code in (401, 403)


def test_permission_classes_come_from_settings(client, settings, rearq_redis) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    assert client.get(URL).status_code == 200


def test_the_global_registry_is_left_alone(staff_client, jobs, rearq_redis) -> None:
    before = set(REGISTRY._names_to_collectors)
    staff_client.get(URL)
    assert set(REGISTRY._names_to_collectors) == before
    assert not any(name.startswith("rearq_tasks") for name in before)
