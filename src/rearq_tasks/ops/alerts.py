"""Alert rules over TaskLog, with de-duplication persisted in :class:`AlertState`.

:func:`run_alerts` evaluates the rules, decides per alert whether to notify (new, worse by
``ALERT_WORSEN_RATIO``, or the cooldown ran out), sends one digest per channel, sends a
"resolved" notice when an alert clears, and records what it sent so the next cron run (of
``manage.py check_task_alerts`` or a ReArq cron task) does not repeat it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from rearq_tasks.conf import conf
from rearq_tasks.models import AlertState
from rearq_tasks.ops.channels import Channel, ChannelError, configured_channels
from rearq_tasks.queries import ops as ops_queries

EXIT_OK, EXIT_FIRING, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Alert:
    """One rule breached for one subject (a task, a queue or the whole table)."""

    rule: str
    subject: str
    value: float
    threshold: float
    message: str
    details: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


@dataclass(frozen=True)
class Notification:
    """A message about one alert: it fires (new, worse, reminder) or it resolved."""

    status: str  # "firing" | "resolved"
    reason: str  # "new" | "worse" | "reminder" | "resolved"
    key: str
    rule: str
    message: str
    value: float | None
    threshold: float | None
    details: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return {"new": "FIRING", "worse": "WORSE", "reminder": "STILL FIRING"}.get(
            self.reason, "RESOLVED"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": list(self.details)}


@dataclass
class Context:
    """What the rules share within one run (the per-task window is read once)."""

    now: dt.datetime
    _tasks: list[ops_queries.TaskWindow] | None = None

    @property
    def period_minutes(self) -> int:
        return conf.ALERT_PERIOD_MINUTES

    def tasks(self) -> list[ops_queries.TaskWindow]:
        if self._tasks is None:
            since = self.now - dt.timedelta(minutes=self.period_minutes)
            self._tasks = ops_queries.per_task_window(since)
        return self._tasks


def threshold(task: str, key: str, default: float) -> float | None:
    """The task's override when there is one (None switches the rule off for it)."""
    overrides = conf.ALERT_TASK_OVERRIDES.get(task, {})
    return overrides[key] if key in overrides else default


def failure_rate_rule(ctx: Context) -> list[Alert]:
    alerts = []
    for row in ctx.tasks():
        limit = threshold(row.task_name, "FAILURE_RATE_THRESHOLD", conf.FAILURE_RATE_THRESHOLD)
        sample = threshold(row.task_name, "FAILURE_RATE_MIN_SAMPLE", conf.FAILURE_RATE_MIN_SAMPLE)
        rate = row.failure_rate
        ended = row.successful + row.failed  # the rate's denominator (canceled: neither)
        if limit is None or rate is None or ended < (sample or 0) or rate <= limit:
            continue
        alerts.append(
            Alert(
                "failure_rate",
                row.task_name,
                round(rate, 2),
                limit,
                f"{rate:.1f} % of {ended} finished jobs failed in the last "
                f"{ctx.period_minutes} min ({row.failed} failed; threshold {limit:g} %)",
                (f"latest error: {row.latest_error[:300]}",) if row.latest_error else (),
            )
        )
    return alerts


def avg_duration_rule(ctx: Context) -> list[Alert]:
    alerts = []
    for row in ctx.tasks():
        limit = threshold(row.task_name, "AVG_DURATION_SECONDS", conf.ALERT_AVG_DURATION_SECONDS)
        if limit is None or row.avg_duration_ms is None:
            continue
        seconds = row.avg_duration_ms / 1000
        if seconds > limit:
            alerts.append(
                Alert(
                    "avg_duration",
                    row.task_name,
                    round(seconds, 3),
                    limit,
                    f"average duration {seconds:.1f} s over {row.completed} jobs in the last "
                    f"{ctx.period_minutes} min (threshold {limit:g} s)",
                )
            )
    return alerts


