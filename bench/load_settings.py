"""Settings of the load benchmark's processes: the demo project, capture switchable by env."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
REARQ_TASKS = {**REARQ_TASKS, "CAPTURE_ENABLED": os.environ.get("BENCH_CAPTURE", "1") == "1"}  # noqa: F405
