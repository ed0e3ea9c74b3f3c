"""Lifecycle capture: ReArq hooks -> Redis stream -> collector -> guarded TaskLog upserts.

See docs/capture.md. ``get_capture_stats()`` exposes this process's counters.
"""

from __future__ import annotations

from rearq_tasks.capture.counters import get_capture_stats

__all__ = ["get_capture_stats"]
