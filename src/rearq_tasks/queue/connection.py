"""Redis clients on ReArq's own server, by URL or through Sentinel, built one way."""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio.client import Redis as AsyncRedis
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel

from rearq_tasks.conf import conf, redact_url
from rearq_tasks.queue.keys import sentinel_nodes


def make_redis(rearq: Any) -> AsyncRedis:
    """An asyncio client to the same server as ``rearq`` (URL or sentinels).

    A dead host fails in seconds instead of hanging a web request or a worker's shutdown.
    Through sentinels a command whose connection is lost is retried on a new connection, to
    whichever primary the sentinels name by then: a failover closes every client of the old
    primary, and ReArq's worker loop ends on the first error it sees.
    """
    if getattr(rearq, "sentinels", None):
        sentinel = AsyncSentinel(
            sentinel_nodes(rearq.sentinels), decode_responses=True, socket_connect_timeout=5
        )
        return sentinel.master_for(rearq.sentinel_master, **failover_retry())
    pool = ConnectionPool.from_url(rearq.redis_url, decode_responses=True, socket_connect_timeout=5)
    return AsyncRedis(connection_pool=pool)


def failover_retry(seconds: int | None = None) -> dict[str, Any]:
    """Client options that retry lost connections for about ``seconds``
    (``REDIS_SENTINEL_RETRY_SECONDS``): waits of 0.2, 0.4, 0.8 s, then 1 s each."""
    seconds = conf.REDIS_SENTINEL_RETRY_SECONDS if seconds is None else seconds
    if seconds <= 0:
        return {}
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), seconds + 2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def _client_options(timeout: float | None) -> dict[str, Any]:
    timeout = conf.REDIS_TIMEOUT_SECONDS if timeout is None else timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
        "retry_on_timeout": False,
    }


def redis_client(timeout: float | None = None) -> redis.Redis:
    """A short-timeout sync client on ReArq's Redis (URL or sentinels from settings)."""
    options = _client_options(timeout)
    sentinels = conf.REDIS_SENTINELS
    if sentinels:
        return Sentinel(sentinel_nodes(sentinels), **options).master_for(
            conf.REDIS_SENTINEL_MASTER, **options
        )
    return redis.Redis.from_url(conf.REDIS_URL, **options)


def async_redis_client(timeout: float | None = None) -> AsyncRedis:
    """:func:`redis_client` for asyncio code (an ASGI view): same server, same timeouts."""
    options = _client_options(timeout)
    sentinels = conf.REDIS_SENTINELS
    if sentinels:
        return AsyncSentinel(sentinel_nodes(sentinels), **options).master_for(
            conf.REDIS_SENTINEL_MASTER, **options
        )
    return AsyncRedis.from_url(conf.REDIS_URL, **options)


_LOCAL = {"localhost", "127.0.0.1", "::1"}


def _server(url: str) -> tuple[str, int, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or parts.path  # unix:///path/to/socket
    host = "localhost" if host in _LOCAL else host
    db = parts.path.strip("/") if parts.hostname else ""
    return host, parts.port or 6379, db or "0"


def client_mismatch(rearq: Any) -> str | None:
    """Why ``rearq`` uses another Redis than ``REARQ_TASKS`` (None when it is the same one).

    Capture writes through the client's own Redis, while Retry/Cancel, health and metrics
    read ``REARQ_TASKS``: two servers would make each see only half of the picture.
    """
    theirs = getattr(rearq, "sentinels", None)
    mine = conf.REDIS_SENTINELS
    if theirs or mine:
        same = sorted(sentinel_nodes(theirs or [])) == sorted(sentinel_nodes(mine or [])) and (
            getattr(rearq, "sentinel_master", None) == conf.REDIS_SENTINEL_MASTER
        )
        shown = f"sentinels {list(theirs or [])!r}"
    else:
        url = getattr(rearq, "redis_url", None) or ""
        same = _server(url) == _server(conf.REDIS_URL)
        shown = str(redact_url(url))
    if same:
        return None
    return (
        f"this ReArq client uses Redis {shown}, but REARQ_TASKS points elsewhere: capture "
        "writes through the client's Redis while Retry/Cancel, health checks and metrics use "
        "REARQ_TASKS' (REDIS_URL or REDIS_SENTINELS). Build the client with "
        "get_rearq_client(), or give REARQ_TASKS the same Redis."
    )
