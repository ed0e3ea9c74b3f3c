"""Through a real worker: secrets in a result, kwargs, positional args, an error message and a
traceback reach none of TaskLog, TaskEvent, the API, the admin, metrics, alert messages or
the worker's log; harmless values (and harmless keys that merely contain a secret word) stay."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.test import Client, override_settings

from harness.waiting import wait_for
from rearq_tasks import enqueue_sync
from rearq_tasks.models import TaskEvent, TaskLog

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CARD = "4111 1111 1111 1111"  # Luhn-valid test card


def _row_text(model: type, **filters: object) -> str:
    return json.dumps(list(model.objects.filter(**filters).values()), default=str)


def _pages(job_id: str, pk: int) -> str:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@x.y", "pw")
    client = Client()
    client.force_login(user)
    urls = [
        "/cfg/tasks/logs/",
        f"/cfg/tasks/logs/{pk}/",
        f"/cfg/tasks/logs/{pk}/events/",
        f"/cfg/tasks/logs/{pk}/related/",
        "/cfg/tasks/logs/tasks/",
        "/cfg/tasks/logs/retries/",
        "/cfg/tasks/metrics/",
        "/admin/tasks/tasklog/",
        f"/admin/tasks/tasklog/{pk}/change/",
        "/admin/tasks/tasklog/dashboard/",
    ]
    texts = []
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        texts.append(response.content.decode(errors="replace"))
    return "\n".join(texts)


def test_secrets_reach_no_store_page_message_or_log(shared_worker) -> None:
    secret = f"hunter2-{uuid.uuid4().hex}"
    ok_id = enqueue_sync(
        "leak", f"postgres://app:{secret}@db.internal/prod", CARD,
        password=secret, bypass_cache=True,
    )  # fmt: skip
    fail_id = enqueue_sync("leak_fail", secret, passenger_count=7)
    ok = wait_for(lambda: TaskLog.objects.filter(job_id=ok_id, status="success").first(), 30)
    failed = wait_for(lambda: TaskLog.objects.filter(job_id=fail_id, status="failed").first(), 60)

    every_failure = {"leak_fail": {"FAILURE_RATE_THRESHOLD": 1, "FAILURE_RATE_MIN_SAMPLE": 1}}
    with override_settings(
        REARQ_TASKS={**settings.REARQ_TASKS, "ALERT_TASK_OVERRIDES": every_failure}
    ):
        from rearq_tasks.ops.alerts import evaluate

        alerts = evaluate(["failure_rate"])
        pages = _pages(ok_id, ok.pk) + _pages(fail_id, failed.pk)
    alert_text = json.dumps([(a.message, a.details) for a in alerts])
    assert any(a.subject == "leak_fail" for a in alerts), alert_text

    stored = _row_text(TaskLog, job_id__in=[ok_id, fail_id]) + _row_text(
        TaskEvent, job_id__in=[ok_id, fail_id]
    )
    worker_log = shared_worker.output()
    for where, text in [("rows", stored), ("pages", pages), ("alerts", alert_text),
                        ("worker log", worker_log)]:  # fmt: skip
        assert secret not in text, f"the secret leaked into the {where}"
        assert "4111 1111 1111 1111" not in text and "4111111111111111" not in text, where

    # Harmless values and harmless keys stay readable.
    assert ok.kwargs["bypass_cache"] is True
    assert json.loads(ok.result)["fine"] == 1 and json.loads(ok.result)["author"] == "ada"
    assert json.loads(ok.result)["bypass"] is True
    assert failed.kwargs["passenger_count"] == 7
    assert "7 passengers" in failed.error_message and "login failed" in failed.error_message
    assert "db.internal/prod" in ok.args[0]  # the URL stays, its password does not
    traceback = TaskEvent.objects.filter(job_id=fail_id, event="failed").values_list(
        "traceback", flat=True
    )
    assert traceback and traceback[0] and "RuntimeError" in traceback[0]
