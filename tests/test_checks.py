from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from rearq_tasks.conf import SPEC, conf
from rearq_tasks.conf.checks import check_settings


def ids(settings_value, settings) -> list[str]:
    settings.REARQ_TASKS = settings_value
    return [error.id for error in check_settings()]


def test_defaults_pass(settings) -> None:
    del settings.REARQ_TASKS
    assert check_settings() == []
    assert conf.PAGE_SIZE == SPEC["PAGE_SIZE"].default


def test_not_a_dict(settings) -> None:
    assert ids(["REDIS_URL"], settings) == ["rearq_tasks.E001"]


def test_unknown_key_suggests_the_close_one(settings) -> None:
    settings.REARQ_TASKS = {"REDIS_ULR": "redis://x"}
    (error,) = check_settings()
    assert error.id == "rearq_tasks.E002"
    assert "REDIS_URL" in error.hint


@pytest.mark.parametrize(
    "key, value",
    [
        ("PAGE_SIZE", "50"),
        ("PAGE_SIZE", True),
        ("STUCK_AFTER_SECONDS", 1.5),
        ("REDIS_URL", 6379),
        ("API_PERMISSION_CLASSES", "rest_framework.permissions.IsAdminUser"),
        ("FAILURE_RATE_THRESHOLD", "10%"),
        ("RETENTION_DAYS", None),
    ],
)
def test_wrong_types(settings, key, value) -> None:
    settings.REARQ_TASKS = {key: value}
    errors = check_settings()
    assert [e.id for e in errors] == ["rearq_tasks.E003"]
    assert key in errors[0].msg and errors[0].hint


@pytest.mark.parametrize(
    "key, value",
    [
        ("PAGE_SIZE", 0),
        ("MAX_PAGE_SIZE", -5),
        ("RETENTION_DAYS", 0),
        ("FAILURE_RATE_THRESHOLD", 0),
        ("FAILURE_RATE_THRESHOLD", 120),
        ("REDIS_URL", "http://localhost:6379"),
        ("DB_URL", "oracle://x"),
        ("REDIS_SENTINELS", ["localhost"]),
        ("REDIS_SENTINEL_RETRY_SECONDS", -1),
        ("API_PERMISSION_CLASSES", [""]),
        ("JOB_RETRY", -1),
    ],
)
def test_impossible_values(settings, key, value) -> None:
    settings.REARQ_TASKS = {key: value}
    assert [e.id for e in check_settings()] == ["rearq_tasks.E004"]


def test_relations_between_settings(settings) -> None:
    assert ids({"PAGE_SIZE": 600}, settings) == ["rearq_tasks.E005"]
    assert ids({"RETENTION_DAYS": 30, "FAILED_RETENTION_DAYS": 7}, settings) == ["rearq_tasks.E005"]
    assert ids({"RETENTION_DAYS": 30, "FAILED_RETENTION_DAYS": 90}, settings) == []


def test_password_never_shown(settings) -> None:
    settings.REARQ_TASKS = {"REDIS_URL": "http://user:s3cr3t-pw@host:6379/0"}
    errors = check_settings()
    assert errors and all("s3cr3t-pw" not in e.msg + (e.hint or "") for e in errors)


@pytest.mark.django_db  # Django 6.1's JSONField check asks the database what it supports
def test_manage_py_check_fails_on_bad_settings(settings) -> None:
    settings.REARQ_TASKS = {"PAGE_SIZE": "lots"}
    with pytest.raises(SystemCheckError, match="rearq_tasks.E003"):
        call_command("check")


def test_every_setting_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    for key in SPEC:
        assert f"`{key}`" in doc, key


def _apps_without(*names: str) -> list[str]:
    from django.conf import settings as django_settings

    return [app for app in django_settings.INSTALLED_APPS if app not in names]


def test_unfold_missing_while_the_admin_is_used_is_an_error() -> None:
    from django.test import override_settings

    from rearq_tasks.conf.checks import check_unfold

    apps_ = _apps_without("unfold", "unfold.contrib.filters")
    with override_settings(INSTALLED_APPS=apps_):
        (error,) = check_unfold()
    assert error.id == "rearq_tasks.E006"
    assert '"unfold"' in error.hint


def test_unfold_after_the_admin_is_an_error() -> None:
    from django.test import override_settings

    from rearq_tasks.conf.checks import check_unfold

    apps_ = [*_apps_without("unfold"), "unfold"]
    with override_settings(INSTALLED_APPS=apps_):
        (error,) = check_unfold()
    assert error.id == "rearq_tasks.E007"


def test_unfold_checks_pass_when_ordered_or_without_the_admin() -> None:
    from django.test import override_settings

    from rearq_tasks.conf.checks import check_unfold

    assert check_unfold() == []
    apps_ = _apps_without("unfold", "unfold.contrib.filters", "django.contrib.admin")
    with override_settings(INSTALLED_APPS=apps_):
        assert check_unfold() == []


@pytest.mark.django_db
def test_manage_py_check_reports_a_missing_unfold() -> None:
    from django.test import override_settings

    with override_settings(INSTALLED_APPS=_apps_without("unfold", "unfold.contrib.filters")):
        with pytest.raises(SystemCheckError, match="rearq_tasks.E006"):
            call_command("check")
