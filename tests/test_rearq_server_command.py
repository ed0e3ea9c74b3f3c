"""``manage.py rearq_server`` binds ReArq's unauthenticated UI to loopback unless told."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.fixture
def served(monkeypatch) -> list[dict]:
    """uvicorn.run recorded instead of serving; ReArq's app keeps its own hook lists."""
    import uvicorn
    from rearq.server.app import app

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(app.router, "on_startup", [])
    monkeypatch.setattr(app.router, "on_shutdown", [])
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "ui.example.com"])
def test_a_non_loopback_host_is_refused_naming_the_risk(served, host) -> None:
    with pytest.raises(CommandError) as exc:
        call_command("rearq_server", "--host", host)
    message = str(exc.value)
    assert f"--host {host!r}" in message
    assert "no authentication" in message and "arguments" in message
    assert "--allow-remote" in message
    assert served == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_served(served, host) -> None:
    call_command("rearq_server", "--host", host, "--port", "7399")
    assert served == [{"host": host.strip("[]"), "port": 7399, "log_level": "info"}]


def test_allow_remote_serves_any_host(served) -> None:
    call_command("rearq_server", "--host", "0.0.0.0", "--allow-remote")
    assert served == [{"host": "0.0.0.0", "port": 7380, "log_level": "info"}]
