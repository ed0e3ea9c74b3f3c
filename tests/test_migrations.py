from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings


@pytest.mark.django_db
def test_migrations_are_complete() -> None:
    out = StringIO()
    call_command("makemigrations", "tasks", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
@override_settings(DEFAULT_AUTO_FIELD="django.db.models.AutoField")
def test_migrations_do_not_depend_on_the_project_auto_field() -> None:
    out = StringIO()
    call_command("makemigrations", "tasks", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
