"""Settings of the capture benchmark's processes: PostgreSQL for Django and ReArq alike."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

BENCH_DB = os.environ.get("BENCH_DB_NAME", "rt_capture_bench")
DEBUG = False
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": BENCH_DB,
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "CONN_MAX_AGE": None,
    }
}
REARQ_TASKS = {
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    "DB_URL": f"postgres://{os.environ.get('PGUSER', 'postgres')}@127.0.0.1:5432/{BENCH_DB}",
    "JOB_RETRY": 0,
    "TASK_MODULES": [],
    "CAPTURE_COLLECTOR": os.environ.get("BENCH_COLLECTOR", "embedded"),
    "CAPTURE_ENABLED": os.environ.get("BENCH_CAPTURE", "1") == "1",
    # BENCH_FLUSH_MS: the emitter's flush interval (default 50 ms, the setting's default).
    "CAPTURE_FLUSH_INTERVAL_MS": int(os.environ.get("BENCH_FLUSH_MS", "50")),
}
