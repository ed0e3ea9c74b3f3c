"""Settings of the worker processes the integration tests start.

Same as the test settings, but pointed at the test database the test process created
(``REARQ_TASKS_WORKER_DB_NAME``), optionally through a proxy (``..._DB_HOST``/``_PORT``).
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, REARQ_TASKS

DATABASES = {"default": dict(DATABASES["default"])}
DATABASES["default"]["NAME"] = os.environ["REARQ_TASKS_WORKER_DB_NAME"]
if os.environ.get("REARQ_TASKS_WORKER_DB_PORT"):
    DATABASES["default"]["HOST"] = "127.0.0.1"
    DATABASES["default"]["PORT"] = os.environ["REARQ_TASKS_WORKER_DB_PORT"]
REARQ_TASKS = {
    **REARQ_TASKS,
    "TASK_MODULES": ["tests.integration.jobs"],
    "JOB_RETRY": 2,
    "JOB_RETRY_AFTER": 1,
    "CAPTURE_COLLECTOR": os.environ.get("REARQ_TASKS_WORKER_COLLECTOR", "embedded"),
}
if os.environ.get("REARQ_TASKS_WORKER_REDIS_URL"):  # a private redis-server (test_timer_process)
    REARQ_TASKS["REDIS_URL"] = os.environ["REARQ_TASKS_WORKER_REDIS_URL"]
if os.environ.get("REARQ_TASKS_WORKER_SENTINELS"):  # Redis through Sentinel (test_sentinel.py)
    REARQ_TASKS["REDIS_SENTINELS"] = os.environ["REARQ_TASKS_WORKER_SENTINELS"].split(",")
    REARQ_TASKS["REDIS_SENTINEL_MASTER"] = os.environ["REARQ_TASKS_WORKER_SENTINEL_MASTER"]
for _name in ("CAPTURE_STREAM_MAXLEN", "CAPTURE_BUFFER_SIZE", "OPERATION_CHUNK_SIZE"):
    if os.environ.get(f"REARQ_TASKS_WORKER_{_name}"):
        REARQ_TASKS[_name] = int(os.environ[f"REARQ_TASKS_WORKER_{_name}"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rearq_tasks": {"handlers": ["console"], "level": "INFO"}},
}
