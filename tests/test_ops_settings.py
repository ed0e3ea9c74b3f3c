from __future__ import annotations

import pytest

from rearq_tasks.conf import conf
from rearq_tasks.conf.checks import check_settings


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("ALERT_TASK_OVERRIDES", {"t": {"FAILURE_RATE": 5}}, "unknown key 'FAILURE_RATE'"),
        ("ALERT_TASK_OVERRIDES", {"t": {"AVG_RETRIES": 0}}, "greater than 0 or None"),
        ("ALERT_TASK_OVERRIDES", {"t": {"FAILURE_RATE_THRESHOLD": 150}}, "percentage"),
        ("ALERT_TASK_OVERRIDES", {"t": 5}, "must map task names"),
        ("WORKER_STALE_SECONDS", 10, "heartbeat interval"),
        ("ALERT_WORSEN_RATIO", 1, "greater than 1"),
        ("ALERT_EMAIL_RECIPIENTS", ["ADMINS", ""], "non-empty strings"),
        ("REDIS_TIMEOUT_SECONDS", 0, "greater than 0"),
    ],
)
def test_bad_ops_settings(settings, key, value, problem) -> None:
    settings.REARQ_TASKS = {key: value}
    (error,) = check_settings()
    assert error.id == "rearq_tasks.E004" and problem in error.msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("METRICS_TOKEN", "short-s3cr3t"),
        ("ALERT_SLACK_WEBHOOK_URL", "ftp://hooks.slack.com/services/s3cr3t"),
        ("METRICS_TOKEN", 12345678901234567890),
    ],
)
def test_secrets_are_never_shown(settings, key, value) -> None:
    settings.REARQ_TASKS = {key: value}
    (error,) = check_settings()
    assert key in error.msg and "'***'" in error.msg
    assert "s3cr3t" not in error.msg + error.hint and "1234567890" not in error.msg


def test_good_ops_settings_pass(settings) -> None:
    settings.REARQ_TASKS = {
        "WORKER_QUEUES": ["default", "critical"],
        "ALERT_TASK_OVERRIDES": {
            "charge_payment": {"FAILURE_RATE_THRESHOLD": 5, "AVG_RETRIES": None}
        },
        "METRICS_TOKEN": "a" * 32,
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
    }
    assert check_settings() == []
    assert conf.ALERT_TASK_OVERRIDES == {
        "charge_payment": {"FAILURE_RATE_THRESHOLD": 5, "AVG_RETRIES": None}
    }
    assert conf.WORKER_QUEUES == ["default", "critical"]
