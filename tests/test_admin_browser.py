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
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog

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
    # The pages' figures are asserted: the table holds this test's rows only, whatever a
    # worker of an earlier module may have written after that module's own cleanup.
    TaskEvent.objects.all().delete()
    TaskLog.objects.all().delete()
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


def test_search_language_and_export_in_a_real_browser(browser, live_server, data) -> None:
    """A qualifier search from the box (its suggestions are there), then the Export buttons
    download exactly the rows on screen, for the same search."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)
    console = Console(browser)
    base = live_server.url
    browser.get_log("browser")
    browser.get(f"{base}/admin/login/?next=/admin/tasks/tasklog/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    options = browser.find_elements(By.CSS_SELECTOR, "#tasklog-search-suggestions option")
    values = {option.get_attribute("value") for option in options}
    assert {"status:failed", "task:charge_payment", "queue:critical"} <= values, values

    search = browser.find_element(By.NAME, "q")
    assert search.get_attribute("list") == "tasklog-search-suggestions"
    search.clear()
    search.send_keys("kwargs.customer_id:42 status:failed status:expired", Keys.ENTER)
    wait.until(ec.url_contains("q=kwargs.customer_id"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and "charge_payment" in rows[0].text
    console.check("qualifier search")

    link = browser.find_element(By.CSS_SELECTOR, "a[data-export='jsonl']")
    href = link.get_attribute("href")
    assert "q=kwargs.customer_id" in href and href.endswith("format=jsonl")
    text = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text()).then(done);",
        href,
    )
    assert [line for line in text.splitlines() if line] and all(
        '"job_id": "e2e-failed-job"' in line for line in text.splitlines() if line
    ), text[:500]

    search = browser.find_element(By.NAME, "q")
    search.clear()
    search.send_keys("colour:red", Keys.ENTER)
    wait.until(ec.url_contains("q=colour"))
    assert 'unknown qualifier "colour:"' in browser.find_element(By.TAG_NAME, "body").text
    console.check("bad search")


def _capture(job_id: str, status: str = "queued", task: str | None = None) -> None:
    """Write a job the way the collector writes captured events (stream batch -> upsert);
    its task name (shown in the changelist) is the job id with underscores."""
    from rearq_tasks.capture.collector import _write
    from rearq_tasks.capture.events import fold, now_ms

    task = task or job_id.replace("-", "_")
    event = {"job_id": job_id, "task_name": task, "queue_name": "default", "args": [],
             "kwargs": {}, "status": status, "job_retry": 0, "job_retries": 0,
             "enqueue_time": now_ms()}  # fmt: skip
    if status == "failed":
        event.update(start_time=now_ms(), finish_time=now_ms(), success=False, duration_ms=1)
    _write(fold([event]), [event])


def _set_hidden(driver, hidden: bool) -> None:
    """What the browser does when the tab is hidden or shown (headless tabs never are)."""
    driver.execute_script(
        "Object.defineProperty(document, 'hidden', {value: arguments[0], configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));",
        hidden,
    )


@pytest.fixture
def clean_browser(browser):
    """The module's browser, left as the other test expects it: no stored refresh choice
    (a live page would swap rows under its clicks), no session, its window size."""
    yield browser
    try:
        browser.execute_script("window.localStorage.clear()")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1440, 1000)


def test_live_refresh_in_a_real_browser(
    clean_browser, live_server, transactional_db, settings
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = clean_browser
    settings.DEBUG = False
    cache.clear()
    admin_user = UserFactory(username="live-admin", is_staff=True, is_superuser=True)
    admin_user.set_password("admin")
    admin_user.save()
    for n in range(60):  # more than a page: the window scrolls
        _capture(f"live-old-{n:03d}")
    wait = WebDriverWait(browser, 15)
    console = Console(browser)
    base = live_server.url
    browser.set_window_size(1440, 700)
    browser.get_log("browser")

    browser.get(f"{base}/admin/login/?next=/admin/tasks/tasklog/")
    browser.find_element(By.NAME, "username").send_keys("live-admin")
    browser.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    interval = Select(wait.until(ec.presence_of_element_located((By.ID, "live-refresh-interval"))))
    assert interval.first_selected_option.get_attribute("value") == "0", "off by default"

    def table_text() -> str:  # read in one script: the table may be swapped meanwhile
        return browser.execute_script("return document.getElementById('result_list').innerText")

    # On at 2 s: a job captured now appears without a reload, the scroll position stays.
    interval.select_by_value("2")
    browser.execute_script("window.__notReloaded = true; window.scrollTo(0, 300);")
    scrolled = browser.execute_script("return window.scrollY")
    assert scrolled > 0
    _capture("live-new-job")
    wait.until(lambda d: "live_new_job" in table_text())
    assert browser.execute_script("return window.__notReloaded === true"), "no page load"
    assert abs(browser.execute_script("return window.scrollY") - scrolled) <= 1
    console.check("live changelist")

    # Remembered across a reload.
    browser.refresh()
    interval = Select(wait.until(ec.presence_of_element_located((By.ID, "live-refresh-interval"))))
    assert interval.first_selected_option.get_attribute("value") == "2"

    # Hidden tab: nothing is fetched; shown again: refreshed at once (long before 15 s).
    browser.execute_script("window.__notReloaded = true;")
    _set_hidden(browser, True)
    _capture("live-while-hidden")
    time.sleep(3.5)
    assert "live_while_hidden" not in table_text()
    interval.select_by_value("15")
    _set_hidden(browser, False)
    WebDriverWait(browser, 10).until(lambda d: "live_while_hidden" in table_text())
    interval.select_by_value("2")

    # Rows selected: paused, so an action never lands on rows that moved.
    browser.find_element(By.CSS_SELECTOR, "#result_list input.action-select").click()
    _capture("live-while-selected")
    time.sleep(3.5)
    assert "live_while_selected" not in table_text()
    assert "Paused" in browser.find_element(By.ID, "live-refresh").text
    browser.find_element(By.CSS_SELECTOR, "#result_list input.action-select:checked").click()
    wait.until(lambda d: "live_while_selected" in table_text())
    assert browser.execute_script("return window.__notReloaded === true")
    console.check("live changelist, paused and resumed")

    # Dashboard: its own choice (off), then on: figures and charts update in place.
    browser.get(f"{base}/admin/tasks/tasklog/dashboard/")
    wait.until(ec.presence_of_element_located((By.ID, "tasks-dashboard")))
    interval = Select(browser.find_element(By.ID, "live-refresh-interval"))
    assert interval.first_selected_option.get_attribute("value") == "0"
    interval.select_by_value("2")
    browser.execute_script("window.__notReloaded = true;")

    def failures() -> str:
        return browser.execute_script(
            "return document.querySelector(\"[data-kpi='failures']\").textContent.trim()"
        )

    before = failures()
    for n in range(3):
        _capture(f"live-failed-{n}", status="failed", task="live_failing")
    wait.until(lambda d: failures() != before)
    assert failures() == str(int(before) + 3)
    top_failing = "return document.getElementById('top-failing').innerText"
    wait.until(lambda d: "live_failing" in d.execute_script(top_failing))
    assert browser.execute_script(
        "return window.__notReloaded === true && [...document.querySelectorAll('canvas.chart')]"
        ".every(c => Chart.getChart(c))"
    )
    console.check("live dashboard")
