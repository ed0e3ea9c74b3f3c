"""Redact ReArq's two log lines per job cheaply: most of their scan is the job id's.

ReArq logs ``"%6.2fs → {job_id}:{task}({args_to_string})"`` when a job starts and
``"%6.2fs ← {job_id}:{task}(…) ● {result}"`` when it ends (``rearq/worker.py``). On such a
line the hex job id is what the redaction scan spends most on (the literal-first trigger stops
at each ``2``–``6`` and ``b`` in it) although it can hold no secret form but two, checked
here directly: a card number (a Luhn-valid run of 13–19 digits) and, when it starts with a
letter, the id as a secret key before ``:``. Only the text from the task name on is then
scanned: in exactly this shape, the head can neither hold, start nor end any other secret
form (see :func:`redact_log_line`). Any other line, or any doubt, takes :func:`redact_text`.
"""

from __future__ import annotations

import re

from rearq_tasks.capture.hex_keys import hex_key_pattern
from rearq_tasks.redaction import looks_like_card_number, redact_text

# The head ReArq writes: ``%6.2f`` seconds (spaces, a sign, <= 9 integer digits so no card
# run), the arrow, the hex job id, ``:``, an identifier task name and the opening bracket.
_SHAPE = re.compile(
    r"[ ]{0,8}-?[0-9]{1,9}\.[0-9]{2}s [→←] ([0-9a-f]{1,64}):[A-Za-z_][A-Za-z0-9_]{0,127}\("
)
_CARD_DIGITS = re.compile(r"[0-9]{13}")
_HEX_RUN = re.compile(r"[a-f]+|[0-9]+")
_DIGIT_RUN = re.compile(r"[0-9]{13,}")
_last: tuple[str, re.Pattern[str] | None, bool] = ("", None, False)  # the last id checked


def _id_is_clean(job_id: str, pattern: re.Pattern[str] | None) -> bool:
    """Whether the hex ``job_id``, where :data:`_SHAPE` places it, holds no secret: lowercase
    hex can spell no token, Bearer/Basic, PEM or URL form; only a card number (its digit runs
    are whole groups: ``_redact_run`` judges each as a whole), and the id itself as a key (it
    stands before ``:``) when it starts with a letter."""
    global _last
    if _last[0] == job_id and _last[1] is pattern:  # the job's other line: the same answer
        return _last[2]
    # A run of 13–19 digits is redacted if it is a card number (longer runs never are).
    clean = _CARD_DIGITS.search(job_id) is None or not any(
        map(looks_like_card_number, _DIGIT_RUN.findall(job_id))
    )
    if clean and job_id[0] > "9" and pattern is not None:
        hex_keys = hex_key_pattern(pattern)
        # key_words() of lowercase hex: its letter and digit runs, joined by "_".
        words = "_".join(_HEX_RUN.findall(job_id))
        clean = hex_keys is None or hex_keys.search(words) is None
    _last = (job_id, pattern, clean)
    return clean


def redact_log_line(message: str, pattern: re.Pattern[str] | None) -> str:
    """``redact_text(message, pattern)``, with a shortcut for ReArq's job lines.

    Why the shortcut is exact: the head (time, arrow, id, ``:``) holds no quote, bracket
    or ``://``, and no digit run crosses its ends; no token, URL scheme, Bearer/Basic, card
    or key can start in it but the id's own (a card in it, or the id as the key of
    ``id: task(…``, checked by :func:`_id_is_clean`); and what follows starts with an
    identifier after ``:``, which every lookbehind sees as it sees the start of a text. So
    the line is redacted exactly where the text from the task name on is: only that text
    is passed to :func:`redact_text`."""
    match = _SHAPE.match(message)
    if match is None or not _id_is_clean(match[1], pattern):
        return redact_text(message, pattern)
    cut = match.end(1) + 1  # the task name's start: what follows the time and a clean id
    tail = message[cut:]
    redacted = redact_text(tail, pattern)  # itself first proves most tails clean, cheaply
    return message if redacted is tail else message[:cut] + redacted
