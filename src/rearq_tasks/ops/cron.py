"""Ready-made ReArq cron tasks for the alert rules and retention.

Importable before Django is set up (ReArq's CLI imports a tasks module first, the client's
startup sets Django up later): the modules that need the models are imported inside the
task functions, which run in a worker after its startup.
"""

from __future__ import annotations

from typing import Any

ALERTS_TASK_NAME = "rearq_tasks_check_task_alerts"
CLEANUP_TASK_NAME = "rearq_tasks_cleanup_task_logs"


class AlertDeliveryFailed(RuntimeError):
    """Alerts had to be sent and no channel took them: the cron job is stored as failed."""


async def check_task_alerts() -> str:
    """Run every alert rule as ``manage.py check_task_alerts`` does; raise on exit status 2."""
    from asgiref.sync import sync_to_async

    from rearq_tasks.ops.alerts import EXIT_ERROR, run_alerts

    result = await sync_to_async(run_alerts, thread_sensitive=True)()
    if result.exit_code == EXIT_ERROR:
        raise AlertDeliveryFailed("; ".join(result.errors))
    firing = ", ".join(alert.key for alert in result.firing) or "none"
    sent = ", ".join(result.sent_to) or "nothing"
    return f"exit {result.exit_code}; firing: {firing}; sent via: {sent}"


async def cleanup_task_logs() -> str:
    """Delete TaskLog rows past ``RETENTION_DAYS`` / ``FAILED_RETENTION_DAYS``."""
    from asgiref.sync import sync_to_async

    from rearq_tasks.ops.retention import purge

    result = await sync_to_async(purge, thread_sensitive=True)()
    return f"deleted {result.deleted} rows"


def register_cron_tasks(
    rearq: Any, alerts: str | None = "*/15 * * * *", cleanup: str | None = "30 3 * * *"
) -> None:
    """Register the two cron tasks on ``rearq`` (a ``None`` schedule leaves one out).

    Idempotent per client: a name already registered is kept.
    """
    for name, cron, function in (
        (ALERTS_TASK_NAME, alerts, check_task_alerts),
        (CLEANUP_TASK_NAME, cleanup, cleanup_task_logs),
    ):
        if cron and name not in rearq.task_map:
            rearq.task(cron=cron, name=name)(function)