def avg_retries_rule(ctx: Context) -> list[Alert]:
    alerts = []
    for row in ctx.tasks():
        limit = threshold(row.task_name, "AVG_RETRIES", conf.ALERT_AVG_RETRIES)
        if limit is None or row.avg_retries is None or row.avg_retries <= limit:
            continue
        alerts.append(
            Alert(
                "avg_retries",
                row.task_name,
                round(row.avg_retries, 2),
                limit,
                f"average {row.avg_retries:.1f} retries per job over {row.completed} jobs in the "
                f"last {ctx.period_minutes} min (threshold {limit:g})",
            )
        )
    return alerts


def stuck_rule(ctx: Context) -> list[Alert]:
    limit = conf.STUCK_AFTER_SECONDS
    counts = ops_queries.stuck_by_queue(limit)
    total = sum(counts.values())
    if not total:
        return []
    oldest = ops_queries.oldest_stuck(limit, 10)
    details = tuple(
        f"{row['job_id']}  {row['task_name']} on {row['queue_name']}, in progress since "
        f"{timezone.localtime(row['started']):%Y-%m-%d %H:%M:%S}"
        + (f" on {row['worker_id']}" if row["worker_id"] else "")
        for row in oldest
    )
    by_queue = ", ".join(f"{queue}: {n}" for queue, n in sorted(counts.items()))
    return [
        Alert(
            "stuck",
            "all",
            total,
            limit,
            f"{total} job(s) in progress for more than {limit} s ({by_queue}); "
            f"oldest {len(details)} listed",
            details,
        )
    ]


def backlog_rule(ctx: Context) -> list[Alert]:
    limit = conf.BACKLOG_THRESHOLD
    return [
        Alert("backlog", queue, count, limit, f"{count} jobs queued on {queue} (threshold {limit})")
        for queue, count in sorted(ops_queries.backlog_by_queue().items())
        if count > limit
    ]


RULES: dict[str, Callable[[Context], list[Alert]]] = {
    "failure_rate": failure_rate_rule,
    "stuck": stuck_rule,
    "backlog": backlog_rule,
    "avg_duration": avg_duration_rule,
    "avg_retries": avg_retries_rule,
}


@dataclass
class RunResult:
    """What one run found, sent and failed to send. ``exit_code``: 0 ok, 1 firing, 2 errors."""

    firing: list[Alert]
    notifications: list[Notification]
    suppressed: list[str]
    sent_to: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_ERROR
        return EXIT_FIRING if self.firing else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "firing": [
                {**asdict(a), "key": a.key, "details": list(a.details)} for a in self.firing
            ],
            "notifications": [n.as_dict() for n in self.notifications],
            "suppressed": self.suppressed,
            "sent_to": self.sent_to,
            "errors": self.errors,
            "notes": self.notes,
        }


