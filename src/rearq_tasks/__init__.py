"""django-rearq-tasks: a complete, trustworthy record and view of every ReArq job.

The public helpers are imported lazily so that importing the package (settings files,
``INSTALLED_APPS``) never imports Django models or ReArq.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# The public import paths (docs/architecture.md lists them with the module each comes from).
_LAZY = {
    # settings
    "conf": "rearq_tasks.conf",
    # the ReArq client and what a Django process does with jobs
    "get_rearq_client": "rearq_tasks.queue.client",
    "instrument": "rearq_tasks.queue.client",
    "enqueue": "rearq_tasks.queue.jobs",
    "enqueue_sync": "rearq_tasks.queue.jobs",
    "retry_job": "rearq_tasks.queue.jobs",
    "cancel_job": "rearq_tasks.queue.jobs",
    "sync_task_logs": "rearq_tasks.queue.jobs",
    "ReArqUnavailable": "rearq_tasks.queue.loop",
    "get_capture_stats": "rearq_tasks.capture.counters",
    # the models
    "TaskLog": "rearq_tasks.models",
    "TaskEvent": "rearq_tasks.models",
    "AlertState": "rearq_tasks.models",
    # the health checks (django-health-check 4.x)
    "TaskQueue": "rearq_tasks.ops.health",
    "ReArqWorkers": "rearq_tasks.ops.health",
    "ReArqRedis": "rearq_tasks.ops.health",
    "HealthView": "rearq_tasks.ops.health",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rearq_tasks' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
