"""The token snippet of docs/api.md, read from the file, admits both of its examples."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from harness.factories import staff_viewer

DOC = Path(__file__).parent.parent / "docs" / "api.md"


def token_snippet() -> dict:
    section = DOC.read_text().split("### Token authentication", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {"INSTALLED_APPS": []}
    exec(code, namespace)  # the settings a reader copies
    assert "rest_framework.authtoken" in namespace["INSTALLED_APPS"]
    return namespace["REARQ_TASKS"]


@pytest.mark.django_db
def test_the_documented_token_settings_admit_token_and_basic(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, **token_snippet()}
    user = staff_viewer(username="ops")
    user.set_password("password")
    user.save()
    token = Token.objects.create(user=user)
    url = "/cfg/tasks/logs/stats/?period_hours=24"
    by_token = Client().get(url, HTTP_AUTHORIZATION=f"Token {token.key}")
    basic = base64.b64encode(b"ops:password").decode()
    by_basic = Client().get(url, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert (by_token.status_code, by_basic.status_code) == (200, 200)


def test_the_example_project_uses_the_documented_classes() -> None:
    from example_project import settings as example

    documented = token_snippet()["API_AUTHENTICATION_CLASSES"]
    assert example.REARQ_TASKS["API_AUTHENTICATION_CLASSES"] == documented
