"""Bulk operations from the admin, the audit log's admin and its retention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks import audit
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.operation_models import AuditEntry, OperationState, TaskOperation
from rearq_tasks.queue import operations

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:tasks_tasklog_changelist"


def bulk_url(action: str) -> str:
    return reverse("admin:tasks_tasklog_bulk", args=[action])


def seed() -> None:
    for i in range(5):
        TaskLogFactory(task_name="send_email", status=StatusChoices.FAILED, job_id=f"se-{i}")
    for i in range(3):
        TaskLogFactory(task_name="send_email", status=StatusChoices.SUCCESS, job_id=f"ok-{i}")
    for i in range(4):
        TaskLogFactory(task_name="resize", status=StatusChoices.FAILED, job_id=f"rs-{i}")


def test_changelist_offers_bulk_links_with_its_filters(client) -> None:
    seed()
    client.force_login(staff_viewer("delete_tasklog"))
    page = client.get(reverse(CHANGELIST), {"task_name": "send_email"}).content.decode()
    assert 'id="bulk-delete"' in page
    assert f"{bulk_url('delete')}?task_name=send_email" in page
    assert 'id="bulk-retry"' not in page  # not granted


def test_delete_all_matching_confirms_the_exact_count_then_runs(client) -> None:
    seed()
    user = staff_viewer("delete_tasklog")
    client.force_login(user)
    query = {"task_name": "send_email", "q": "", "o": "1", "p": "2"}
    confirm = client.get(bulk_url("delete"), query)
    assert confirm.status_code == 200
    assert (confirm.context["matched"], confirm.context["allowed"]) == (8, 8)
    assert len(confirm.context["sample"]) == 8
    assert TaskLog.objects.count() == 12  # a GET changes nothing
    started = client.post(f"{bulk_url('delete')}?task_name=send_email")
    operation = TaskOperation.objects.get()
    assert started.url == reverse("admin:tasks_tasklog_operation", args=[operation.pk])
    assert (operation.scope, operation.filters, operation.matched) == (
        "admin", {"task_name": "send_email"}, 8,
    )  # fmt: skip
    progress = client.get(started.url)
    assert b'http-equiv="refresh"' in progress.content
    operations.run_pending("admin-test", once=True)
    assert set(TaskLog.objects.values_list("task_name", flat=True)) == {"resize"}
    progress = client.get(started.url)
    assert progress.context["operation"].state == OperationState.DONE
    assert b'http-equiv="refresh"' not in progress.content
    entry = AuditEntry.objects.get()
    assert (entry.user, entry.source, entry.action) == (user, "admin", "delete")
    assert (entry.matched, entry.done, entry.skipped) == (8, 8, 0)
    assert entry.ip == "127.0.0.1"


def test_admin_search_and_quick_filter_are_the_set(client) -> None:
    seed()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    confirm = client.get(bulk_url("delete"), {"quick": "failed", "q": "resize"})
    assert confirm.context["matched"] == 4


def test_bulk_pages_refuse_users_without_the_permission(client) -> None:
    seed()
    client.force_login(staff_viewer("retry_tasklog"))
    assert client.get(bulk_url("delete")).status_code == 403
    assert client.post(bulk_url("delete")).status_code == 403
    assert client.get(bulk_url("explode")).status_code == 404
    assert TaskLog.objects.count() == 12
    assert not AuditEntry.objects.exists() and not TaskOperation.objects.exists()


def test_bulk_post_needs_csrf() -> None:
    from django.test import Client

    seed()
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff_viewer("delete_tasklog"))
    assert checked.post(bulk_url("delete")).status_code == 403
    assert not TaskOperation.objects.exists()


def test_single_delete_from_the_admin_is_audited(client) -> None:
    log = TaskLogFactory(status=StatusChoices.FAILED, job_id="gone-1")
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    url = reverse("admin:tasks_tasklog_delete", args=[log.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.job_ids, entry.done, entry.user) == ("delete", ["gone-1"], 1, user)


def test_audit_admin_is_read_only_and_filterable(client) -> None:
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    audit.record("export", source="api", user=user, filters={"status": "failed"}, matched=3)
    audit.record("retry", source="admin", user=user, job_ids=["a"], matched=1, done=1)
    client.force_login(user)
    changelist = reverse("admin:tasks_auditentry_changelist")
    page = client.get(changelist, {"action__exact": "export"})
    assert page.status_code == 200 and page.context["cl"].result_count == 1
    assert client.get(changelist, {"username": "root"}).context["cl"].result_count == 2
    entry = AuditEntry.objects.first()
    assert client.post(reverse("admin:tasks_auditentry_delete", args=[entry.pk])).status_code == 403
    assert client.get(reverse("admin:tasks_auditentry_add")).status_code == 403


def test_audit_retention_keeps_recent_entries(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "AUDIT_RETENTION_DAYS": 30}
    old = audit.record("retry", source="api", matched=1)
    recent = audit.record("cancel", source="api", matched=1)
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=31))
    call_command("cleanup_task_logs", "--dry-run", stdout=open("/dev/null", "w"))
    assert AuditEntry.objects.count() == 2
    call_command("cleanup_task_logs", stdout=open("/dev/null", "w"))
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [recent.pk]


def test_record_refuses_unknown_words() -> None:
    with pytest.raises(ValueError, match="action"):
        audit.record("explode", source="api")
    with pytest.raises(ValueError, match="source"):
        audit.record("retry", source="carrier pigeon")
