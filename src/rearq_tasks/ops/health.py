"""django-health-check 4.x checks for ReArq: the job table, the workers and their Redis.

Add them to :class:`HealthView` (django-health-check's view, minus an e-mail per request)::

    HealthView.as_view(checks=[
        "health_check.checks.Database",
        "rearq_tasks.ops.health.TaskQueue",
        "rearq_tasks.ops.health.ReArqWorkers",
        "rearq_tasks.ops.health.ReArqRedis",
    ])

Thresholds are dataclass fields defaulting to ``REARQ_TASKS`` (read when the check is built,
so ``override_settings`` applies); pass ``("rearq_tasks.ops.health.TaskQueue", {...})`` to override.
Each check warns (``ServiceWarning``) at ``warning_ratio`` of a threshold and is unavailable
past it. Messages carry figures and thresholds, never URLs or credentials.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response
from health_check.base import HealthCheck
from health_check.exceptions import HealthCheckException, ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView

from rearq_tasks import queries
from rearq_tasks.conf import conf, redact_url
from rearq_tasks.models import DEFERRED, TaskLog
from rearq_tasks.queries.ops import backlog_by_queue
from rearq_tasks.queue.liveness import read_workers, redis_client


def _seconds(value: dt.timedelta | int | float) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _releases_connections(run: Callable[[Any], None]) -> Callable[[Any], None]:
    """HealthCheckView runs sync checks in executor threads no request cycle cleans up:
    give their database connections back like ``request_finished`` would."""

    @functools.wraps(run)
    def wrapper(self: Any) -> None:
        try:
            run(self)
        finally:
            if threading.current_thread() is not threading.main_thread():
                close_old_connections()

    return wrapper


def _unreachable(exc: Exception) -> str:
    return f"ReArq's Redis is unreachable ({type(exc).__name__})"


def _raise_worst(problems: list[HealthCheckException]) -> None:
    """Report every problem at once, at the level of the worst one."""
    if not problems:
        return
    message = "; ".join(problem.message for problem in problems)
    if any(isinstance(problem, ServiceUnavailable) for problem in problems):
        raise ServiceUnavailable(message)
    raise ServiceWarning(message)


@dataclasses.dataclass
class TaskQueue(HealthCheck):
    """Stuck jobs, the failure rate of the last hour and the queued backlog, from TaskLog.

    Three cheap indexed queries. Warning at ``warning_ratio`` × each threshold, unavailable
    beyond it.
    """

    stuck_after: dt.timedelta = dataclasses.field(
        default_factory=lambda: dt.timedelta(seconds=conf.STUCK_AFTER_SECONDS)
    )
    failure_rate_threshold: float = dataclasses.field(
        default_factory=lambda: conf.FAILURE_RATE_THRESHOLD
    )
    failure_rate_min_sample: int = dataclasses.field(
        default_factory=lambda: conf.FAILURE_RATE_MIN_SAMPLE
    )
    backlog_threshold: int = dataclasses.field(default_factory=lambda: conf.BACKLOG_THRESHOLD)
    period: dt.timedelta = dataclasses.field(default=dt.timedelta(hours=1), repr=False)
    warning_ratio: float = dataclasses.field(default=0.5, repr=False)

    @_releases_connections
    def run(self) -> None:
        problems: list[HealthCheckException] = []
        self._check_stuck(problems)
        self._check_failure_rate(problems)
        self._check_backlog(problems)
        _raise_worst(problems)

    def _check_stuck(self, problems: list[HealthCheckException]) -> None:
        limit = _seconds(self.stuck_after)
        stuck = TaskLog.objects.stuck(dt.timedelta(seconds=limit)).count()
        if stuck:
            problems.append(
                ServiceUnavailable(
                    f"{stuck} job(s) in progress for more than {limit:g} s (threshold {limit:g} s)"
                )
            )
            return
        early = limit * self.warning_ratio
        slow = TaskLog.objects.stuck(dt.timedelta(seconds=early)).count()
        if slow:
            problems.append(
                ServiceWarning(
                    f"{slow} job(s) in progress for more than {early:g} s "
                    f"(stuck threshold {limit:g} s)"
                )
            )

    def _check_failure_rate(self, problems: list[HealthCheckException]) -> None:
        summary = queries.summary(queries.Scope.period(self.period))
        failed, rate = summary["failed"], summary["failure_rate"]
        ended = summary["successful"] + failed  # the rate's denominator (canceled: neither)
        if ended < self.failure_rate_min_sample:
            return
        hours = _seconds(self.period) / 3600
        text = (
            f"failure rate {rate:.1f} % ({failed}/{ended} jobs of all tasks together in "
            f"the last {hours:g} h; check_task_alerts judges each task on its own, with at "
            f"least {self.failure_rate_min_sample} finished jobs per task)"
        )
        if rate > self.failure_rate_threshold:
            problems.append(ServiceUnavailable(f"{text} above {self.failure_rate_threshold:g} %"))
        elif rate > self.failure_rate_threshold * self.warning_ratio:
            problems.append(
                ServiceWarning(
                    f"{text} above {self.failure_rate_threshold * self.warning_ratio:g} % "
                    f"(threshold {self.failure_rate_threshold:g} %)"
                )
            )

    def _check_backlog(self, problems: list[HealthCheckException]) -> None:
        backlog = backlog_by_queue()
        if not backlog:
            return
        queue, count = max(backlog.items(), key=lambda item: (item[1], item[0]))
        if count > self.backlog_threshold:
            problems.append(
                ServiceUnavailable(
                    f"{count} jobs queued on {queue!r} (threshold {self.backlog_threshold})"
                )
            )
        elif count > self.backlog_threshold * self.warning_ratio:
            problems.append(
                ServiceWarning(
                    f"{count} jobs queued on {queue!r} (warning above "
                    f"{self.backlog_threshold * self.warning_ratio:g}, "
                    f"threshold {self.backlog_threshold})"
                )
            )


@dataclasses.dataclass
class ReArqWorkers(HealthCheck):
    """Live ReArq workers, from the heartbeats in ``rearq:worker``.

    Unavailable when no worker is alive or a required queue has none (``queues``, default
    ``WORKER_QUEUES``). Warns when queued jobs sit on a queue no live worker reads, and
    when the timer is down while cron tasks are registered or retries/deferred jobs wait
    (ReArq moves them back to their queue only from the timer).
    """

    queues: tuple[str, ...] | None = dataclasses.field(
        default_factory=lambda: tuple(conf.WORKER_QUEUES or ())
    )
    stale_after: dt.timedelta = dataclasses.field(
        default_factory=lambda: dt.timedelta(seconds=conf.WORKER_STALE_SECONDS), repr=False
    )
    expect_timer: bool | None = dataclasses.field(default=None, repr=False)
    timeout: dt.timedelta = dataclasses.field(
        default_factory=lambda: dt.timedelta(seconds=conf.REDIS_TIMEOUT_SECONDS), repr=False
    )

    @_releases_connections
    def run(self) -> None:
        required = tuple(self.queues or ())
        waiting = backlog_by_queue()
        client = redis_client(self.timeout.total_seconds())
        try:
            state = read_workers(
                client,
                stale_after=_seconds(self.stale_after),
                queues=(*required, *waiting),
            )
        except redis.RedisError as exc:
            raise ServiceUnavailable(_unreachable(exc)) from exc
        finally:
            client.close()
        dead = len(state.dead_workers)
        dead_text = f" ({dead} stale heartbeat(s) of dead workers)" if dead else ""
        if not state.live_workers:
            raise ServiceUnavailable(f"no live ReArq worker{dead_text}")
        by_queue = state.live_by_queue()
        missing = [queue for queue in required if not by_queue.get(queue)]
        if missing:
            raise ServiceUnavailable(
                f"no live worker for queue(s) {', '.join(missing)}; "
                f"{len(state.live_workers)} live worker(s){dead_text}"
            )
        problems: list[HealthCheckException] = []
        orphaned = {q: n for q, n in waiting.items() if not by_queue.get(q)}
        if orphaned:
            listed = ", ".join(f"{q} ({n} queued)" for q, n in sorted(orphaned.items()))
            problems.append(ServiceWarning(f"no live worker reads queue(s) {listed}"))
        if not state.timer_alive and self._timer_needed():
            problems.append(
                ServiceWarning(
                    "the ReArq timer is down while cron tasks or deferred/retried jobs exist"
                )
            )
        _raise_worst(problems)

    def _timer_needed(self) -> bool:
        if self.expect_timer is not None:
            return self.expect_timer
        from rearq.task import CronTask

        if any(not task.is_builtin for task in CronTask.get_cron_tasks().values()):
            return True
        return TaskLog.objects.filter(DEFERRED).exists()


@dataclasses.dataclass
class ReArqRedis(HealthCheck):
    """ReArq's Redis answers PING within ``timeout``; its URL shows with the password masked."""

    timeout: dt.timedelta = dataclasses.field(
        default_factory=lambda: dt.timedelta(seconds=conf.REDIS_TIMEOUT_SECONDS), repr=False
    )

    @property
    def target(self) -> str:
        """Where it pings, password hidden: ``redis://:***@host:6379/0`` or the sentinels."""
        if conf.REDIS_SENTINELS:
            return f"sentinels {','.join(conf.REDIS_SENTINELS)} ({conf.REDIS_SENTINEL_MASTER})"
        return redact_url(conf.REDIS_URL) or ""

    def __repr__(self) -> str:
        return f"ReArqRedis({self.target})"

    @property
    def labels(self) -> dict[str, str]:
        return super().labels | {"target": self.target}

    def run(self) -> None:
        client = redis_client(self.timeout.total_seconds())
        try:
            client.ping()
        except redis.TimeoutError as exc:
            raise ServiceUnavailable(
                f"ReArq's Redis did not answer within {self.timeout.total_seconds():g} s"
            ) from exc
        except redis.AuthenticationError as exc:
            raise ServiceUnavailable("ReArq's Redis refused the credentials") from exc
        except redis.RedisError as exc:
            raise ServiceUnavailable(_unreachable(exc)) from exc
        finally:
            client.close()


health_logger = logging.getLogger("rearq_tasks.health")


class HealthView(HealthCheckView):
    """django-health-check's view, but a failing check is a 503 that mails nobody.

    The upstream view answers 500, which Django's ``django.request`` logger records as an
    error, so ``AdminEmailHandler`` mails ADMINS on every probe of an unhealthy site (any
    5xx would). Here the answer is ``503 Service Unavailable`` with the checks' messages in
    the body, logged once as a *warning* on ``rearq_tasks.health``; Django's handler sees
    the response as already logged and adds nothing. Healthy answers and the
    openmetrics/atom/rss formats (always 200) are unchanged.
    """

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
            failing = "; ".join(
                f"{type(result.check).__name__}: {result.error}"
                for result in self.results
                if result.error
            )
            log_response(
                "Health check failed: %s (%s)",
                request.path,
                failing,
                response=response,
                request=request,
                logger=health_logger,
                level="warning",
            )
        return response
