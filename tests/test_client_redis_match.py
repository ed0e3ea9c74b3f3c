"""A custom client instrumented with another Redis than REARQ_TASKS is pointed out."""

from __future__ import annotations

import pytest

from rearq_tasks.queue.connection import client_mismatch


def client(**options):
    from rearq import ReArq

    return ReArq(logs_dir=None, **options)


def test_the_same_server_spelled_differently_matches(settings) -> None:
    settings.REARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/4"}
    assert client_mismatch(client(redis_url="redis://localhost:6379/4")) is None
    assert client_mismatch(client(redis_url="redis://localhost/4")) is None


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/5", "redis://other:6379/4"])
def test_another_redis_is_a_mismatch(settings, url: str) -> None:
    settings.REARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/4"}
    problem = client_mismatch(client(redis_url=url))
    assert problem and "Retry/Cancel" in problem


def test_sentinels_must_match_too(settings) -> None:
    settings.REARQ_TASKS = {"REDIS_SENTINELS": ["s1:26379"], "REDIS_SENTINEL_MASTER": "m"}
    assert client_mismatch(client(sentinels=[("s1", 26379)], sentinel_master="m")) is None
    assert client_mismatch(client(sentinels=[("s2", 26379)], sentinel_master="m"))
    assert client_mismatch(client(redis_url="redis://127.0.0.1:6379/0"))


def test_instrument_warns_with_the_check_id(settings) -> None:
    from rearq_tasks.queue.client import instrument

    settings.REARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/4"}
    with pytest.warns(RuntimeWarning, match="rearq_tasks.W002"):
        instrument(client(redis_url="redis://elsewhere:6379/0"))


def test_the_password_is_not_shown(settings) -> None:
    settings.REARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/4"}
    problem = client_mismatch(client(redis_url="redis://:pw77@elsewhere:6379/0"))
    assert problem and "pw77" not in problem
