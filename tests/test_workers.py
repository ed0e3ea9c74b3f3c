"""The workers page: assembly (real Redis heartbeats, TaskLog rows), the API and the admin
page, and the repair of a dead worker's jobs (refused while alive, audited, 403 without the
cancel permission)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory, push_heartbeat, staff_viewer
from rearq_tasks.models import StatusChoices, TaskLog
from rearq_tasks.operation_models import AuditEntry
from rearq_tasks.queue.workers import Query, workers_page

S = StatusChoices
URL = "/cfg/tasks/workers/"


def running(worker: str | None, n: int, **fields) -> list[TaskLog]:
    now = timezone.now()
    return [
        TaskLogFactory(
            status=S.IN_PROGRESS,
            worker_id=worker,
            start_time=None if worker is None else now - dt.timedelta(seconds=60 - i),
            enqueue_time=now - dt.timedelta(minutes=2),
            **fields,
        )
        for i in range(n)
    ]


def ended(worker: str, status: str, minutes_ago: int, n: int = 1) -> None:
    finish = timezone.now() - dt.timedelta(minutes=minutes_ago)
    for _ in range(n):
        TaskLogFactory(
            status=status,
            success=status == S.SUCCESS,
            worker_id=worker,
            enqueue_time=finish - dt.timedelta(minutes=1),
            start_time=finish - dt.timedelta(seconds=5),
            finish_time=finish,
        )


@pytest.fixture
def fleet(rearq_redis) -> dict[str, str]:
    """An alive worker, a dead one with jobs in progress, a dead idle one, a long-gone one."""
    alive = push_heartbeat(rearq_redis, "host-a", 1, queue="default")
    dead = push_heartbeat(rearq_redis, "host-b", 2, queue="critical", age_seconds=300)
    idle = push_heartbeat(rearq_redis, "host-c", 3, age_seconds=600)
    gone = push_heartbeat(rearq_redis, "host-d", 4, age_seconds=3 * 24 * 3600)
    running(alive, 3)
    running(dead, 2, queue_name="critical")
    running(None, 1)
    ended(alive, S.SUCCESS, 10, n=2)
    ended(alive, S.FAILED, 20)
    ended(alive, S.SUCCESS, 120)  # before the last hour
    return {"alive": alive, "dead": dead, "idle": idle, "gone": gone}


@pytest.mark.django_db
def test_the_page_lists_recent_workers_flagged_first_with_their_figures(fleet) -> None:
    page = workers_page(Query(jobs_per_worker=2))
    names = [row["name"] for row in page["results"]]
    assert names == [fleet["dead"], fleet["alive"], fleet["idle"]]  # host-d is too old
    dead, alive, idle = page["results"]
    assert (dead["alive"], dead["flagged"], dead["running"]) == (False, True, 2)
    assert dead["queues"] == ["critical"]
    assert (alive["alive"], alive["flagged"], alive["running"]) == (True, False, 3)
    assert (alive["finished_last_hour"], alive["failed_last_hour"]) == (3, 1)
    assert len(alive["running_jobs"]) == 2  # bounded; the count stays complete
    assert alive["running_jobs"][0]["start_time"] <= alive["running_jobs"][1]["start_time"]
    assert (idle["alive"], idle["flagged"], idle["running"]) == (False, False, 0)
    summary = page["summary"]
    assert (summary["alive"], summary["dead"], summary["flagged"]) == (1, 2, 1)
    assert (summary["running"], summary["unassigned_running"]) == (5, 1)
    assert summary["redis_error"] is None
    assert workers_page(Query(seen_hours=24 * 7))["count"] == 4


@pytest.mark.django_db
def test_a_worker_of_several_queues_lists_them_all(rearq_redis) -> None:
    """ReArq's heartbeat names one queue; the other queue's consumer group names the worker."""
    from harness.factories import consume

    push_heartbeat(rearq_redis, "multi", 7, queue="reports")
    push_heartbeat(rearq_redis, "other", 8, queue="emails")
    consume(rearq_redis, "emails", "multi", 7)
    consume(rearq_redis, "reports", "multi", 7)
    rows = {row["name"]: row for row in workers_page()["results"]}
    assert rows["multi-7"]["queues"] == ["emails", "reports"]
    assert rows["other-8"]["queues"] == ["emails"]


@pytest.mark.django_db
def test_a_worker_without_a_heartbeat_but_with_running_jobs_is_flagged(rearq_redis) -> None:
    running("vanished-9", 1)
    (row,) = workers_page()["results"]
    assert (row["name"], row["alive"], row["flagged"], row["last_heartbeat"]) == (
        "vanished-9", False, True, None,
    )  # fmt: skip


@pytest.mark.django_db
def test_filters_and_pages(fleet) -> None:
    assert [r["name"] for r in workers_page(Query(state="flagged"))["results"]] == [fleet["dead"]]
    assert [r["name"] for r in workers_page(Query(state="alive"))["results"]] == [fleet["alive"]]
    assert workers_page(Query(state="dead"))["count"] == 2
    assert [r["name"] for r in workers_page(Query(search="HOST-C"))["results"]] == [fleet["idle"]]
    second = workers_page(Query(page=2, page_size=2))
    assert (second["pages"], [r["name"] for r in second["results"]]) == (2, [fleet["idle"]])


@pytest.mark.django_db
def test_redis_unreachable_shows_the_database_side_and_no_password(settings, rearq_redis) -> None:
    running("host-x-1", 1)
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS, "REDIS_URL": "redis://:s3cret@127.0.0.1:1/8",
    }  # fmt: skip
    page = workers_page()
    assert page["summary"]["redis_error"].startswith("ReArq's Redis is unreachable")
    assert "s3cret" not in str(page)
    (row,) = page["results"]
    assert (row["alive"], row["flagged"]) == (None, False)


# --- API ----------------------------------------------------------------------------------------
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_api_lists_workers_with_links(fleet) -> None:
    response = api(staff_viewer(username="ops")).get(URL, {"jobs_per_worker": 1})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "page", "pages", "page_size", "next", "previous", "summary",
                         "results", "generated_at"}  # fmt: skip
    dead = body["results"][0]
    assert dead["flagged"] and dead["repair_url"].endswith(
        f"/cfg/tasks/workers/{fleet['dead']}/repair/"
    )
    job = dead["running_jobs"][0]
    assert job["url"].endswith(f"/cfg/tasks/logs/{job['id']}/")
    assert body["results"][1]["repair_url"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"state": "sleeping"}, "state"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"seen_hours": "soon"}, "seen_hours"),
        ({"page": "-1"}, "page"),
        ({"jobs_per_worker": "101"}, "jobs_per_worker"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_api_bad_parameters_are_400_naming_them(rearq_redis, params, name) -> None:
    response = api(staff_viewer(username="ops")).get(URL, params)
    assert response.status_code == 400
    assert name in response.json()


@pytest.mark.django_db
def test_api_needs_the_view_permission(rearq_redis) -> None:
    assert api(UserFactory(username="nobody", is_staff=True)).get(URL).status_code == 403
    assert APIClient().get(URL).status_code in (401, 403)


# --- repair -------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_api_repair_fails_the_dead_workers_jobs_as_lost_and_audits(fleet) -> None:
    user = staff_viewer("cancel_tasklog", username="fixer")
    response = api(user).post(f"{URL}{fleet['dead']}/repair/")
    assert response.status_code == 200, response.content
    assert response.json() == {"worker": fleet["dead"], "matched": 2, "synced": 0, "lost": 2,
                               "skipped": 0}  # fmt: skip
    rows = TaskLog.objects.filter(worker_id=fleet["dead"])
    assert {(r.status, r.success) for r in rows} == {(S.FAILED, False)}
    assert all(r.error_message.startswith("lost: ") for r in rows)
    assert "dead worker" in rows[0].error_message
    entry = AuditEntry.objects.get(action="repair")
    assert (entry.user, entry.source, entry.matched, entry.done) == (user, "api", 2, 2)
    assert entry.filters == {"worker": fleet["dead"]}
    assert sorted(entry.job_ids) == sorted(r.job_id for r in rows)
    # The alive worker's jobs are untouched; the page no longer flags the dead one.
    assert TaskLog.objects.filter(worker_id=fleet["alive"], status=S.IN_PROGRESS).count() == 3
    assert workers_page()["summary"]["flagged"] == 0


@pytest.mark.django_db(transaction=True)
def test_api_repair_is_refused_without_permission_alive_or_unknown(fleet) -> None:
    viewer = api(staff_viewer(username="viewer"))
    assert viewer.post(f"{URL}{fleet['dead']}/repair/").status_code == 403
    fixer = api(staff_viewer("cancel_tasklog", username="fixer"))
    alive = fixer.post(f"{URL}{fleet['alive']}/repair/")
    assert alive.status_code == 409 and "alive" in alive.json()["detail"]
    assert fixer.post(f"{URL}no-such-worker/repair/").status_code == 404
    assert not AuditEntry.objects.exists()
    assert TaskLog.objects.filter(status=S.IN_PROGRESS).count() == 6


@pytest.mark.django_db(transaction=True)
def test_api_repair_needs_csrf_with_a_session(fleet) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_viewer("cancel_tasklog", username="fixer"))
    assert client.post(f"{URL}{fleet['dead']}/repair/").status_code == 403
    assert TaskLog.objects.filter(worker_id=fleet["dead"], status=S.IN_PROGRESS).count() == 2


# --- admin --------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_admin_page_flags_the_dead_worker_and_repairs_it(client, fleet) -> None:
    client.force_login(staff_viewer("cancel_tasklog", username="fixer"))
    url = reverse("admin:tasks_tasklog_workers")
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert fleet["dead"] in html and fleet["alive"] in html and 'id="repair-' in html
    job = TaskLog.objects.filter(worker_id=fleet["dead"]).first()
    assert reverse("admin:tasks_tasklog_change", args=[job.pk]) in html
    repair = reverse("admin:tasks_tasklog_worker_repair", args=[fleet["dead"]])
    assert client.get(repair).status_code == 405
    response = client.post(repair)
    assert response.status_code == 302
    assert not TaskLog.objects.filter(worker_id=fleet["dead"], status=S.IN_PROGRESS).exists()
    assert AuditEntry.objects.get(action="repair").source == "admin"


@pytest.mark.django_db(transaction=True)
def test_admin_repair_needs_the_cancel_permission(client, fleet) -> None:
    client.force_login(staff_viewer(username="viewer"))
    html = client.get(reverse("admin:tasks_tasklog_workers")).content.decode()
    assert 'id="repair-' not in html
    repair = reverse("admin:tasks_tasklog_worker_repair", args=[fleet["dead"]])
    assert client.post(repair).status_code == 403
    assert TaskLog.objects.filter(worker_id=fleet["dead"], status=S.IN_PROGRESS).count() == 2
    client.force_login(UserFactory(username="plain", is_staff=True))
    assert client.get(reverse("admin:tasks_tasklog_workers")).status_code == 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["%00", "a%00b", "x" * 300, "%FF%FE", "1'%20OR%20'1'='1"])
def test_hostile_worker_names_are_a_404_not_a_500(rearq_redis, client, name) -> None:
    fixer = api(staff_viewer("cancel_tasklog", username="fixer"))
    assert fixer.post(f"{URL}{name}/repair/").status_code == 404
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post(f"/admin/tasks/tasklog/workers/{name}/repair/")
    assert response.status_code in (302, 404)
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "name"),
    [("state=sleeping", "state"), ("page=0", "page"), ("seen_hours=x", "seen_hours"),
     ("search=a%00b", "search")],
)  # fmt: skip
def test_admin_page_bad_parameters_are_400_naming_them(client, rearq_redis, query, name) -> None:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(f"{reverse('admin:tasks_tasklog_workers')}?{query}")
    assert response.status_code == 400
    assert name in response.content.decode()


@pytest.mark.django_db
def test_admin_page_pages_and_filters(client, fleet) -> None:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:tasks_tasklog_workers")
    html = client.get(f"{url}?state=alive").content.decode()
    assert fleet["alive"] in html and fleet["dead"] not in html
    html = client.get(f"{url}?search=host-c").content.decode()
    assert fleet["idle"] in html and fleet["alive"] not in html
