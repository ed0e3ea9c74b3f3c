"""The workers page in a real browser (Chromium, the fixtures of test_admin_browser): a dead
worker with jobs in progress is flagged with links to its jobs, the alive one is not, and
the Repair button fails the dead worker's jobs as lost; any console error fails the test."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory, push_heartbeat
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog
from rearq_tasks.operation_models import AuditEntry
from tests.test_admin_browser import Console, browser, shots  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def fleet(transactional_db, rearq_redis) -> dict[str, str]:
    cache.clear()
    TaskEvent.objects.all().delete()
    TaskLog.objects.all().delete()
    admin_user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    admin_user.set_password("admin")
    admin_user.save()
    alive = push_heartbeat(rearq_redis, "web-1", "c1", queue="default")
    dead = push_heartbeat(rearq_redis, "web-2", "c2", queue="critical", age_seconds=900)
    now = timezone.now()
    for name, count in ((alive, 2), (dead, 3)):
        for i in range(count):
            TaskLogFactory(
                job_id=f"{name}-job-{i}", task_name="resize_image",
                status=StatusChoices.IN_PROGRESS, worker_id=name,
                enqueue_time=now - dt.timedelta(minutes=20),
                start_time=now - dt.timedelta(minutes=19),
            )  # fmt: skip
    yield {"alive": alive, "dead": dead}
    cache.clear()


def test_workers_page_flags_a_dead_worker_and_repairs_it(
    browser,  # noqa: F811 - the fixture
    live_server,
    fleet,
    shots,  # noqa: F811 - the fixture
    settings,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings.DEBUG = False
    wait = WebDriverWait(browser, 15)
    console = Console(browser)
    base = live_server.url
    browser.delete_all_cookies()
    browser.get_log("browser")

    browser.get(f"{base}/admin/login/?next=/admin/tasks/tasklog/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    # From the changelist's "Workers" link.
    browser.find_element(By.XPATH, "//a[contains(@href, 'workers-link')]").click()
    wait.until(ec.presence_of_element_located((By.ID, "workers-table")))
    console.check("workers page")

    rows = browser.find_elements(By.CSS_SELECTOR, "#workers-table tr.worker-row")
    assert [r.get_attribute("data-worker") for r in rows] == [fleet["dead"], fleet["alive"]]
    dead, alive = rows
    assert "worker-flagged" in dead.get_attribute("class")
    assert "dead" in dead.find_element(By.CSS_SELECTOR, "[data-state]").text
    assert "alive" in alive.find_element(By.CSS_SELECTOR, "[data-state]").text
    links = dead.find_elements(By.CSS_SELECTOR, "[data-running] a")
    assert len(links) == 3 and "/change/" in links[0].get_attribute("href")
    assert not alive.find_elements(By.CSS_SELECTOR, "button[data-repair]")
    browser.save_screenshot(str(shots / "workers.png"))

    dead.find_element(By.CSS_SELECTOR, "button[data-repair]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "marked lost"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"worker {fleet['dead']}: 3 job(s) in progress" in body, body
    rows = browser.find_elements(By.CSS_SELECTOR, "#workers-table tr.worker-row")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.worker-flagged")
    console.check("after repair")
    browser.save_screenshot(str(shots / "workers-repaired.png"))
    lost = TaskLog.objects.filter(worker_id=fleet["dead"])
    assert {row.status for row in lost} == {StatusChoices.FAILED}
    assert TaskLog.objects.filter(worker_id=fleet["alive"], status="in_progress").count() == 2
    assert AuditEntry.objects.get(action="repair").matched == 3
