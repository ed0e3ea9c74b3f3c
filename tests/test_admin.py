"""The TaskLog admin: columns and badges, bounded filters, search, read-only detail, dashboard."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks import queries
from rearq_tasks.admin import display as show
from rearq_tasks.admin.dashboard import dashboard_context, read_workers
from rearq_tasks.admin.filters import cached_choices
from rearq_tasks.conf import conf
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.queries.distinct import distinct_values
from rearq_tasks.queue.connection import redis_client
from rearq_tasks.queue.keys import WORKER_KEY

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:tasks_tasklog_changelist"


def change_url(log: TaskLog) -> str:
    return reverse("admin:tasks_tasklog_change", args=[log.pk])


@pytest.fixture
def superuser():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def root(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def finished(status: str = StatusChoices.SUCCESS, **kwargs) -> TaskLog:
    start = timezone.now() - dt.timedelta(minutes=3)
    defaults = {
        "status": status,
        "success": status == StatusChoices.SUCCESS if status != StatusChoices.CANCELED else None,
        "start_time": start,
        "finish_time": start + dt.timedelta(milliseconds=kwargs.get("duration_ms") or 0),
        "duration_ms": 420,
        "worker_id": "worker-a-101",
    }
    defaults.update(kwargs)
    return TaskLogFactory(**defaults)


# --- badges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, kind, icon",
    [
        ("queued", None, "timer"),
        ("deferred", None, "schedule"),
        ("in_progress", "info", "speed"),
        ("success", "success", "check_circle"),
        ("failed", "danger", "error"),
        ("expired", "danger", "hourglass_disabled"),
        ("canceled", "warning", "warning"),
    ],
)
def test_status_badge_colour_and_icon(status, kind, icon) -> None:
    assert show.STATUS_LABEL_TYPES.get(status) == kind
    key, html = show.status_label(status)
    assert key == status and f">{icon}</span>" in html


@pytest.mark.parametrize(
    "ms, category, colour",
    [(0, "fast", "green"), (999, "fast", "green"), (1000, "normal", "blue"),
     (4999, "normal", "blue"), (5000, "slow", "orange"), (29_999, "slow", "orange"),
     (30_000, "very slow", "red"), (3_600_000, "very slow", "red")],
)  # fmt: skip
def test_duration_bands(ms, category, colour) -> None:
    html = show.duration_badge(TaskLog(status="success", duration_ms=ms))
    assert f"bg-{colour}-100" in html and f'title="{category}"' in html


@pytest.mark.parametrize("status", ["queued", "in_progress"])
def test_no_duration_while_waiting_or_running(status) -> None:
    assert show.duration_badge(TaskLog(status=status, duration_ms=1234)) is None
    assert show.duration_badge(TaskLog(status="success", duration_ms=None)) is None


@pytest.mark.parametrize(
    "queue, colour",
    [("critical", "red"), ("high", "orange"), ("default", "blue"), ("low", "base"),
     ("background", "base")],
)  # fmt: skip
def test_queue_badges(queue, colour) -> None:
    assert f"bg-{colour}" in show.queue_badge(queue)


def test_unknown_queue_is_neutral_text() -> None:
    html = show.queue_badge("emails-eu")
    assert "bg-" not in html and "emails-eu" in html


def test_retries_plain_yellow_red() -> None:
    plain = show.retries_badge(TaskLog(job_retries=0, job_retry=3))
    assert "bg-" not in plain and "0/3" in plain
    assert "bg-orange-100" in show.retries_badge(TaskLog(job_retries=1, job_retry=3))
    assert "bg-red-100" in show.retries_badge(TaskLog(job_retries=3, job_retry=3))


def test_durations_read_naturally() -> None:
    assert show.format_duration(420) == "420 ms"
    assert show.format_duration(2500) == "2.50 s"
    assert show.format_duration(72_000) == "1 min 12 s"
    assert show.format_duration(None) == "–"


# --- changelist -------------------------------------------------------------------------------


def test_changelist_columns_and_badges(root) -> None:
    user = UserFactory(username="alice")
    finished(task_name="send_sms", queue_name="critical", user=user, duration_ms=40_000,
             job_retry=3, job_retries=3)  # fmt: skip
    response = root.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    for header in ("Task name", "Queue", "Status", "User", "Duration", "Retries", "Created at",
                   "Finished at"):  # fmt: skip
        assert header in html, header
    assert "send_sms" in html and ">alice</a>" in html
    assert reverse("admin:auth_user_change", args=[user.pk]) in html
    assert "check_circle" in html and "40.00 s" in html and "3/3" in html


def test_changelist_newest_first_50_per_page_no_count(root) -> None:
    now = timezone.now()
    for i in range(55):
        TaskLogFactory(job_id=f"job-{i:03d}", enqueue_time=now - dt.timedelta(minutes=i))
    with CaptureQueriesContext(connection) as queries:
        response = root.get(reverse(CHANGELIST))
    rows = response.context["cl"].result_list
    assert len(rows) == 50
    assert [r.job_id for r in rows[:2]] == ["job-000", "job-001"]
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "COUNT(" not in sql, "the changelist must not count the table"
    assert "DISTINCT" not in sql


def test_changelist_has_no_per_row_queries(root) -> None:
    users = [UserFactory() for _ in range(3)]

    def queries_for(n: int) -> int:
        TaskLog.objects.all().delete()
        for i in range(n):
            finished(user=users[i % 3])
        root.get(reverse(CHANGELIST))  # warm the session and the cached filter choices
        with CaptureQueriesContext(connection) as captured:
            assert root.get(reverse(CHANGELIST)).status_code == 200
        return len(captured.captured_queries)

    assert queries_for(3) == queries_for(30)


def test_status_filter_and_quick_filters_use_the_vocabulary(root) -> None:
    ok = finished()
    failed = finished(StatusChoices.FAILED, success=False, error_message="boom")
    expired = TaskLogFactory(status=StatusChoices.EXPIRED, success=False)
    stuck = TaskLogFactory(
        status=StatusChoices.IN_PROGRESS,
        start_time=timezone.now() - dt.timedelta(seconds=conf.STUCK_AFTER_SECONDS + 60),
    )
    running = TaskLogFactory(status=StatusChoices.IN_PROGRESS, start_time=timezone.now())

    def shown(query: str) -> set[int]:
        response = root.get(reverse(CHANGELIST) + query)
        assert response.status_code == 200
        return {r.pk for r in response.context["cl"].result_list}

    assert shown("?status__exact=failed") == {failed.pk}
    assert shown("?quick=failed") == set(TaskLog.objects.failed().values_list("pk", flat=True))
    assert shown("?quick=failed") == {failed.pk, expired.pk}
    assert shown("?quick=stuck") == {stuck.pk}
    assert running.pk in shown("?quick=in_flight") and ok.pk not in shown("?quick=in_flight")


def test_user_filter_autocompletes(root) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    mine = TaskLogFactory(user=alice)
    TaskLogFactory(user=bob)
    page = root.get(reverse(CHANGELIST)).content.decode()
    assert "admin-autocomplete" in page and reverse("admin:autocomplete") in page
    assert "bob" not in page.split('name="user__id__exact"', 1)[1].split("</select>", 1)[0]
    response = root.get(reverse(CHANGELIST), {"user__id__exact": alice.pk})
    assert [r.pk for r in response.context["cl"].result_list] == [mine.pk]
    found = root.get(
        reverse("admin:autocomplete"),
        {"term": "ali", "app_label": "tasks", "model_name": "tasklog", "field_name": "user"},
    ).json()
    assert [item["text"] for item in found["results"]] == ["alice"]


def test_task_and_queue_choices_come_from_an_index_walk() -> None:
    assert distinct_values("task_name", 100) == []  # an empty table ends the walk at once
    for task, queue in [("b_task", "high"), ("a_task", "low"), ("b_task", "high"), ("c", "x")]:
        TaskLogFactory(task_name=task, queue_name=queue)
    assert distinct_values("task_name", 100) == ["a_task", "b_task", "c"]
    assert distinct_values("queue_name", 2) == ["high", "low"]


def test_filter_choices_are_cached_and_bounded(root, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "ADMIN_CHOICES_LIMIT": 2}
    for name in ("t1", "t2", "t3"):
        TaskLogFactory(task_name=name)
    assert cached_choices("task_name") == ["t1", "t2"]
    with CaptureQueriesContext(connection) as queries:
        assert cached_choices("task_name") == ["t1", "t2"]
    assert not queries.captured_queries
    # A selected value outside the bounded list still filters and is offered.
    response = root.get(reverse(CHANGELIST) + "?task_name=t3")
    assert {r.task_name for r in response.context["cl"].result_list} == {"t3"}
    assert "?task_name=t3" in response.content.decode()


def test_date_hierarchy_runs_no_distinct(root) -> None:
    TaskLogFactory()
    now = timezone.localtime()
    for query in ("", f"?created_at__year={now.year}",
                  f"?created_at__year={now.year}&created_at__month={now.month}",
                  f"?created_at__year={now.year}&created_at__month={now.month}"
                  f"&created_at__day={now.day}"):  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            response = root.get(reverse(CHANGELIST) + query)
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 1, query
        sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
        assert "DISTINCT" not in sql and "COUNT(" not in sql, query
    html = response.content.decode()
    assert "toplinks" in html


def test_bad_date_hierarchy_params_do_not_500(root) -> None:
    TaskLogFactory()
    response = root.get(reverse(CHANGELIST) + "?created_at__year=2026&created_at__month=13")
    assert response.status_code in (200, 302)


def test_search_exact_job_id_uses_only_that_row(root) -> None:
    target = TaskLogFactory(job_id="abc123", error_message="mentions xyz999")
    TaskLogFactory(job_id="xyz999", task_name="abc123-like")
    response = root.get(reverse(CHANGELIST) + "?q=abc123")
    assert [r.pk for r in response.context["cl"].result_list] == [target.pk]


def test_search_other_fields(root) -> None:
    alice = UserFactory(username="alice", email="alice@example.org")
    by_task = TaskLogFactory(task_name="resize_image")
    by_worker = TaskLogFactory(worker_id="worker-z-9")
    by_error = TaskLogFactory(error_message="ConnectionError: smtp.example.com timed out")
    by_user = TaskLogFactory(user=alice)
    TaskLogFactory()

    def found(term: str) -> set[int]:
        response = root.get(reverse(CHANGELIST), {"q": term})
        return {r.pk for r in response.context["cl"].result_list}

    assert found("resize_image") == {by_task.pk}
    assert found("worker-z-9") == {by_worker.pk}
    assert found("timed out") == {by_error.pk}
    assert found("ALICE") == {by_user.pk}
    assert found("alice@example.org") == {by_user.pk}


# --- detail page ------------------------------------------------------------------------------


def test_detail_is_read_only_with_panels(root) -> None:
    log = finished(args=[1, {"x": "y"}], kwargs={"tenant": "t1"}, result='{"ok": true, "n": 2}',
                   job_retries=1, job_retry=3)  # fmt: skip
    response = root.get(change_url(log))
    assert response.status_code == 200
    html = response.content.decode()
    for legend in ("Task information", "Arguments", "Performance", "Result"):
        assert legend in html, legend
    assert "Error details" not in html
    assert "collapse" in html  # the Arguments fieldset folds
    assert "&quot;tenant&quot;: &quot;t1&quot;" in html  # pretty-printed, escaped JSON
    assert "&quot;ok&quot;: true" in html and '"n": 2' not in html
    assert "retries</strong> 1/3" in html and "worker-a-101" in html
    assert 'name="_save"' not in html
    assert response.context["has_change_permission"] is False


def test_error_panel_only_when_failed(root) -> None:
    failed = finished(StatusChoices.FAILED, success=False, error_message="KeyError: 'id'",
                      job_retries=3, job_retry=3)  # fmt: skip
    html = root.get(change_url(failed)).content.decode()
    assert "Error details" in html and "KeyError: &#x27;id&#x27;" in html
    assert "bg-red-100" in html and ">error</span>" in html and "(&#x27;failed&#x27;" not in html
    assert "Attempted 3 of 3 retries" in html
    deferred = TaskLogFactory(status=StatusChoices.DEFERRED, error_message="retrying")
    assert "Error details" not in root.get(change_url(deferred)).content.decode()


def test_result_that_is_not_json_is_shown_verbatim(root) -> None:
    log = finished(result="plain <b>text</b>")
    html = root.get(change_url(log)).content.decode()
    assert "plain &lt;b&gt;text&lt;/b&gt;" in html


def test_rearq_ui_link_only_when_configured(root, settings) -> None:
    log = finished(job_id="j/1 2")
    assert "Open this job in ReArq" not in root.get(change_url(log)).content.decode()
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REARQ_UI_URL": "http://rearq.local:8080/"}
    html = root.get(change_url(log)).content.decode()
    assert 'href="http://rearq.local:8080/job?job_id=j%2F1+2"' in html


def test_related_runs_link_a_retry_to_its_original(root) -> None:
    original = finished(StatusChoices.FAILED, success=False, args=[7], kwargs={"a": 1})
    retry = TaskLogFactory(args=[7], kwargs={"a": 1}, job_id="retry-1")
    TaskLogFactory(args=[8], kwargs={"a": 1})
    html = root.get(change_url(original)).content.decode()
    assert change_url(retry) in html and "retry-1" in html


# --- permissions ------------------------------------------------------------------------------


def staff_with(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_no_add_no_edit_delete_with_its_permission(client, root) -> None:
    """Deleting one row needs what "Delete all matching" needs: tasks.delete_tasklog + view."""
    from rearq_tasks.operation_models import AuditEntry

    log = finished()
    assert root.get(reverse("admin:tasks_tasklog_add")).status_code == 403
    response = root.post(change_url(log), {"task_name": "changed"})
    assert response.status_code == 403
    log.refresh_from_db()
    assert log.task_name == "send_email"
    assert root.get(reverse("admin:tasks_tasklog_delete", args=[log.pk])).status_code == 200

    client.force_login(staff_with("view_tasklog", "change_tasklog"))
    assert client.get(change_url(log)).status_code == 200
    assert client.get(reverse("admin:tasks_tasklog_delete", args=[log.pk])).status_code == 403
    assert client.post(reverse("admin:tasks_tasklog_delete", args=[log.pk]), {"post": "yes"})
    assert TaskLog.objects.filter(pk=log.pk).exists()

    client.force_login(staff_with("view_tasklog", "delete_tasklog"))
    url = reverse("admin:tasks_tasklog_delete", args=[log.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not TaskLog.objects.filter(pk=log.pk).exists()
    entry = AuditEntry.objects.get(action="delete")
    assert entry.job_ids == [log.job_id] and entry.source == "admin"


def test_view_only_staff_gets_no_retry_or_cancel(client) -> None:
    log = finished(StatusChoices.FAILED, success=False)
    client.force_login(staff_with("view_tasklog"))
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    form = response.context["action_form"]
    actions = dict(form.fields["action"].choices) if form else {}
    assert "retry_selected" not in actions and "cancel_selected" not in actions
    assert reverse("admin:tasks_tasklog_retry_job", args=[log.pk]) not in response.content.decode()
    assert client.get(reverse("admin:tasks_tasklog_retry_job", args=[log.pk])).status_code == 403
    assert client.post(reverse("admin:tasks_tasklog_retry_job", args=[log.pk])).status_code == 403


# --- dashboard --------------------------------------------------------------------------------


@pytest.fixture
def heartbeats():
    client = redis_client()
    client.delete(WORKER_KEY)
    yield client
    client.delete(WORKER_KEY)
    client.close()


def test_workers_stale_heartbeats_count_as_dead(heartbeats) -> None:
    now_ms = time.time() * 1000
    heartbeats.hset(WORKER_KEY, "g-live", json.dumps({"queue": "q", "ms": now_ms - 5_000}))
    heartbeats.hset(WORKER_KEY, "g-stale", json.dumps({"queue": "q", "ms": now_ms - 31_000}))
    heartbeats.hset(WORKER_KEY, "g-garbage", "not json")  # not a heartbeat ReArq writes: ignored
    heartbeats.hset(WORKER_KEY, "timer", json.dumps({"queue": "q", "ms": now_ms, "is_timer": True}))
    workers = read_workers(dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC))
    assert (workers.live, workers.dead, workers.names) == (1, 1, ["g-live"])


def test_workers_when_redis_is_down(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": "redis://127.0.0.1:1/0"}
    workers = read_workers()
    assert workers.live is None and "ConnectionError" in workers.error


def test_dashboard_figures_match_the_vocabulary(root, heartbeats) -> None:
    heartbeats.hset(WORKER_KEY, "g-live", json.dumps({"ms": time.time() * 1000}))
    for ms in (100, 200, 300, 400, 10_000):
        finished(task_name="slow_one" if ms == 10_000 else "quick", duration_ms=ms)
    finished(StatusChoices.FAILED, success=False, task_name="flaky", error_message="first")
    finished(StatusChoices.FAILED, success=False, task_name="flaky", error_message="latest")
    TaskLogFactory(status=StatusChoices.QUEUED)
    TaskLogFactory(
        status=StatusChoices.IN_PROGRESS,
        start_time=timezone.now() - dt.timedelta(seconds=conf.STUCK_AFTER_SECONDS + 1),
    )
    finished(enqueue_time=timezone.now() - dt.timedelta(hours=30))  # outside 24 h
    context = dashboard_context()
    kpis = {k["key"]: k["value"] for k in context["kpis"]}
    summary = queries.summary(TaskLog.objects.since(24))
    assert kpis["total"] == summary["total"] == 9
    assert kpis["failures"] == TaskLog.objects.since(24).failed().count() == 2
    assert kpis["success_rate"] == f"{summary['success_rate']} %"
    assert kpis["stuck"] == TaskLog.objects.stuck().count() == 1
    assert kpis["backlog"] == 1
    assert kpis["workers"] == 1
    assert kpis["p95"] == show.format_duration(summary["p95_duration_ms"])
    assert context["top_failing"][0]["task_name"] == "flaky"
    assert context["slowest"][0]["task_name"] == "slow_one"
    chart = json.loads(context["timeline_chart"])
    assert len(chart["labels"]) in (24, 25)
    assert sum(chart["datasets"][0]["data"]) == summary["successful"]
    assert sum(chart["datasets"][1]["data"]) == summary["failed"]

    response = root.get(reverse("admin:tasks_tasklog_dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-kpi="failures">2<' in html and "flaky" in html and "slow_one" in html


def test_dashboard_renders_when_redis_is_down(root, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_URL": "redis://127.0.0.1:1/0"}
    response = root.get(reverse("admin:tasks_tasklog_dashboard"))
    assert response.status_code == 200
    assert re.search(r'data-kpi="workers">\?<', response.content.decode())


def test_dashboard_needs_view_permission(client) -> None:
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse("admin:tasks_tasklog_dashboard")).status_code == 403
    client.force_login(staff_with("view_tasklog"))
    assert client.get(reverse("admin:tasks_tasklog_dashboard")).status_code == 200
