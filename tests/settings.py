"""Test settings. ``REARQ_TASKS_TEST_DB`` picks the Django database: sqlite, postgres or mysql."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import VAR_DIR

DB_KIND = os.environ.get("REARQ_TASKS_TEST_DB", "sqlite")
# Distinct names let several checkouts run their suites against the same servers at once.
DB_NAME = os.environ.get("REARQ_TASKS_TEST_DB_NAME", "rearq_tasks")
_DATABASES = {
    # A file, not memory, for the test database too: worker processes must see it.
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / f"{DB_NAME}.sqlite3"),
        "TEST": {"NAME": str(VAR_DIR / f"test_{DB_NAME}.sqlite3")},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    },
    "mysql": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": DB_NAME,
        "USER": "root",
        "PASSWORD": "",
        "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
        "PORT": os.environ.get("MYSQL_PORT", "3306"),
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    },
}
if DB_KIND not in _DATABASES:
    raise RuntimeError(f"REARQ_TASKS_TEST_DB must be one of {sorted(_DATABASES)}, not {DB_KIND!r}")
DATABASES = {"default": _DATABASES[DB_KIND]}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TIME_ZONE = "Europe/Berlin"
REARQ_TASKS = {
    "REDIS_URL": os.environ.get("REARQ_TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    # The retry defaults of the integration workers: the test process's client (built by
    # whichever test comes first, in random order) stores them on the jobs it enqueues.
    "JOB_RETRY": 2,
    "JOB_RETRY_AFTER": 1,
    "DB_URL": os.environ.get(
        "REARQ_TASKS_TEST_REARQ_DB_URL",
        f"sqlite://{VAR_DIR / f'{DB_NAME}-{DB_KIND}-rearq.sqlite3'}",
    ),
    # The documented token opt-in (rest_framework.authtoken is in the example project's apps).
    "API_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
}
