"""The loguru patcher's shortcut for ReArq's job lines (issue #19) redacts exactly as
``redact_text``: whatever the line, the job id, the task name, the arguments, the result and
the key patterns (a user's may match hex words), and however a line differs from ReArq's
shape, the output is the full redaction's."""

from __future__ import annotations

import re
import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rearq.utils import args_to_string

from rearq_tasks.capture import hex_keys, log_lines
from rearq_tasks.capture.log_lines import redact_log_line
from rearq_tasks.redaction import DEFAULT_REDACT_PATTERNS, compile_patterns, key_words, redact_text
from tests.test_redaction_fast_path import NEAR_MISS, PIECES, WORDS, reference_redact

P = compile_patterns(DEFAULT_REDACT_PATTERNS)
# User patterns a hex job id can match (whole words, run-together, pinned, class, lookaround,
# a back-reference, flags switched inside), next to the defaults.
HEX_PATTERNS = [
    r"cafe", r"dead_?beef", r"[a-f]+", r"^a", r"\d{3}", r"(a)\1", r"b(?=_)", r"(?-i:ABC)",
    r"[^x]", r"e.", r"(?:ab|cd)+", r"f{2,}", r"(?i:FACE)", r"\w", r"[\dA-F]{4}", r"(?!a)b",
]  # fmt: skip
PATTERNS = [
    P, None, compile_patterns([*DEFAULT_REDACT_PATTERNS, "cafe", r"^a", r"(a)\1"]),
    *(compile_patterns([p]) for p in HEX_PATTERNS),
]  # fmt: skip

HEX_ID = st.text(alphabet="0123456789abcdef", min_size=1, max_size=40) | st.builds(
    lambda: uuid.uuid4().hex
)
JOB_ID = HEX_ID | st.sampled_from(
    [
        "4111111111111111abc",
        "a4111111111111111",
        "1234567890123abc",
        "a" + "4" * 20,
        "cafe1234",
        "a" * 65,
        "ABCDEF12",
        "cc",
        "dead_beef",
        "1-2",
        "",
    ]
)
TASK = st.sampled_from(["noop", "charge", "_t", "t4111111111111111", "ghp_" + "a" * 24]) | (
    st.text(alphabet="abcdefxyz_0123456789:/(@'\" ", min_size=0, max_size=12)
)
HEAD = st.sampled_from(
    [
        "  0.01s ",
        "-0.50s ",
        "123456789.12s ",
        "1234567890.12s ",
        "4111111111111111.00s ",
        "  inf s ",
    ]
)
ARG = st.one_of(
    st.integers(), st.text(max_size=20), st.sampled_from(PIECES), NEAR_MISS, st.none(),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
)  # fmt: skip


def check(line: str) -> None:
    for pattern in PATTERNS:
        log_lines._last = ("", None, False)  # the one-id memo must not decide for a new id
        expected = reference_redact(line, pattern)
        assert redact_log_line(line, pattern) == expected, (line, pattern)
        assert redact_text(line, pattern) == expected


@settings(max_examples=1500, deadline=None)
@given(
    HEAD, st.sampled_from(["→", "←"]), JOB_ID, TASK,
    st.lists(ARG, max_size=3),
    st.dictionaries(st.sampled_from(WORDS) | st.text(min_size=1, max_size=8), ARG, max_size=3),
    st.sampled_from(["", " try=2", " try=1234567890123", " ● 5", " ● pin=1", " ● "]) | NEAR_MISS,
)  # fmt: skip
@example("  0.01s ", "→", "cafe1234", "noop", [1], {}, "")
@example("  0.01s ", "→", "4111111111111111", "noop", [1], {}, "")
@example("  0.01s ", "→", "abc", "x", [], {"password": "hunter2"}, "")
@example("  0.01s ", "→", "abc", "//u:pw@host", [], {}, "")  # the id as a URL scheme
@example("  0.01s ", "←", "abc", "noop", [], {}, " ● Bearer abcdefghijklmnopqrstuvwxyz")
def test_rearq_lines_redact_as_the_full_passes(
    head: str, arrow: str, job_id: str, task: str, args: list, kwargs: dict, tail: str
) -> None:
    check(f"{head}{arrow} {job_id}:{task}({args_to_string(args, kwargs)}){tail}")


@settings(max_examples=1500, deadline=None)
@given(HEX_ID, st.integers(0, 80), st.text(max_size=6) | st.sampled_from(PIECES))
def test_a_line_that_differs_anywhere_redacts_as_the_full_passes(
    job_id: str, at: int, inserted: str
) -> None:
    """Any edit of a line the shortcut takes (inserted anywhere) still gets what the full
    passes give: the shortcut either proves the exact shape or steps aside."""
    line = f"  0.01s → {job_id}:noop(5, password='[redacted]')"
    check(line[:at] + inserted + line[at:])


@settings(max_examples=2000, deadline=None)
@given(HEX_ID)
def test_the_hex_key_pattern_answers_as_the_whole_pattern_on_hex_ids(job_id: str) -> None:
    words = key_words(job_id)
    assert set(words) <= set(hex_keys.HEX_WORD_CHARS)
    for pattern in PATTERNS:
        if pattern is None:
            continue
        reduced = hex_keys.hex_key_pattern(pattern)
        got = reduced is not None and reduced.search(words) is not None
        assert got == (pattern.search(words) is not None), (job_id, pattern)


def test_the_default_patterns_keep_only_a_whole_key_cc_for_hex_ids() -> None:
    reduced = hex_keys.hex_key_pattern(P)
    assert reduced is not None and reduced.search("cc") and not reduced.search("cc_1")
    assert hex_keys.hex_key_pattern(compile_patterns([r"password", r"tokens?"])) is None
    backref = compile_patterns([r"(a)\1"])
    assert hex_keys.hex_key_pattern(backref) is backref  # not analysed: the whole pattern


def test_a_job_id_that_is_a_secret_key_or_a_card_is_redacted() -> None:
    pattern = compile_patterns([*DEFAULT_REDACT_PATTERNS, "cafe"])
    line = "  0.01s → cafe:noop(5)"
    assert (
        redact_log_line(line, pattern) == redact_text(line, pattern) == "  0.01s → cafe:[redacted])"
    )
    card = "  0.01s → ab4111111111111111cd:noop(5)"
    assert redact_log_line(card, P) == redact_text(card, P) != card
    assert re.search("4111111111111111", redact_log_line(card, P)) is None


def test_a_plain_line_is_returned_as_it_is() -> None:
    line = f"  0.01s → {uuid.uuid4().hex}:noop(17)"
    assert redact_log_line(line, P) is line
