"""Bulk operations from the API and their runner, in process: delete needs no ReArq.

Retry and cancel through real workers, with a runner SIGKILLed mid-way, are in
tests/integration/test_bulk_e2e.py.
"""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog
from rearq_tasks.operation_models import AuditEntry, OperationState, TaskOperation
from rearq_tasks.queue import operations

pytestmark = pytest.mark.django_db

BULK = "/cfg/tasks/logs/bulk/"


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def jobs(task: str, status: str, count: int) -> list[TaskLog]:
    return [
        TaskLogFactory(task_name=task, status=status, job_id=f"{task}-{status}-{i}")
        for i in range(count)
    ]


def run_all() -> None:
    assert operations.run_pending("test-runner", once=True) >= 0


def test_bulk_delete_removes_only_finished_matches_and_audits_once() -> None:
    doomed = jobs("send_email", StatusChoices.FAILED, 7)
    running = jobs("send_email", StatusChoices.IN_PROGRESS, 2)
    other = jobs("resize", StatusChoices.FAILED, 3)
    TaskEvent.objects.create(job=doomed[0], event="failed", timestamp=doomed[0].enqueue_time)
    user = staff_viewer("delete_tasklog")
    with override_settings(REARQ_TASKS={"OPERATION_CHUNK_SIZE": 3, "OPERATION_SCAN_IDS": 4}):
        answer = api_as(user).post(
            BULK, {"action": "delete", "filters": {"task_name_exact": "send_email"}}, format="json"
        )
        assert answer.status_code == 202, answer.content
        assert answer.json()["matched"] == 9
        run_all()
    operation = TaskOperation.objects.get(pk=answer.json()["operation_id"])
    assert operation.state == OperationState.DONE
    assert (operation.matched, operation.done, operation.skipped) == (9, 7, 2)
    assert operation.skip_reasons == {"still waiting or running": 2}
    assert set(TaskLog.objects.values_list("pk", flat=True)) == {r.pk for r in running + other}
    assert not TaskEvent.objects.exists()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.user, entry.operation) == (
        "delete", "api", user, operation,
    )  # fmt: skip
    assert (entry.matched, entry.done, entry.skipped, entry.failed) == (9, 7, 2, 0)
    assert entry.filters == {"task_name_exact": "send_email"}
    state = api_as(user).get(f"/cfg/tasks/operations/{operation.pk}/").json()
    assert state["state"] == "done" and state["progress"] == 1.0 and state["done"] == 7


def test_jobs_created_after_the_operation_are_not_swept_in() -> None:
    jobs("send_email", StatusChoices.FAILED, 3)
    user = staff_viewer("delete_tasklog")
    answer = api_as(user).post(
        BULK, {"action": "delete", "filters": {"status": "failed"}}, format="json"
    )
    late = jobs("late", StatusChoices.FAILED, 2)
    run_all()
    assert list(TaskLog.objects.values_list("pk", flat=True).order_by("pk")) == [r.pk for r in late]
    assert TaskOperation.objects.get(pk=answer.json()["operation_id"]).done == 3


def test_dry_run_counts_and_changes_nothing() -> None:
    jobs("send_email", StatusChoices.FAILED, 4)
    jobs("send_email", StatusChoices.SUCCESS, 2)
    user = staff_viewer("delete_tasklog", "retry_tasklog")
    for action in ("delete", "retry"):
        answer = api_as(user).post(
            BULK,
            {"action": action, "filters": {"task_name": "send"}, "dry_run": True},
            format="json",
        )
        assert answer.status_code == 200, answer.content
        body = answer.json()
        assert (body["dry_run"], body["matched"]) == (True, 6)
        assert body["allowed"] == (6 if action == "delete" else 4)
        assert len(body["sample"]) == 6
    assert TaskLog.objects.count() == 6
    assert not TaskOperation.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("action", "granted"),
    [("delete", "retry_tasklog"), ("retry", "cancel_tasklog"), ("cancel", "delete_tasklog")],
)
def test_a_user_without_the_action_permission_is_refused(action: str, granted: str) -> None:
    jobs("send_email", StatusChoices.FAILED, 2)
    answer = api_as(staff_viewer(granted)).post(
        BULK, {"action": action, "filters": {}}, format="json"
    )
    assert answer.status_code == 403
    assert not TaskOperation.objects.exists()
    assert not AuditEntry.objects.exists()
    assert TaskLog.objects.count() == 2


