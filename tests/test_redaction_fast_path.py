"""``text_is_clean``'s fast path (issue #19) decides exactly as the full check it shortcuts.

The reference below is the check as it was before the shortcut: the old trigger regex (one
branch per value form, no literal first) and the full ``_KEY_SEP`` scan. Text is built from
near misses of every form either check looks for, in random case, around separators and
quotes, and as ReArq's own per-job log lines.
"""

from __future__ import annotations

import re
import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rearq.utils import args_to_string

from rearq_tasks import redaction
from rearq_tasks.redaction import (
    DEFAULT_REDACT_PATTERNS,
    compile_patterns,
    is_secret_key,
    redact_text,
    text_is_clean,
)

P = compile_patterns(DEFAULT_REDACT_PATTERNS)
# A user pattern pinned to a whole key: a longer candidate must not hide a shorter key.
PINNED = compile_patterns([*DEFAULT_REDACT_PATTERNS, r"^pan$", r"x"])
OLD_TRIGGER = re.compile(
    r"-----BEGIN|://[^\s/]*@|(?i:bearer|basic)\s|(?<!\d)[2-6](?:[ -]?\d){12}"
    r"|(?:sk|rk)_(?:live|test)_|gh[pousr]_|github_pat_|xox[abposr]-|AKIA|AIza|eyJ"
)


def reference_is_clean(text: str, pattern: re.Pattern[str] | None) -> bool:
    if len(text) >= 7 and OLD_TRIGGER.search(text) is not None:
        return False
    if pattern is not None and ("=" in text or ":" in text or "," in text):
        for match in redaction._KEY_SEP.finditer(text):
            if is_secret_key(redaction._key_of(match), pattern):
                return False
    return True


def reference_redact(text: str, pattern: re.Pattern[str] | None) -> str:
    """``redact_text`` without its clean-text shortcut: every pass runs."""
    for _ in range(8):
        done = redaction._redact_once(text, pattern) if text else text
        if done == text:
            break
        text = done
    return text


WORDS = [
    "password", "passwd", "token", "secret", "authorization", "auth", "bearer", "basic",
    "api_key", "apiKey", "X-Api-Key", "session", "sessionid", "pin", "pan", "cvv", "card",
    "author", "bypass", "tokens", "note", "noop", "x",
]  # fmt: skip
PIECES = [
    ":", "=", ":=", "==", ",", ", ", ": ", " = ", " ", "\t", "\n", "'", '"', "\\'", '\\"',
    "\\\\\\'", "[", "(", ")", "]", "{", "}", "//", "://", "@", "postgres://u:", "pw@h/db",
    "https://user:pa ss@host", "4111 1111 1111 1111", "4111-1111-1111-1111", "2", "3", "7",
    "1234567890123", "٣٤٥", "-", "_", ".", "-----BEGIN", "-----BEGIN RSA PRIVATE KEY-----",
    "sk_live_", "rk_test_", "sk_test", "ghp_", "gho_", "github_pat_", "xoxb-", "xox", "AKIA",
    "AIza", "eyJ", "eyJhbGciOi", "ſ", "ı", "İ", "K", "Ⓑ", "→", "←", "●", "é",
    "0b9c3f2e8d7a4c1e9f0a1b2c3d4e5f60", "d3b07384d113edec49eaa6238ad5ff00", "  0.01s ",
]  # fmt: skip


def _any_case(word: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word))
    return flips.map(
        lambda up: "".join(c.upper() if u else c for c, u in zip(word, up, strict=True))
    )


NEAR_MISS = st.lists(
    st.sampled_from(WORDS).flatmap(_any_case) | st.sampled_from(PIECES), max_size=30
).map("".join)
TEXT = (
    NEAR_MISS | st.text(max_size=80) | st.text(alphabet="bBaAsSiIcCeErR ſı\t\n-2345", max_size=40)
)


@settings(max_examples=3000, deadline=None)
@given(TEXT)
@example("Basic abc")
@example("baſic abc")
@example("BASıC abc")
@example("x 2 2 2 2 2 2 2 2 2 2 2 2 2")
@example("12222222222222")
@example("pan: 1, 'pan', 1")
@example("(\\'password\\', 1)")
@example("x  " + " " * 2000 + "password   :   v")
def test_fast_path_agrees_with_the_full_check(text: str) -> None:
    for pattern in (P, PINNED, None):
        assert text_is_clean(text, pattern) == reference_is_clean(text, pattern), pattern
        assert redact_text(text, pattern) == reference_redact(text, pattern)


@settings(max_examples=2000, deadline=None)
@given(TEXT)
def test_the_trigger_finds_what_the_old_trigger_found(text: str) -> None:
    assert (redaction._TRIGGER.search(text) is None) == (OLD_TRIGGER.search(text) is None)


ARG = st.one_of(
    st.integers(), st.text(max_size=20), st.sampled_from(PIECES), NEAR_MISS, st.none(),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(ARG, max_size=3),
    st.dictionaries(st.sampled_from(WORDS) | st.text(min_size=1, max_size=8), ARG, max_size=3),
    st.sampled_from(["noop", "charge", "send_password_reset"]),
    st.floats(0, 1e4, allow_nan=False),
)
def test_rearq_log_lines(args: list, kwargs: dict, task: str, seconds: float) -> None:
    """ReArq's two lines per job (``rearq/worker.py``): ``→`` at the start, ``←`` at the end."""
    ref = f"{uuid.uuid4().hex}:{task}({args_to_string(args, kwargs)})"
    for line in (f"{seconds:6.2f}s → {ref}", f"{seconds:6.2f}s ← {ref} ● {args!r}"):
        assert text_is_clean(line, P) == reference_is_clean(line, P)
        assert redact_text(line, P) == reference_redact(line, P)


def test_a_plain_log_line_is_clean_and_a_secret_one_is_not() -> None:
    plain = "  0.01s → d3b07384d113edec49eaa6238ad5ff00:noop(17)"
    assert text_is_clean(plain, P)
    assert redact_text(plain, P) == plain
    secret = "  0.01s → d3b07384d113edec49eaa6238ad5ff00:login(password='hunter2')"
    assert not text_is_clean(secret, P)
    assert "hunter2" not in redact_text(secret, P)


def test_each_pattern_has_its_own_bounded_key_cache() -> None:
    """The key cache is per compiled pattern, not an lru_cache hashing the pattern per call."""
    only_foo = compile_patterns(["foo"])
    only_bar = compile_patterns(["bar"])
    assert is_secret_key("foo", only_foo) and not is_secret_key("foo", only_bar)
    assert is_secret_key("bar", only_bar) and not is_secret_key("bar", only_foo)
    for _ in range(10_000):  # one job id per job: the cache must not grow with them
        is_secret_key(uuid.uuid4().hex, P)
    assert len(redaction._CACHES[id(P)][1]) <= 8192
    assert redaction._CACHES[id(P)][0] is P
    assert is_secret_key("password", P) and not is_secret_key("note", P)
