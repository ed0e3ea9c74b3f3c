"""The REST API at /cfg/tasks/logs/: shapes, filters, errors, access and query counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from harness.factories import TaskLogFactory, UserFactory, staff_viewer
from rearq_tasks.models import StatusChoices, TaskLog

pytestmark = pytest.mark.django_db

S = StatusChoices
BASE = "/cfg/tasks/logs/"
LIST_KEYS = {
    "id", "job_id", "task_name", "queue_name", "status", "status_display", "success",
    "job_retries", "duration_ms", "enqueue_time", "start_time", "finish_time",
}  # fmt: skip
DETAIL_KEYS = LIST_KEYS | {
    "args", "kwargs", "result", "error_message", "duration_seconds", "job_retry",
    "job_retry_after", "worker_id", "expire_time", "created_at", "updated_at", "user",
    "user_display", "retry_of",
}  # fmt: skip


@pytest.fixture
def staff():
    return staff_viewer(username="ops", email="ops@example.com")


@pytest.fixture
def client(staff) -> APIClient:
    api = APIClient()
    # The permission look-up (two queries, cached on the user) is not what the counts measure.
    assert staff.has_perm("tasks.view_tasklog")
    api.force_authenticate(staff)
    return api


NOW = timezone.now()


def ago(**kwargs) -> dt.datetime:
    return NOW - dt.timedelta(**kwargs)


@pytest.fixture
def rows(staff) -> dict[str, TaskLog]:
    """Six jobs that differ in every filtered attribute."""
    alice = UserFactory(username="alice", email="alice@example.com")
    data = {
        "ok": dict(task_name="send_email", queue_name="default", status=S.SUCCESS, success=True,
                   duration_ms=120, enqueue_time=ago(minutes=10), start_time=ago(minutes=9),
                   finish_time=ago(minutes=8), worker_id="worker-a", result="sent", user=alice),
        "fail": dict(task_name="charge_payment", queue_name="critical", status=S.FAILED,
                     success=False, duration_ms=3000, job_retries=3, enqueue_time=ago(hours=2),
                     start_time=ago(hours=2) + dt.timedelta(seconds=30),
                     finish_time=ago(hours=1), worker_id="worker-b",
                     error_message="ConnectionError: smtp down"),
        "queued": dict(task_name="send_email_digest", queue_name="low", status=S.QUEUED,
                       enqueue_time=ago(minutes=1)),
        "running": dict(task_name="resize_image", queue_name="default", status=S.IN_PROGRESS,
                        enqueue_time=ago(hours=3), start_time=ago(hours=2, minutes=59),
                        worker_id="worker-a"),
        "expired": dict(task_name="charge_payment", queue_name="critical", status=S.EXPIRED,
                        success=False, enqueue_time=ago(days=3)),
        "retrying": dict(task_name="sync_inventory", queue_name="background",
                         status=S.DEFERRED, job_retries=1, enqueue_time=ago(minutes=30),
                         error_message="TimeoutError"),
    }  # fmt: skip
    made = {}
    for key, fields in data.items():
        made[key] = TaskLogFactory(job_id=f"job-{key}", **fields)
    # created_at is auto_now_add: move it so created_* filters have something to tell apart.
    TaskLog.objects.filter(job_id="job-expired").update(created_at=ago(days=3))
    return made


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["job_id"].removeprefix("job-") for row in response.json()["results"]}


# --- shapes -------------------------------------------------------------------


def test_list_shape(client, rows) -> None:
    response = client.get(BASE)
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 6 and body["next"] is None and body["previous"] is None
    assert all(set(row) == LIST_KEYS for row in body["results"])
    assert [r["job_id"] for r in body["results"]][:3] == ["job-queued", "job-ok", "job-retrying"]
    first = body["results"][1]
    assert first["status_display"] == "Success" and first["duration_ms"] == 120


def test_detail_shape_and_user_display(client, rows) -> None:
    body = client.get(f"{BASE}{rows['ok'].pk}/").json()
    assert set(body) == DETAIL_KEYS
    assert body["user"] == rows["ok"].user_id
    assert body["user_display"] == "alice (alice@example.com)"
    assert body["duration_seconds"] == 0.12
    assert body["result"] == "sent" and body["args"] == [] and body["kwargs"] == {}
    assert client.get(f"{BASE}{rows['queued'].pk}/").json()["user_display"] is None
    assert client.get(f"{BASE}999999999/").status_code == 404


# --- filters ------------------------------------------------------------------

FILTER_CASES = [
    ("task_name=EMAIL", {"ok", "queued"}),
    ("task_name_exact=send_email", {"ok"}),
    ("task_name_in=send_email,resize_image", {"ok", "running"}),
    ("queue_name=critical", {"fail", "expired"}),
    ("queue_name_in=low,background", {"queued", "retrying"}),
    ("status=failed", {"fail"}),
    ("status_in=queued,in_progress", {"queued", "running"}),
    ("job_id=job-ok", {"ok"}),
    ("job_id_in=job-ok,job-fail", {"ok", "fail"}),
    ("worker_id=worker-a", {"ok", "running"}),
    ("worker_id_in=worker-b", {"fail"}),
    ("username=alice", {"ok"}),
    ("success=false", {"fail", "expired"}),
    ("is_completed=true", {"ok", "fail", "expired"}),
    ("is_completed=false", {"queued", "running", "retrying"}),
    ("is_successful=true", {"ok"}),
    ("is_failed=true", {"fail", "expired"}),
    ("is_failed=false", {"ok", "queued", "running", "retrying"}),
    ("is_canceled=true", set()),
    ("is_waiting=true", {"queued", "retrying"}),
    ("is_running=true", {"running"}),
    ("is_in_flight=true", {"queued", "running", "retrying"}),
    ("is_retried=true", {"fail", "retrying"}),
    ("retried=false", {"ok", "queued", "running", "expired"}),
    ("has_error=true", {"fail", "retrying"}),
    ("has_result=true", {"ok"}),
    ("expired=true", {"expired"}),
    ("enqueued_after={m15}", {"ok", "queued"}),
    ("enqueued_before={m15}", {"fail", "running", "expired", "retrying"}),
    ("created_before={d1}", {"expired"}),
    ("created_after={d1}", {"ok", "fail", "queued", "running", "retrying"}),
    ("started_after={m15}", {"ok"}),
    ("started_before={m15}", {"fail", "running"}),
    ("finished_after={m15}", {"ok"}),
    ("finished_before={m15}", {"fail"}),
    ("duration_min=1000", {"fail"}),
    ("duration_max=1000", {"ok"}),
    ("job_retries_min=1", {"fail", "retrying"}),
    ("job_retries_max=0", {"ok", "queued", "running", "expired"}),
    ("queue_wait_min=45000", {"ok", "running"}),  # waited 60 s
    ("queue_wait_max=45000", {"fail"}),  # waited 30 s
    ("period_hours=24", {"ok", "fail", "queued", "running", "retrying"}),
    ("search=smtp", {"fail"}),
    ("search=worker-b", {"fail"}),
    ("search=job-running", {"running"}),
    ("search=CRITICAL", {"fail", "expired"}),
    ("is_failed=true&queue_name=critical&period_hours=24", {"fail"}),
]


@pytest.mark.parametrize("query, expected", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(client, rows, query, expected) -> None:
    stamps = {
        "m15": ago(minutes=15).isoformat(),
        "d1": ago(days=1).isoformat(),
    }
    query = query.format(**{k: v.replace("+", "%2B") for k, v in stamps.items()})
    assert ids(client.get(f"{BASE}?{query}&page_size=100")) == expected


def test_user_and_stuck_filters(client, rows, settings) -> None:
    alice_id = rows["ok"].user_id
    assert ids(client.get(f"{BASE}?user={alice_id}")) == {"ok"}
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "STUCK_AFTER_SECONDS": 3600}
    assert ids(client.get(f"{BASE}?is_stuck=true")) == {"running"}
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "STUCK_AFTER_SECONDS": 6 * 3600}
    assert ids(client.get(f"{BASE}?is_stuck=true")) == set()


def test_at_least_thirty_documented_filters() -> None:
    from pathlib import Path

    from rearq_tasks.api.filters import TaskLogFilterSet

    names = set(TaskLogFilterSet.base_filters)
    assert len(names) >= 30
    doc = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    missing = [name for name in names if f"`{name}`" not in doc]
    assert not missing, f"undocumented filters: {missing}"


@pytest.mark.parametrize(
    "ordering, first",
    [
        ("duration_ms", "ok"),
        ("-duration_ms", "fail"),
        ("enqueue_time", "expired"),
        ("-job_retries,task_name", "fail"),
        ("task_name", "fail"),
        ("-status", "retrying"),  # statuses sort as text: success > queued > …; deferred last
    ],
)
def test_ordering(client, rows, ordering, first) -> None:
    results = client.get(f"{BASE}?ordering={ordering}").json()["results"]
    if ordering == "-status":
        assert results[0]["status"] == "success"
    elif ordering == "duration_ms":
        assert [r["duration_ms"] for r in results[:2]] == [120, 3000]
    else:
        assert results[0]["job_id"] == f"job-{first}"


# --- bad input: 400 naming the parameter, never a 500 ---------------------------

BAD = [
    ("", "status=bogus", "status"),
    ("", "status_in=queued,bogus", "status_in"),
    ("", "enqueued_after=yesterday", "enqueued_after"),
    ("", "created_before=2026-13-45", "created_before"),
    ("", "started_after=0001-01-01T00:00:00%2B05:00", "started_after"),  # before year 1 in UTC
    ("", "duration_min=abc", "duration_min"),
    ("", "duration_max=-1", "duration_max"),
    ("", "job_retries_min=1.5", "job_retries_min"),
    ("", "queue_wait_min=x", "queue_wait_min"),
    ("", "user=alice", "user"),
    ("", "user=9223372036854775808", "user"),  # past 64 bits: SQLite raised OverflowError
    ("", "duration_min=99999999999999999999", "duration_min"),
    ("", "is_failed=maybe", "is_failed"),
    ("", "page_size=-5", "page_size"),
    ("", "page_size=0", "page_size"),
    ("", "page_size=ten", "page_size"),
    ("", "page=abc", "page"),
    ("", "page=0", "page"),
    ("", "ordering=args", "ordering"),
    ("", "ordering=-error_message", "ordering"),
    ("", "period_hours=0", "period_hours"),
    ("", "period_hours=100000", "period_hours"),
    ("stats/", "period_hours=0", "period_hours"),
    ("stats/", "period_hours=99999", "period_hours"),
    ("stats/", "period_hours=abc", "period_hours"),
    ("timeline/", "interval=week", "interval"),
    ("timeline/", "period_hours=-3", "period_hours"),
    ("tasks/", "ordering=-latest_error", "ordering"),
    ("tasks/", "limit=0", "limit"),
]


@pytest.mark.parametrize("action, query, parameter", BAD, ids=[f"{a}?{q}" for a, q, _ in BAD])
def test_bad_input_is_400_naming_the_parameter(client, rows, action, query, parameter) -> None:
    response = client.get(f"{BASE}{action}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert parameter in body and body[parameter], body


def test_offsets_the_database_cannot_store_are_converted_to_utc(client, rows) -> None:
    # PostgreSQL refuses a -21:41 offset in a literal; the filter sends UTC instead.
    response = client.get(f"{BASE}?created_before=0540-11-27T22:44:16-21:41")
    assert response.status_code == 200 and response.json()["count"] == 0


def test_period_limit_follows_the_setting(client, settings) -> None:
    # Aggregates accept the larger of MAX_PERIOD_HOURS and the statistics retention.
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "MAX_PERIOD_HOURS": 48,
        "STATS_RETENTION_DAYS": 1,
    }
    assert client.get(f"{BASE}stats/?period_hours=48").status_code == 200
    response = client.get(f"{BASE}stats/?period_hours=49")
    assert response.status_code == 400 and "48" in response.json()["period_hours"][0]


# --- pagination -------------------------------------------------------------------


def test_page_size_default_bound_and_links(client, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "PAGE_SIZE": 2, "MAX_PAGE_SIZE": 3}
    TaskLogFactory.create_batch(5)
    body = client.get(BASE).json()
    assert len(body["results"]) == 2 and body["count"] == 5
    assert "page=2" in body["next"]
    assert len(client.get(f"{BASE}?page_size=500").json()["results"]) == 3  # clamped
    last = client.get(f"{BASE}?page=last").json()
    assert len(last["results"]) == 1 and last["next"] is None and last["previous"]
    assert client.get(f"{BASE}?page=9").status_code == 404


def test_count_is_exact_up_to_the_limit(client, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "COUNT_LIMIT": 3}
    TaskLogFactory.create_batch(3)
    response = client.get(BASE)
    assert response.json()["count"] == 3 and response["X-Count-Exact"] == "true"


def test_count_above_the_limit(client, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "COUNT_LIMIT": 3}
    TaskLogFactory.create_batch(8)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_cfg_task_log")
    response = client.get(f"{BASE}?page_size=2")
    count = response.json()["count"]
    if connection.vendor == "postgresql":
        # The planner's estimate, never below the limit + 1.
        assert response["X-Count-Exact"] == "false" and count >= 4
    else:
        assert response["X-Count-Exact"] == "true" and count == 8
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "COUNT_LIMIT": 0}
    response = client.get(f"{BASE}?page_size=2")
    assert response.json()["count"] == 8 and response["X-Count-Exact"] == "true"


# --- actions ------------------------------------------------------------------------


def test_stats_shape(client, rows) -> None:
    body = client.get(f"{BASE}stats/?period_hours=24").json()
    assert body["period_hours"] == 24
    assert body["total"] == 5 and body["successful"] == 1 and body["failed"] == 1
    assert body["in_progress"] == 2 and body["success_rate"] == 50.0
    assert body["avg_duration_ms"] == 1560 and body["avg_duration_seconds"] == 1.56
    extra = {"p50_duration_ms", "p95_duration_ms", "p99_duration_ms", "avg_queue_wait_ms",
             "p95_queue_wait_ms", "retry_rate", "failure_rate", "completed"}  # fmt: skip
    assert extra <= set(body)
    only = client.get(f"{BASE}stats/?period_hours=100&task_name=charge_payment").json()
    assert only["total"] == 2 and only["failed"] == 2 and only["period_hours"] == 100
    assert client.get(f"{BASE}stats/?queue_name=low").json()["total"] == 1


def test_timeline_shape(client, rows) -> None:
    body = client.get(f"{BASE}timeline/?period_hours=6&interval=hour").json()
    assert isinstance(body, list) and len(body) in (6, 7)
    assert all(
        set(b) == {"timestamp", "total", "successful", "failed", "avg_duration_ms"} for b in body
    )
    assert sum(b["total"] for b in body) == 5
    assert body[0]["timestamp"].endswith(("+01:00", "+02:00"))  # Europe/Berlin
    days = client.get(f"{BASE}timeline/?period_hours=96&interval=day&task_name=charge_payment")
    assert sum(b["total"] for b in days.json()) == 2


def test_overview_shape(client, rows) -> None:
    body = client.get(f"{BASE}overview/").json()
    assert body == {
        "total_tasks": 6,
        "active_queues": ["background", "critical", "default", "low"],
        "recent_failures": 1,
        "tasks_by_queue": {"background": 1, "critical": 2, "default": 2, "low": 1},
        "tasks_by_status": {
            "deferred": 1,
            "expired": 1,
            "failed": 1,
            "in_progress": 1,
            "queued": 1,
            "success": 1,
        },  # fmt: skip
        "recent_hours": 24,
    }


def test_tasks_action(client, rows) -> None:
    body = client.get(f"{BASE}tasks/?period_hours=100&ordering=-failures&limit=1").json()
    assert body == [
        {
            "task_name": "charge_payment",
            "total": 2,
            "failures": 2,
            "successful": 0,
            "completed": 2,
            "failure_rate": 100.0,
            "avg_duration_ms": 3000,
            "p95_duration_ms": pytest.approx(3000, rel=0.01),  # the rollup: within 1 %
            "latest_error": "ConnectionError: smtp down",
        }
    ]


def test_related_nearest_in_time_and_bounded(client, settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "RELATED_LIMIT": 3}
    anchor = TaskLogFactory(task_name="report", enqueue_time=ago(hours=10))
    for hours in (1, 9, 11, 12, 30):
        TaskLogFactory(task_name="report", job_id=f"r{hours}", enqueue_time=ago(hours=hours))
    TaskLogFactory(task_name="other", job_id="other", enqueue_time=ago(hours=10))
    rows = client.get(f"{BASE}{anchor.pk}/related/").json()
    # The seed's contract: a plain list of rows shaped like the list's, never the row itself.
    assert isinstance(rows, list)
    assert [row["job_id"] for row in rows] in (["r9", "r11", "r12"], ["r11", "r9", "r12"])
    assert all(set(row) == LIST_KEYS for row in rows)
    assert anchor.job_id not in {row["job_id"] for row in rows}


def test_related_orders_by_distance_in_enqueue_time_both_ways(client) -> None:
    anchor = TaskLogFactory(task_name="report", enqueue_time=ago(hours=10))
    for minutes in (-300, -5, 2, 60, 61):  # negative: enqueued before the anchor
        TaskLogFactory(
            task_name="report", job_id=f"m{minutes}", enqueue_time=ago(hours=10, minutes=-minutes)
        )
    rows = client.get(f"{BASE}{anchor.pk}/related/").json()
    assert [row["job_id"] for row in rows] == ["m2", "m-5", "m60", "m61", "m-300"]


def test_related_of_a_lone_row_is_an_empty_list(client) -> None:
    anchor = TaskLogFactory(task_name="alone")
    assert client.get(f"{BASE}{anchor.pk}/related/").json() == []


# --- access -----------------------------------------------------------------------


def test_anonymous_is_refused(rows) -> None:
    response = APIClient().get(BASE)
    assert response.status_code in (401, 403)
    assert APIClient().get(f"{BASE}stats/").status_code in (401, 403)
    assert APIClient().get("/cfg/tasks/schema/").status_code in (401, 403)


def test_non_staff_is_forbidden(rows) -> None:
    api = APIClient()
    api.force_authenticate(UserFactory(username="bob"))
    assert api.get(BASE).status_code == 403
    assert api.get(f"{BASE}overview/").status_code == 403


def test_session_login_works(rows, staff) -> None:
    api = APIClient()
    api.force_login(staff)
    assert api.get(BASE).status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only(client, rows, method) -> None:
    assert getattr(client, method)(BASE, {}).status_code == 405
    assert getattr(client, method)(f"{BASE}{rows['ok'].pk}/", {}).status_code == 405
    assert TaskLog.objects.count() == 6


def test_permissions_come_from_settings(rows, settings) -> None:
    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    assert APIClient().get(BASE).status_code == 200


def test_token_authentication_when_configured(rows, staff, settings) -> None:
    from rest_framework.authtoken.models import Token

    settings.REARQ_TASKS = {
        **settings.REARQ_TASKS,
        "API_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    }
    token = Token.objects.create(user=staff)
    api = APIClient()
    assert api.get(BASE).status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get(BASE).status_code == 200


# --- query counts -------------------------------------------------------------------


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_query_count_does_not_grow_with_the_page(client) -> None:
    users = [UserFactory() for _ in range(3)]
    for n in range(30):
        TaskLogFactory(user=users[n % 3])
    small, large = queries(client, f"{BASE}?page_size=2"), queries(client, f"{BASE}?page_size=30")
    assert small == large == 2  # count + page


def test_detail_is_one_query_with_its_user(client, rows) -> None:
    assert queries(client, f"{BASE}{rows['ok'].pk}/") == 1


def test_action_query_counts(client, rows) -> None:
    # Read from the rollups: a fixed number of queries whatever the rows (whole buckets,
    # then the period's first partial bucket and the unfinished jobs from rows), plus, on
    # PostgreSQL, four per read inside the test's transaction: a savepoint, its settings set,
    # put back, the release (queries.read_settings; one statement outside a transaction).
    jit = 4 if connection.vendor == "postgresql" else 0
    assert queries(client, f"{BASE}stats/") == 4 + 2 * jit
    assert queries(client, f"{BASE}timeline/?period_hours=168") == 2 + jit
    assert queries(client, f"{BASE}overview/") == 4 + 2 * jit
    # row + before + after
    assert queries(client, f"{BASE}{rows['ok'].pk}/related/") == 3
    assert queries(client, f"{BASE}{rows['ok'].pk}/events/") == 2  # row + events


@pytest.mark.parametrize("pk", ["99999999999999999999999", "abc", "-1", "1.5"])
def test_impossible_ids_are_404(client, pk) -> None:
    assert client.get(f"{BASE}{pk}/").status_code == 404
    assert client.get(f"{BASE}{pk}/related/").status_code == 404
    assert client.get(f"{BASE}{pk}/events/").status_code == 404