def test_session_calls_need_the_csrf_token(client) -> None:
    user = staff_viewer("delete_tasklog")
    checked = APIClient(enforce_csrf_checks=True)
    checked.force_login(user)
    answer = checked.post(BULK, {"action": "delete", "filters": {}}, format="json")
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert not TaskOperation.objects.exists()


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"status": "exploded"}, "status"),
        ({"period_hours": 0}, "period_hours"),
        ({"enqueued_after": "yesterday"}, "enqueued_after"),
        ({"statsu": "failed"}, "statsu"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(filters: dict, named: str) -> None:
    answer = api_as(staff_viewer("delete_tasklog")).post(
        BULK, {"action": "delete", "filters": filters}, format="json"
    )
    assert answer.status_code == 400
    assert named in answer.json()["filters"]
    assert not TaskOperation.objects.exists()


def test_a_bad_action_is_a_400() -> None:
    answer = api_as(UserFactory(is_staff=True, is_superuser=True)).post(
        BULK, {"action": "explode", "filters": {}}, format="json"
    )
    assert answer.status_code == 400 and "action" in answer.json()


def test_period_hours_is_frozen_to_an_absolute_time() -> None:
    user = staff_viewer("delete_tasklog")
    answer = api_as(user).post(
        BULK, {"action": "delete", "filters": {"period_hours": 2, "status": "failed"}},
        format="json",
    )  # fmt: skip
    stored = TaskOperation.objects.get(pk=answer.json()["operation_id"]).filters
    assert set(stored) == {"enqueued_after", "status"}


def test_a_stale_lease_is_taken_over_and_a_live_one_is_not() -> None:
    jobs("send_email", StatusChoices.FAILED, 5)
    user = staff_viewer("delete_tasklog")
    api_as(user).post(BULK, {"action": "delete", "filters": {}}, format="json")
    first = operations.claim("runner-a", lease_seconds=60)
    assert first is not None and first.lease_owner == "runner-a"
    assert operations.claim("runner-b") is None
    TaskOperation.objects.update(lease_expires=first.lease_expires.replace(year=2000))
    second = operations.claim("runner-b")
    assert second is not None and second.pk == first.pk
    # The old runner lost its lease: its chunk does not commit, nothing is counted twice.
    assert operations.run_chunk(first, "runner-a") is False
    assert TaskOperation.objects.get().done == 0
    operations.run_operation(second, "runner-b")
    assert TaskOperation.objects.get().done == 5


def test_a_canceled_operation_stops_where_it_is() -> None:
    jobs("send_email", StatusChoices.FAILED, 6)
    user = staff_viewer("delete_tasklog")
    with override_settings(REARQ_TASKS={"OPERATION_CHUNK_SIZE": 2}):
        body = api_as(user).post(BULK, {"action": "delete", "filters": {}}, format="json").json()
        operation = operations.claim("runner-a")
        assert operations.run_chunk(operation, "runner-a") is True
        answer = api_as(user).post(f"/cfg/tasks/operations/{body['operation_id']}/cancel/")
        assert answer.status_code == 200 and answer.json()["state"] == "canceled"
        assert operations.run_chunk(operation, "runner-a") is False
    assert TaskLog.objects.count() == 4
    assert operations.claim("runner-b") is None


SECRET = "sk_live_9f8e7d6c5b4a"


def test_an_operations_filters_never_show_a_credential(client) -> None:
    """The runner needs the real filter while the operation runs; the API, the admin and the
    stored row once it ended show it redacted, as the audit entry does."""
    target = TaskLogFactory(
        task_name="charge", status=StatusChoices.FAILED, kwargs={"api_key": SECRET, "n": 1}
    )
    TaskLogFactory(task_name="charge", status=StatusChoices.FAILED, kwargs={"api_key": "other"})
    user = staff_viewer("delete_tasklog", "view_taskoperation")
    filters = {"kwargs": f'{{"api_key": "{SECRET}"}}'}
    body = api_as(user).post(BULK, {"action": "delete", "filters": filters}, format="json")
    assert body.status_code == 202, body.content
    pk = body.json()["operation_id"]
    assert body.json()["matched"] == 1
    running = api_as(user).get(f"/cfg/tasks/operations/{pk}/")
    assert running.status_code == 200 and "api_key" in running.json()["filters"]["kwargs"]
    assert SECRET not in running.content.decode()
    assert SECRET in TaskOperation.objects.get(pk=pk).filters["kwargs"]  # needed to run
    run_all()
    operation = TaskOperation.objects.get(pk=pk)
    assert (operation.state, operation.done) == (OperationState.DONE, 1)
    assert not TaskLog.objects.filter(pk=target.pk).exists()
    assert SECRET not in str(operation.filters) and "api_key" in operation.filters["kwargs"]
    assert SECRET not in str(AuditEntry.objects.get(operation=operation).filters)
    user.is_superuser = True
    user.save()
    client.force_login(user)
    page = client.get(f"/admin/tasks/taskoperation/{pk}/change/")
    assert page.status_code == 200 and "api_key" in page.content.decode()
    assert SECRET not in page.content.decode()


def test_a_canceled_operation_keeps_its_filters_redacted() -> None:
    TaskLogFactory(task_name="charge", status=StatusChoices.FAILED, kwargs={"token": SECRET})
    user = staff_viewer("delete_tasklog")
    filters = {"kwargs": f'{{"token": "{SECRET}"}}'}
    pk = (
        api_as(user)
        .post(BULK, {"action": "delete", "filters": filters}, format="json")
        .json()["operation_id"]
    )
    assert operations.cancel(TaskOperation.objects.get(pk=pk))
    stored = TaskOperation.objects.get(pk=pk)
    assert stored.state == OperationState.CANCELED and SECRET not in str(stored.filters)


def test_an_operation_pauses_while_rearq_is_unreachable_then_resumes(settings, rearq_redis) -> None:
    """Redis down: the chunk commits nothing, the operation says why (no password) and waits
    OPERATION_PAUSE_SECONDS before any runner takes it again; then it finishes."""
    from django.utils import timezone

    from rearq_tasks.queue.client import reset_client

    waiting = jobs("send_email", StatusChoices.QUEUED, 3)
    user = staff_viewer("cancel_tasklog")
    reachable = settings.REARQ_TASKS
    settings.REARQ_TASKS = {**reachable, "REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"}
    reset_client()
    try:
        body = api_as(user).post(BULK, {"action": "cancel", "filters": {}}, format="json")
        assert body.status_code == 202, body.content
        run_all()
        paused = TaskOperation.objects.get(pk=body.json()["operation_id"])
        assert (paused.state, paused.done, paused.cursor) == (OperationState.PAUSED, 0, 0)
        assert paused.message.startswith("ReArq is unavailable: cannot reach Redis at redis://")
        assert "s3cret" not in paused.message
        assert paused.lease_expires > timezone.now()  # nobody takes it before the pause ends
        assert operations.claim("impatient-runner") is None
        assert TaskLog.objects.filter(status="queued").count() == 3
    finally:
        settings.REARQ_TASKS = reachable
        reset_client()
    TaskOperation.objects.filter(pk=paused.pk).update(lease_expires=timezone.now())
    run_all()
    done = TaskOperation.objects.get(pk=paused.pk)
    assert (done.state, done.done, done.message) == (OperationState.DONE, 3, "")
    assert set(TaskLog.objects.values_list("status", flat=True)) == {"canceled"}
    assert {row.job_id for row in waiting} == set(TaskLog.objects.values_list("job_id", flat=True))


def test_a_stopping_runner_gives_its_lease_back_after_the_current_chunk() -> None:
    """SIGTERM (``stop``) ends the run between two chunks, not after the whole operation, and
    frees the lease: another runner takes over at once, from the cursor."""
    jobs("send_email", StatusChoices.FAILED, 6)
    user = staff_viewer("delete_tasklog")
    with override_settings(REARQ_TASKS={"OPERATION_CHUNK_SIZE": 2}):
        api_as(user).post(BULK, {"action": "delete", "filters": {}}, format="json")
        first = operations.claim("runner-a")
        operations.run_operation(first, "runner-a", stop=lambda: True)
        stopped = TaskOperation.objects.get()
        assert (stopped.state, stopped.done, stopped.lease_owner) == ("running", 2, "")
        second = operations.claim("runner-b")
        assert second is not None and second.lease_owner == "runner-b"
        operations.run_operation(second, "runner-b")
    assert (TaskOperation.objects.get().state, TaskOperation.objects.get().done) == ("done", 6)
    assert not TaskLog.objects.exists()