def evaluate(rules: Iterable[str] | None = None, now: dt.datetime | None = None) -> list[Alert]:
    names = list(rules or RULES)
    unknown = [name for name in names if name not in RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    ctx = Context(now or timezone.now())
    return [alert for name in names for alert in RULES[name](ctx)]


def _decide(alert: Alert, state: AlertState | None, now: dt.datetime) -> Notification | None:
    def note(reason: str) -> Notification:
        return Notification(
            "firing", reason, alert.key, alert.rule, alert.message, alert.value,
            alert.threshold, alert.details,
        )  # fmt: skip

    if state is None or not state.firing or state.last_sent_at is None:
        return note("new")
    if state.sent_value and alert.value >= state.sent_value * conf.ALERT_WORSEN_RATIO:
        return note("worse")
    if now - state.last_sent_at >= dt.timedelta(seconds=conf.ALERT_COOLDOWN_SECONDS):
        return note("reminder")
    return None


def run_alerts(
    rules: Sequence[str] | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    channels: Sequence[Channel] | None = None,
) -> RunResult:
    """Evaluate, notify and record. A plain function: call it from a ReArq cron task too."""
    now = now or timezone.now()
    names = list(rules or RULES)
    alerts = evaluate(names, now)
    states = {s.key: s for s in AlertState.objects.filter(rule__in=names)}
    notifications: list[Notification] = []
    suppressed: list[str] = []
    for alert in alerts:
        decision = _decide(alert, states.get(alert.key), now)
        if decision is None:
            suppressed.append(alert.key)
        else:
            notifications.append(decision)
    current = {alert.key for alert in alerts}
    for state in states.values():
        if state.firing and state.key not in current:
            notifications.append(
                Notification(
                    "resolved",
                    "resolved",
                    state.key,
                    state.rule,
                    f"cleared (was: {state.message})",
                    None,
                    state.threshold,
                )  # fmt: skip
            )
    result = RunResult(alerts, notifications, suppressed, dry_run=dry_run)
    note = _overall_note(alerts, now) if "failure_rate" in names else None
    result.notes += [note] if note else []
    channels = configured_channels() if channels is None else channels
    if dry_run:
        # The same exit code as the real run would have, short of a channel failing.
        if result.notifications and not channels:
            result.errors.append(NO_CHANNEL)
        return result
    delivered = _deliver(result, channels)
    _record(alerts, notifications, states, delivered, now)
    return result


NO_CHANNEL = (
    "no alert channel configured: set ADMINS or ALERT_EMAIL_RECIPIENTS, "
    "ALERT_SLACK_WEBHOOK_URL or ALERT_WEBHOOK_URL"
)


def _overall_note(alerts: list[Alert], now: dt.datetime) -> str | None:
    """The health check judges all tasks together, the rule each task on its own: say so
    when the two disagree on the same rows."""
    if any(alert.rule == "failure_rate" for alert in alerts):
        return None
    rows = Context(now).tasks()
    failed = sum(row.failed for row in rows)
    ended = failed + sum(row.successful for row in rows)  # as the health check counts
    limit, sample = conf.FAILURE_RATE_THRESHOLD, conf.FAILURE_RATE_MIN_SAMPLE
    if not ended or ended < sample or 100 * failed / ended <= limit:
        return None
    return (
        f"all tasks together: {100 * failed / ended:.1f} % of {ended} finished jobs "
        f"failed in the last {conf.ALERT_PERIOD_MINUTES} min (above {limit:g} %, which the "
        "/health/ check reports), but the failure-rate rule judges each task on its own and "
        f"no task has at least {sample} finished jobs (FAILURE_RATE_MIN_SAMPLE) with a rate "
        "above its threshold"
    )


def _deliver(result: RunResult, channels: Sequence[Channel]) -> bool:
    if not result.notifications:
        return False
    if not channels:
        result.errors.append(NO_CHANNEL)
        return False
    for channel in channels:
        try:
            channel.send(result.notifications)
        except ChannelError as exc:
            result.errors.append(str(exc))
        else:
            result.sent_to.append(channel.name)
    return bool(result.sent_to)


def _record(
    alerts: list[Alert],
    notifications: list[Notification],
    states: dict[str, AlertState],
    delivered: bool,
    now: dt.datetime,
) -> None:
    """Persist what is firing; mark sent/resolved only when some channel took the message."""
    notified = {n.key for n in notifications}
    with transaction.atomic():
        for alert in alerts:
            state = states.get(alert.key) or AlertState(key=alert.key, rule=alert.rule)
            if not state.firing:
                state.first_seen_at, state.resolved_at = now, None
            state.firing = True
            state.value, state.threshold = alert.value, alert.threshold
            state.message = alert.message
            if delivered and alert.key in notified:
                state.last_sent_at, state.sent_value = now, alert.value
            state.save()
        if delivered:
            for n in notifications:
                if n.status == "resolved":
                    AlertState.objects.filter(key=n.key).update(
                        firing=False, resolved_at=now, last_sent_at=now, value=None, updated_at=now
                    )


def check_task_alerts() -> int:
    """For a ReArq cron task (wrap with ``sync_to_async``): run every rule, return the exit code."""
    return run_alerts().exit_code
