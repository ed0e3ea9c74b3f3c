"""How the Redis clients on ReArq's server are built (by URL or through Sentinel)."""

from __future__ import annotations

from types import SimpleNamespace

from redis.exceptions import ConnectionError, TimeoutError

from rearq_tasks.queue.connection import make_redis


def _rearq(**options: object) -> SimpleNamespace:
    return SimpleNamespace(**{"redis_url": "redis://127.0.0.1:1/0", "sentinels": None, **options})


def test_sentinel_client_retries_lost_connections_for_the_configured_time(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_SENTINEL_RETRY_SECONDS": 12}
    client = make_redis(_rearq(sentinels=["127.0.0.1:26379"], sentinel_master="mymaster"))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["retry"]._retries == 14  # waits of 0.2 + 0.4 + 0.8 s, then 1 s each
    assert set(kwargs["retry_on_error"]) == {ConnectionError, TimeoutError}
    assert client.connection_pool.service_name == "mymaster"


def test_sentinel_retry_can_be_turned_off(settings) -> None:
    settings.REARQ_TASKS = {**settings.REARQ_TASKS, "REDIS_SENTINEL_RETRY_SECONDS": 0}
    client = make_redis(_rearq(sentinels=["127.0.0.1:26379"], sentinel_master="mymaster"))
    assert "retry" not in client.connection_pool.connection_kwargs


def test_url_client_fails_fast_without_retries() -> None:
    """A restart of a single Redis is not followed: capture buffers, reconcile repairs."""
    client = make_redis(_rearq())
    assert "retry" not in client.connection_pool.connection_kwargs
