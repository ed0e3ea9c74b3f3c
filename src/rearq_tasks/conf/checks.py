"""System checks for ``REARQ_TASKS``: bad settings fail at ``manage.py check``, not at first use."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from rearq_tasks.conf import SETTING_NAME, SPEC, Option, redact_url, user_settings
from rearq_tasks.conf.reporting import SafeExceptionReporterFilter, redact_value


def _type_ok(value: Any, option: Option) -> bool:
    if value is None:
        return option.nullable
    if isinstance(value, bool) and bool not in option.types:
        return False
    return isinstance(value, option.types)


def _shown(value: Any, option: Option | None = None) -> str:
    if option is not None and option.secret:
        return "'***'"
    return repr(redact_value(value))


@register(Tags.compatibility)
def check_settings(**kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, None)
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [
            Error(
                f"{SETTING_NAME} must be a dict, not {type(raw).__name__}.",
                hint=f"Set {SETTING_NAME} = {{...}} or remove it to use the defaults.",
                id="rearq_tasks.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for key in user_settings():
        if key not in SPEC:
            close = difflib.get_close_matches(str(key), SPEC, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See docs/settings.md."
            errors.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] is not a known setting.",
                    hint=hint,
                    id="rearq_tasks.E002",
                )
            )
    valid: dict[str, Any] = {}
    for key, option in SPEC.items():
        if key not in raw:
            continue
        value = raw[key]
        if not _type_ok(value, option):
            accepted = " or ".join(t.__name__ for t in option.types)
            if option.nullable:
                accepted += " or None"
            errors.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] must be {accepted}, not {type(value).__name__} "
                    f"({_shown(value, option)}).",
                    hint=f"{option.doc} Default: {option.default!r}.",
                    id="rearq_tasks.E003",
                )
            )
            continue
        problem = option.validate(value) if option.validate and value is not None else None
        if problem:
            errors.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] {problem} (got {_shown(value, option)}).",
                    hint=f"{option.doc} Default: {option.default!r}.",
                    id="rearq_tasks.E004",
                )
            )
            continue
        valid[key] = value
    errors.extend(_check_relations(valid))
    return errors


def _check_relations(valid: Mapping[str, Any]) -> list[CheckMessage]:
    def value(key: str) -> Any:
        return valid.get(key, SPEC[key].default)

    errors: list[CheckMessage] = []
    if value("PAGE_SIZE") > value("MAX_PAGE_SIZE"):
        errors.append(
            Error(
                f"{SETTING_NAME}['PAGE_SIZE'] ({value('PAGE_SIZE')}) is larger than "
                f"MAX_PAGE_SIZE ({value('MAX_PAGE_SIZE')}).",
                hint="Raise MAX_PAGE_SIZE or lower PAGE_SIZE.",
                id="rearq_tasks.E005",
            )
        )
    failed_days = value("FAILED_RETENTION_DAYS")
    if failed_days is not None and failed_days < value("RETENTION_DAYS"):
        errors.append(
            Error(
                f"{SETTING_NAME}['FAILED_RETENTION_DAYS'] ({failed_days}) is shorter than "
                f"RETENTION_DAYS ({value('RETENTION_DAYS')}).",
                hint="Failed jobs can be kept longer than the others, never shorter.",
                id="rearq_tasks.E005",
            )
        )
    rows_days = max(value("RETENTION_DAYS"), failed_days or 0)
    if value("STATS_RETENTION_DAYS") < rows_days:
        errors.append(
            Warning(
                f"{SETTING_NAME}['STATS_RETENTION_DAYS'] ({value('STATS_RETENTION_DAYS')}) is "
                f"shorter than the rows' retention ({rows_days} days): statistics of jobs "
                "still listed would be deleted.",
                hint="Keep statistics at least as long as rows (default 400 days).",
                id="rearq_tasks.W016",
            )
        )
    return errors


def _holds_credentials(raw: Mapping[str, Any]) -> list[str]:
    held = []
    for key, value in raw.items():
        option = SPEC.get(key)
        if option is None or value is None:
            continue
        if option.secret or (isinstance(value, str) and redact_url(value) != value):
            held.append(key)
    return held


@register(Tags.security, deploy=False)
def check_error_reports(**kwargs: Any) -> list[CheckMessage]:
    """Django's error reports (ADMINS e-mails on a 5xx, DEBUG pages) list every setting."""
    raw = user_settings()
    held = _holds_credentials(raw)
    if not held:
        return []
    try:
        reporter = import_string(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)
    except ImportError:
        return []
    if isinstance(reporter, type) and issubclass(reporter, SafeExceptionReporterFilter):
        return []
    return [
        Warning(
            f"{SETTING_NAME} holds credentials ({', '.join(held)}) that Django's error reports "
            "would show: it hides settings by name only, and an unhealthy /health/ is a 500.",
            hint="Set DEFAULT_EXCEPTION_REPORTER_FILTER = "
            '"rearq_tasks.conf.reporting.SafeExceptionReporterFilter" (or a subclass of it).',
            id="rearq_tasks.W001",
        )
    ]


ADMIN_APP = "django.contrib.admin"
UNFOLD_APP = "unfold"


@register(Tags.admin)
def check_unfold(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Our admin is Unfold's: without ``unfold`` its pages are a ``TemplateDoesNotExist``
    500, and with ``unfold`` after the admin, Django's templates win and ``/admin/`` is one."""
    from django.apps import apps

    names = [config.name for config in apps.get_app_configs()]
    if ADMIN_APP not in names:
        return []
    order = '"unfold", "unfold.contrib.filters", "django.contrib.admin"'
    if UNFOLD_APP not in names:
        return [
            Error(
                f'"{UNFOLD_APP}" is not in INSTALLED_APPS, but the TaskLog admin is built on '
                "Unfold: its changelist, detail page and dashboard would fail with "
                "TemplateDoesNotExist.",
                hint=f"Add it before the admin: INSTALLED_APPS = [{order}, ...].",
                id="rearq_tasks.E006",
            )
        ]
    if names.index(UNFOLD_APP) > names.index(ADMIN_APP):
        return [
            Error(
                f'"{UNFOLD_APP}" comes after "{ADMIN_APP}" in INSTALLED_APPS: Django\'s own '
                "admin templates win and /admin/ fails.",
                hint=f"List Unfold's apps first: INSTALLED_APPS = [{order}, ...].",
                id="rearq_tasks.E007",
            )
        ]
    return []


def refuse_bad_settings(process: str = "worker") -> None:
    """Raise ImproperlyConfigured with the check messages when ``REARQ_TASKS`` is invalid.

    ``manage.py rearq_worker`` runs the system checks first; ReArq's own CLI
    (``rearq module:obj worker``/``timer``) does not, so its workers call this at start.
    """
    from django.core.exceptions import ImproperlyConfigured

    errors = [message for message in check_settings() if message.is_serious()]
    if errors:
        lines = "\n".join(f"  {m.id}: {m.msg} HINT: {m.hint}" for m in errors)
        raise ImproperlyConfigured(
            f"the ReArq {process} refuses to start: {SETTING_NAME} is invalid\n{lines}"
        )
