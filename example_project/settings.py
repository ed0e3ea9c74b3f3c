"""Settings of the demo project: wired the way a user would wire django-rearq-tasks.

The database comes from ``DATABASE_URL`` (SQLite by default); ReArq's Redis and its own
Tortoise database from ``REARQ_REDIS_URL`` / ``REARQ_DB_URL``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.templatetags.static import static
from django.urls import reverse_lazy

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("REARQ_TASKS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only for token authentication of the API
    "django_filters",
    "health_check",
    "rearq_tasks",
    "example_project.demo",  # the demo's commands: demo_setup, demo_jobs
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'demo.sqlite3'}"),
        conn_max_age=60,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"
# Error reports (DEBUG pages, e-mails to ADMINS) mask URL passwords and REARQ_TASKS secrets.
DEFAULT_EXCEPTION_REPORTER_FILTER = "rearq_tasks.conf.reporting.SafeExceptionReporterFilter"

REARQ_TASKS = {
    "REDIS_URL": os.environ.get("REARQ_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "DB_URL": os.environ.get("REARQ_DB_URL", f"sqlite://{VAR_DIR / 'rearq.sqlite3'}"),
    "JOB_RETRY": 2,
    "JOB_RETRY_AFTER": 2,
    "API_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "TASK_MODULES": ["example_project.tasks"],
    "SYNC_TASK_LOGS_CRON": "*/10 * * * *",
}

UNFOLD = {
    "SITE_TITLE": "ReArq tasks",
    "SITE_HEADER": "ReArq tasks",
    # An explicit icon: otherwise every browser asks for /favicon.ico and logs a 404.
    "SITE_FAVICONS": [
        {
            "rel": "icon",
            "type": "image/svg+xml",
            "href": lambda request: static("rearq_tasks/favicon.svg"),
        }
    ],
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": True,
        "navigation": [
            {
                "title": "Tasks",
                "items": [
                    {
                        "title": "Dashboard",
                        "icon": "monitoring",
                        "link": reverse_lazy("admin:tasks_tasklog_dashboard"),
                    },
                    {
                        "title": "Workers",
                        "icon": "dns",
                        "link": reverse_lazy("admin:tasks_tasklog_workers"),
                    },
                    {
                        "title": "Task logs",
                        "icon": "list",
                        "link": reverse_lazy("admin:tasks_tasklog_changelist"),
                    },
                ],
            }
        ],
    },
}
