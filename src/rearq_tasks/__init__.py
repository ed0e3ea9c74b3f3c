"""django-rearq-tasks: a complete, trustworthy record and view of every ReArq job.

The public helpers are imported lazily so that importing the package (settings files,
``INSTALLED_APPS``) never imports Django models or ReArq.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["enqueue", "enqueue_sync", "get_capture_stats", "get_rearq_client", "instrument"]

_LAZY = {
    "get_rearq_client": "rearq_tasks.queue.client",
    "instrument": "rearq_tasks.queue.client",
    "enqueue": "rearq_tasks.queue.jobs",
    "enqueue_sync": "rearq_tasks.queue.jobs",
    "get_capture_stats": "rearq_tasks.capture.counters",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rearq_tasks' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
