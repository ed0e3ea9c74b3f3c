"""What counts as a secret in a job's payload, defined once (pure Python, imports nothing).

The settings spec takes its defaults from here and :mod:`rearq_tasks.payloads` applies them.
"""

from __future__ import annotations

DEFAULT_REDACT_PATTERNS: tuple[str, ...] = (
    r"pass(word|wd)?",
    r"secret",
    r"token",
    r"api[-_]?key",
    r"auth(orization)?",
    r"cookie",
    r"session",
    r"private[-_]?key",
    r"credential",
    r"card[-_]?(number|no)?",
    r"^(cc|pan)([-_]?(number|no))?$",
    r"cvv|cvc",
    r"iban",
    r"ssn",
)
