"""The example project's WSGI app for ``bench/export.py``: with ``REARQ_BENCH_EXPORT=reference``
the export encodes with :mod:`bench.export_reference` (the encoder before issue #17)."""

from __future__ import annotations

import os

from example_project.wsgi import application

if os.environ.get("REARQ_BENCH_EXPORT") == "reference":
    from bench import export_reference
    from rearq_tasks.queries import export

    export.stream = export_reference.stream

__all__ = ["application"]
