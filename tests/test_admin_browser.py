"""End to end in a real browser: Debian's headless Chromium driven by Selenium + chromedriver.

Logs in, walks the changelist (filter, search), opens a detail page and its Arguments,
retries a failed job through ReArq, opens the dashboard; any console error fails the test.
Screenshots go to ``REARQ_TASKS_SCREENSHOT_DIR`` (default ``var/screenshots``; set it to
``docs/img`` to refresh the documentation's pictures). In CI (``CI=true``) a missing
browser is a failure, not a skip.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices, TaskLog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("REARQ_TASKS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("REARQ_TASKS_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,1000",
)  # fmt: skip
PAYLOAD = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} is missing (scripts/services.sh installs chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs the browser: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def shots() -> Path:
    directory = Path(os.environ.get("REARQ_TASKS_SCREENSHOT_DIR", ROOT / "var" / "screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def data(transactional_db):
    cache.clear()
    admin_user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    admin_user.set_password("admin")
    admin_user.save()
    call_command("seed_task_logs", count=400, days=2, seed=7, verbosity=0)
    now = timezone.now()
    failed = TaskLogFactory(
        job_id="e2e-failed-job",
        task_name="charge_payment",
        queue_name="critical",
        status=StatusChoices.FAILED,
        success=False,
        args=[4711, {"currency": "EUR"}],
        kwargs={"customer_id": 42, "note": PAYLOAD},
        error_message="RuntimeError: payment provider declined the charge (code 51)",
        job_retry=5,
        job_retries=5,
        enqueue_time=now - dt.timedelta(seconds=30),
        start_time=now - dt.timedelta(seconds=29),
        finish_time=now - dt.timedelta(seconds=28),
        duration_ms=812,
        worker_id="worker-a-101",
        user=admin_user,
    )
    yield failed
    cache.clear()


class Console:
    """Collects the browser's console; SEVERE entries are errors."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.errors: list[str] = []

    def check(self, where: str) -> None:
        for entry in self.driver.get_log("browser"):
            if entry["level"] == "SEVERE":
                self.errors.append(f"{where}: {entry['message']}")
        assert not self.errors, "console errors:\n" + "\n".join(self.errors)


def test_admin_in_a_real_browser(browser, live_server, data, shots, settings) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings.DEBUG = False
    wait = WebDriverWait(browser, 15)
    console = Console(browser)
    base = live_server.url
    browser.get_log("browser")  # drop anything from before this test

    # Log in.
    browser.get(f"{base}/admin/login/?next=/admin/tasks/tasklog/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    console.check("changelist")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 50
    browser.save_screenshot(str(shots / "changelist.png"))

    # Filter: failed only (the quick filter, from the filter sheet).
    browser.find_element(By.XPATH, "//a[contains(normalize-space(.), 'Filters')]").click()
    wait.until(ec.element_to_be_clickable((By.XPATH, "//a[contains(., 'Failed only')]"))).click()
    wait.until(ec.url_contains("quick=failed"))
    statuses = [
        cell.text.strip().lower()
        for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-status_display")
    ]
    assert statuses and all(s.endswith(("failed", "expired")) for s in statuses), statuses
    console.check("failed filter")
    browser.save_screenshot(str(shots / "changelist-failed.png"))

    # Search a job id: exactly that row.
    search = browser.find_element(By.NAME, "q")
    search.clear()
    search.send_keys(data.job_id, Keys.ENTER)
    wait.until(ec.url_contains(f"q={data.job_id}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and "charge_payment" in rows[0].text
    console.check("search")

    # Detail page; expand Arguments.
    rows[0].find_element(By.CSS_SELECTOR, "th a, td.field-task_name a").click()
    wait.until(ec.url_contains(f"/{data.pk}/change/"))
    summary = browser.find_element(By.XPATH, "//summary[contains(., 'Arguments')]")
    details = summary.find_element(By.XPATH, "./..")
    assert details.get_attribute("open") is None
    summary.click()
    wait.until(lambda d: details.get_attribute("open") is not None)
    assert '"customer_id": 42' in details.text and PAYLOAD in details.text  # shown as text
    assert "payment provider declined" in browser.find_element(By.TAG_NAME, "body").text
    console.check("detail")
    browser.set_window_size(1440, 2300)  # the whole page: error panel and result too
    browser.save_screenshot(str(shots / "detail.png"))
    browser.set_window_size(1440, 1000)

    # Retry from the detail page: a confirmation, then a POST through ReArq.
    browser.find_element(By.XPATH, "//a[contains(@href, '/retry/')]").click()
    wait.until(ec.element_to_be_clickable((By.ID, "confirm-retry")))
    console.check("retry confirmation")
    browser.find_element(By.ID, "confirm-retry").click()
    wait.until(ec.url_contains(f"/{data.pk}/change/"))
    messages = browser.find_element(By.TAG_NAME, "body").text
    assert f"Job {data.job_id} retried as" in messages, messages
    new_job_id = messages.split(f"Job {data.job_id} retried as", 1)[1].split()[0].rstrip(".")
    new = TaskLog.objects.get(job_id=new_job_id)
    assert (new.task_name, new.args, new.kwargs) == (data.task_name, data.args, data.kwargs)
    console.check("after retry")
    browser.save_screenshot(str(shots / "retry.png"))

    # Dashboard, with its charts drawn.
    browser.set_window_size(1440, 1500)
    browser.get(f"{base}/admin/tasks/tasklog/dashboard/")
    wait.until(ec.presence_of_element_located((By.ID, "tasks-dashboard")))
    wait.until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('canvas.chart')]"
            ".every(c => window.Chart && Chart.getChart(c))"
        )
    )
    kpis = browser.find_elements(By.CSS_SELECTOR, "[data-kpi]")
    assert {k.get_attribute("data-kpi") for k in kpis} >= {
        "total", "success_rate", "failures", "p95", "stuck", "backlog", "workers"
    }  # fmt: skip
    console.check("dashboard")
    browser.save_screenshot(str(shots / "dashboard.png"))
