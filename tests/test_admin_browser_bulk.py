"""'Retry all matching' in a real browser: the changelist's filter, the confirmation with the
exact count, the progress page refreshing itself while a runner works, the audit entry.

The runner is :func:`rearq_tasks.queue.operations.run_pending`, in this process; the retries
go through ReArq for real (its Redis and tables), as from the detail page's Retry.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.models import StatusChoices, TaskEvent, TaskLog
from rearq_tasks.operation_models import AuditEntry, TaskOperation
from tests.test_admin_browser import Console, browser  # noqa: F401 - the fixture

FAILED = 12


@pytest.fixture
def failed_jobs(transactional_db) -> list[str]:
    cache.clear()
    TaskEvent.objects.all().delete()
    TaskLog.objects.all().delete()
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    user.set_password("admin")
    user.save()
    ids = []
    for i in range(FAILED):
        row = TaskLogFactory(
            job_id=f"bulk-e2e-{i}", task_name="charge_payment", status=StatusChoices.FAILED,
            success=False, args=[i], kwargs={"order": i}, error_message="declined",
        )  # fmt: skip
        ids.append(row.job_id)
    TaskLogFactory(job_id="bulk-e2e-other", task_name="resize", status=StatusChoices.FAILED)
    TaskLogFactory(job_id="bulk-e2e-ok", task_name="charge_payment", status=StatusChoices.SUCCESS)
    yield ids
    cache.clear()


def test_retry_all_matching_with_its_progress(
    browser,  # noqa: F811 - the fixture imported above
    live_server,
    failed_jobs,
    rearq_redis,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rearq_tasks.queue import operations

    wait = WebDriverWait(browser, 20)
    console = Console(browser)
    base = live_server.url
    browser.get_log("browser")
    query = "status__exact=failed&task_name=charge_payment"
    browser.get(f"{base}/admin/login/?next=/admin/tasks/tasklog/%3F{query.replace('&', '%26')}")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    console.check("filtered changelist")

    browser.find_element(By.ID, "bulk-retry").click()
    count = wait.until(ec.presence_of_element_located((By.ID, "bulk-count")))
    assert str(FAILED) in count.text, count.text  # the exact count, then a sample
    sample = browser.find_elements(By.CSS_SELECTOR, "#bulk-sample tbody tr")
    assert sample and all("charge_payment" in row.text for row in sample)
    console.check("bulk confirmation")
    assert not TaskOperation.objects.exists()  # a GET changes nothing

    browser.find_element(By.ID, "confirm-bulk-retry").click()
    wait.until(ec.url_contains("/operations/"))
    progress = browser.find_element(By.ID, "bulk-progress")
    assert progress.get_attribute("data-state") == "pending"
    console.check("bulk progress, pending")

    assert operations.run_pending("browser-runner", once=True) >= 1
    wait.until(
        lambda d: d.find_element(By.ID, "bulk-progress").get_attribute("data-state") == "done"
    )  # the page refreshed itself
    counts = browser.find_element(By.ID, "operation-counts").text
    assert f"Matched: {FAILED}" in counts and f"Done: {FAILED}" in counts, counts
    console.check("bulk progress, done")

    reruns = TaskLog.objects.filter(retry_of__in=failed_jobs)
    assert reruns.count() == FAILED
    assert sorted(r.args[0] for r in reruns) == list(range(FAILED))
    entry = AuditEntry.objects.get(action="retry")
    assert (entry.source, entry.username, entry.matched, entry.done) == (
        "admin", "admin", FAILED, FAILED
    )  # fmt: skip
