"""Django settings of every process of the soak (``bench/soakkit.py``), from environment
variables the soak sets: the Django database may sit behind the soak's fault proxy."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("SOAK_DB_NAME", "rt_soak"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("SOAK_DB_PORT", "5432"),
        "OPTIONS": {"connect_timeout": 3},
    }
}
REARQ_TASKS = {
    "REDIS_URL": os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "DB_URL": os.environ.get(
        "SOAK_REARQ_DB_URL", "postgres://postgres@127.0.0.1:5432/rt_soak_rearq"
    ),
    "TASK_MODULES": ["bench.soak_tasks"],
    "JOB_RETRY": 2,
    "JOB_RETRY_AFTER": 1,
    "JOB_TIMEOUT": int(os.environ.get("SOAK_JOB_TIMEOUT", "5")),
    "LOST_JOB_GRACE_SECONDS": 0,
    "SYNC_TASK_LOGS_CRON": None,
    "CAPTURE_STREAM_MAXLEN": int(os.environ.get("SOAK_STREAM_MAXLEN", "1000000")),
    "CAPTURE_BUFFER_SIZE": int(os.environ.get("SOAK_BUFFER_SIZE", "10000")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rearq_tasks": {"handlers": ["console"], "level": "INFO"}},
}
