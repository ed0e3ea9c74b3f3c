"""Retry and Cancel from the admin, through ReArq on real Redis: POST + CSRF only, one
message per row, and never a server error when Redis is down."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from harness.network import free_port
from rearq_tasks.admin.dashboard import redis_client
from rearq_tasks.models import StatusChoices, TaskLog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

CHANGELIST = "admin:tasks_tasklog_changelist"
QUEUE = "admin-tests"
STREAM = f"rearq:queue:{QUEUE}"


@pytest.fixture(autouse=True)
def redis_stream():
    """ReArq's stream for the test queue, in this checkout's Redis database only."""
    client = redis_client()
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"these tests need the Redis at {client}: {exc}")
    client.delete(STREAM)
    yield client
    client.delete(STREAM)
    client.close()


@pytest.fixture
def root(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def failed_log(**kwargs) -> TaskLog:
    now = timezone.now()
    defaults = {
        "task_name": "send_email",
        "queue_name": QUEUE,
        "status": StatusChoices.FAILED,
        "success": False,
        "args": [1, "two"],
        "kwargs": {"three": 3},
        "error_message": "boom",
        "job_retry": 2,
        "job_retries": 2,
        "start_time": now - dt.timedelta(seconds=5),
        "finish_time": now - dt.timedelta(seconds=4),
        "duration_ms": 1000,
    }
    defaults.update(kwargs)
    return TaskLogFactory(**defaults)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def action_url(name: str, log: TaskLog) -> str:
    return reverse(f"admin:tasks_tasklog_{name}_job", args=[log.pk])


def test_get_only_asks_for_confirmation(root, redis_stream) -> None:
    log = failed_log()
    response = root.get(action_url("retry", log))
    assert response.status_code == 200
    assert b'method="post"' in response.content and b"csrfmiddlewaretoken" in response.content
    assert TaskLog.objects.count() == 1 and redis_stream.xlen(STREAM) == 0


def test_post_without_csrf_token_is_refused(redis_stream) -> None:
    log = failed_log()
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.post(action_url("retry", log)).status_code == 403
    assert TaskLog.objects.count() == 1 and redis_stream.xlen(STREAM) == 0


def test_retry_enqueues_the_same_task_and_links_the_new_row(root, redis_stream) -> None:
    log = failed_log()
    response = root.post(action_url("retry", log))
    assert response.status_code == 302 and response["Location"].endswith(f"/{log.pk}/change/")
    (message,) = texts(response)
    assert f"Job {log.job_id} retried as" in message
    new = TaskLog.objects.exclude(pk=log.pk).get()
    assert new.job_id in message
    assert (new.task_name, new.args, new.kwargs, new.queue_name) == (
        log.task_name, log.args, log.kwargs, log.queue_name
    )  # fmt: skip
    assert new.status == StatusChoices.QUEUED
    assert redis_stream.xlen(STREAM) == 1
    # The two runs point at each other on their detail pages.
    page = root.get(reverse("admin:tasks_tasklog_change", args=[log.pk])).content.decode()
    assert new.job_id in page


def test_retry_of_a_successful_job_says_why_not(root, redis_stream) -> None:
    log = failed_log(status=StatusChoices.SUCCESS, success=True, error_message=None)
    response = root.post(action_url("retry", log))
    assert response.status_code == 302
    (message,) = texts(response)
    assert message.startswith(f"Could not retry job {log.job_id}:")
    assert TaskLog.objects.count() == 1 and redis_stream.xlen(STREAM) == 0


def test_cancel_a_queued_job_and_refuse_a_finished_one(root) -> None:
    queued = TaskLogFactory(queue_name=QUEUE, status=StatusChoices.QUEUED)
    done = failed_log()
    assert texts(root.post(action_url("cancel", queued))) == [
        f"Cancel requested for job {queued.job_id}."
    ]
    queued.refresh_from_db()
    assert queued.status == StatusChoices.CANCELED
    message = texts(root.post(action_url("cancel", done)))[-1]  # after the first one, unread
    assert message.startswith(f"Could not cancel job {done.job_id}:")


def test_bulk_retry_reports_each_row(root, redis_stream) -> None:
    good = failed_log()
    bad = failed_log(status=StatusChoices.SUCCESS, success=True)
    response = root.post(
        reverse(CHANGELIST),
        {"action": "retry_selected", "_selected_action": [good.pk, bad.pk]},
    )
    assert response.status_code == 302
    messages = texts(response)
    assert any(m.startswith(f"Job {good.job_id} retried as") for m in messages)
    assert any(m.startswith(f"Could not retry job {bad.job_id}:") for m in messages)
    assert "1 of 2 jobs retried." in messages
    assert redis_stream.xlen(STREAM) == 1


def test_bulk_refuses_more_than_the_limit(root, settings, redis_stream) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "ADMIN_ACTION_MAX_ROWS": 2}
    logs = [failed_log() for _ in range(3)]
    response = root.post(
        reverse(CHANGELIST),
        {"action": "retry_selected", "_selected_action": [log.pk for log in logs]},
    )
    assert texts(response) == ["Select at most 2 jobs at a time; nothing was done."]
    assert TaskLog.objects.count() == 3 and redis_stream.xlen(STREAM) == 0


def test_staff_with_the_retry_permission_may_retry(client, redis_stream) -> None:
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_tasklog", "retry_tasklog"])
    )
    client.force_login(user)
    log = failed_log()
    response = client.post(action_url("retry", log))
    assert response.status_code == 302
    assert texts(response)[0].startswith(f"Job {log.job_id} retried as")
    # Retrying does not imply cancelling.
    assert client.post(action_url("cancel", log)).status_code == 403


def test_the_change_permission_no_longer_grants_actions(client, redis_stream) -> None:
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_tasklog", "change_tasklog"])
    )
    client.force_login(user)
    log = failed_log()
    assert client.post(action_url("retry", log)).status_code == 403
    assert client.post(action_url("cancel", log)).status_code == 403
    assert TaskLog.objects.count() == 1 and redis_stream.xlen(STREAM) == 0


def test_redis_down_is_a_message_per_row_not_a_500(root, settings, monkeypatch) -> None:
    from rearq_tasks.queue import client as rearq_client

    logs = [failed_log(), TaskLogFactory(queue_name=QUEUE, status=StatusChoices.QUEUED)]
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    # The client is built once per process from the settings: build it again for this
    # test (monkeypatch puts the working one back afterwards).
    monkeypatch.setattr(rearq_client, "_client", None)

    response = root.post(action_url("retry", logs[0]))
    assert response.status_code == 302
    (message,) = texts(response)
    assert "ReArq is unavailable" in message, message

    response = root.post(
        reverse(CHANGELIST),
        {"action": "cancel_selected", "_selected_action": [log.pk for log in logs]},
    )
    assert response.status_code == 302
    messages = texts(response)
    assert sum("Could not cancel" in m for m in messages) == 2, messages
    assert any("ReArq is unavailable" in m for m in messages), messages
    assert "0 of 2 jobs canceled." in messages
    assert TaskLog.objects.count() == 2
    assert set(TaskLog.objects.values_list("status", flat=True)) == {"failed", "queued"}


def test_messages_escape_what_the_job_carries(root) -> None:
    log = failed_log(job_id="<img src=x onerror=alert(1)>", status=StatusChoices.SUCCESS)
    response = root.post(action_url("retry", log), follow=True)
    page = response.content.decode()
    assert "Could not retry job &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x onerror" not in page
