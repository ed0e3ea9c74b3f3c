"""Worker settings with an invalid ``REARQ_TASKS`` value: every worker must refuse them."""

from __future__ import annotations

from tests.integration.worker_settings import *  # noqa: F403
from tests.integration.worker_settings import REARQ_TASKS

REARQ_TASKS = {**REARQ_TASKS, "PAGE_SIZE": "lots"}
