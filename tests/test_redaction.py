"""What counts as a secret, and that none survives: keys by whole words, values by form."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rearq_tasks.payloads import PayloadRules, prepare_record, prepare_traceback
from rearq_tasks.redaction import (
    DEFAULT_REDACT_PATTERNS,
    REDACTED,
    compile_patterns,
    is_secret_key,
    key_words,
    looks_like_card_number,
    redact,
    redact_text,
    text_is_clean,
)

P = compile_patterns(DEFAULT_REDACT_PATTERNS)
RULES = PayloadRules(limit=64 * 1024, pattern=P, exempt=frozenset())


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("aws_access_key_id", "aws_access_key_id"),
        ("AWSSecretAccessKey", "aws_secret_access_key"),
        ("X-Api-Key", "x_api_key"),
        ("clientSecret", "client_secret"),
        ("db.password", "db_password"),
        ("api key", "api_key"),
        ("cvv2", "cvv_2"),
        ("sessionID", "session_id"),
    ],
)
def test_keys_are_split_into_words(key: str, words: str) -> None:
    assert key_words(key) == words


@pytest.mark.parametrize(
    "key",
    [
        "aws_access_key_id", "pwd", "jwt", "otp", "pin", "private_key", "AWSSecretAccessKey",
        "X-Api-Key", "clientSecret", "password", "passwd", "passphrase", "pass", "secret",
        "token", "access_token", "csrftoken", "apikey", "api_key", "auth", "Authorization",
        "cookie", "Set-Cookie", "session", "session_id", "sessionid", "card", "card_number",
        "cc_number", "cc", "pan", "cvv", "cvc", "iban", "ssn", "credentials", "creds", "sig",
        "signature", "totp_secret", "userPassword", "DB_PASSWORD",
    ],
)  # fmt: skip
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key, P)
    assert redact({key: "v", "ok": 1}, P) == {key: REDACTED, "ok": 1}


@pytest.mark.parametrize(
    "key",
    [
        "discard_old", "bypass_cache", "passenger_count", "author", "tokens_used", "pinned",
        "spin", "opinion", "compass", "session_count", "session_timeout", "cardinality",
        "signal", "secretary", "panel", "authority", "key", "dsn", "user_id",
    ],
)  # fmt: skip
def test_harmless_keys_stay(key: str) -> None:
    assert not is_secret_key(key, P)
    assert redact({key: "v"}, P) == {key: "v"}


def test_a_key_with_the_word_token_is_secret_even_a_count() -> None:
    """Decision: ``token`` as a word is secret (``token_count``), a plural ``tokens`` is not."""
    assert is_secret_key("token_count", P) and not is_secret_key("tokens_used", P)


def test_patterns_match_whole_words_and_can_pin_the_key() -> None:
    pattern = compile_patterns([r"^otp$", r"card_?no"])
    assert is_secret_key("otp", pattern) and is_secret_key("OTP", pattern)
    assert not is_secret_key("otpx", pattern) and not is_secret_key("my_otp", pattern)
    assert is_secret_key("cardNo", pattern) and not is_secret_key("discard_no", pattern)
    assert compile_patterns([]) is None and not is_secret_key("password", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://u:pw@h/db", "postgres://u:[redacted]@h/db"),
        ("redis://:s3cr3t@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
        ("mysql://u:p@ss@h/db", "mysql://u:[redacted]@h/db"),
        ("https://h/cb?access_token=abc&page=2", "https://h/cb?access_token=[redacted]&page=2"),
        ("https://h/cb?x=1&api_key=abc", "https://h/cb?x=1&api_key=[redacted]"),
        ("https://h/f?sig=abc&se=2", "https://h/f?sig=[redacted]&se=2"),
        ("https://h/?password=abc", "https://h/?password=[redacted]"),
        ("sent Bearer eyJhbGciOi.abc123 upstream", "sent Bearer [redacted] upstream"),
        ("with Basic dXNlcjpwYXNz then", "with Basic [redacted] then"),
        ("Basic authentication failed", "Basic authentication failed"),
        ("password=hunter2 user=bob", "password=[redacted] user=bob"),
        ("password: hunter2", "password: [redacted]"),
        ('{"password": "hunter 2", "a": 1}', '{"password": "[redacted]", "a": 1}'),
        ("{'password': 'hunter2', 'fine': 1}", "{'password': '[redacted]', 'fine': 1}"),
        ("[('Authorization', 'Bearer x')]", "[('Authorization', '[redacted]')]"),
        ('{\\"token\\": \\"abc\\"}', '{\\"token\\": \\"[redacted]\\"}'),
        ("creds={'a': {'b': 'x'}} next=1", "creds=[redacted] next=1"),
        ("card 4111 1111 1111 1111 ok", "card [redacted] ok"),
        ("ref 32 5555-5555-5555-4444.", "ref 32 [redacted]."),
        ("at 1700000000000 ms", "at 1700000000000 ms"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [redacted] used"),
        (
            "x -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- y",
            "x [redacted] y",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIE (cut)", "[redacted]"),
    ],
)
def test_value_forms_are_redacted_in_text(text: str, expected: str) -> None:
    assert redact_text(text, P) == expected
    assert redact_text(expected, P) == expected


def test_value_forms_are_redacted_anywhere_in_a_structure() -> None:
    value = {
        "dsn": "postgres://u:pw@h/db",
        "headers": [["Authorization", "Bearer x"], ("password", "x"), ["Accept", "json"]],
        "args": ["token=abc", "4111111111111111"],
        "postgres://u:pw@h/db": 1,
    }
    assert redact(value, P) == {
        "dsn": "postgres://u:[redacted]@h/db",
        "headers": [["Authorization", REDACTED], ("password", REDACTED), ["Accept", "json"]],
        "args": ["token=[redacted]", REDACTED],
        "postgres://u:[redacted]@h/db": 1,
    }


def test_without_key_patterns_value_forms_are_still_redacted() -> None:
    assert (
        redact_text("password=x postgres://u:pw@h", None) == "password=x postgres://u:[redacted]@h"
    )


def test_card_detection_needs_luhn_and_a_card_prefix() -> None:
    assert looks_like_card_number("4111-1111-1111-1111")
    assert not looks_like_card_number("4111111111111112")
    assert not looks_like_card_number("12345")
    assert not looks_like_card_number("1700000000007")  # Luhn-valid, but a timestamp


def test_traceback_is_redacted_once_without_mangling() -> None:
    """Regression: a second pass turned ``[redacted]`` into ``[redacted]]`` and leaked."""
    text = "ValueError: bad\nAuthorization: Bearer sk_live_abcdefgh1234\n"
    once = prepare_traceback("t", text, RULES)
    assert once == "ValueError: bad\nAuthorization: [redacted]\n"
    assert prepare_traceback("t", once, RULES) == once
    assert "sk_live" not in redact_text("Authorization: [redacted]] sk_live_abcdefgh1234", P)


def test_redaction_is_idempotent_on_known_forms() -> None:
    text = "Authorization: Bearer abc123 password='x' pin=4111 1111 1111 1111 u:[redacted]@h"
    once = redact_text(text, P)
    assert redact_text(once, P) == once and "]]" not in once


# --- properties ------------------------------------------------------------------------------
SECRET = st.from_regex(r"S3c[A-Za-z0-9]{10}", fullmatch=True)
LEAK = re.compile(r"S3c[A-Za-z0-9]{10}")
CARDS = ("4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "6011111111111117")
SECRET_KEYS = st.sampled_from(
    ["password", "api_key", "AWSSecretAccessKey", "X-Api-Key", "pwd", "token", "clientSecret",
     "sessionid", "Authorization", "private_key", "jwt", "otp", "pin", "aws_access_key_id"]
)  # fmt: skip
HARMLESS_KEYS = st.sampled_from(
    ["discard_old", "bypass_cache", "passenger_count", "author", "tokens_used", "pinned", "note"]
)
FORMS = (
    "{k}={s}", "{k}: {s}", '"{k}": "{s}"', "'{k}': '{s}'", "{k}='{s}'", "('{k}', '{s}')",
    "postgres://user:{s}@db.example/x", "redis://:{s}@cache:6379/0", "Authorization: Bearer {s}",
    "https://api.example/cb?{k}={s}&page=2", "Bearer {s}", "Basic {s}",
    "-----BEGIN RSA PRIVATE KEY-----\n{s}\n-----END RSA PRIVATE KEY-----",
)  # fmt: skip
FILLER = st.text(alphabet="abc xyz.,;()[]{}'\"\n", max_size=12)


@st.composite
def secret_text(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(FORMS))
    secret = draw(SECRET) if "{s}" in form else ""
    text = form.format(k=draw(SECRET_KEYS), s=secret)
    if draw(st.booleans()):
        text = draw(st.sampled_from(CARDS))
    return f"{draw(FILLER)} {text} {draw(FILLER)}"


@st.composite
def harmless(draw: st.DrawFn) -> dict[str, str]:
    return {draw(HARMLESS_KEYS): f"keep-{draw(st.integers(0, 10**6))}"}


SECRET_LEAF = (
    secret_text()
    | st.builds(lambda k, s: {k: s}, SECRET_KEYS, SECRET)
    | st.builds(lambda k, s: [k, s], SECRET_KEYS, SECRET)
    | st.builds(lambda t: {t: 1}, secret_text())
)
PAYLOAD = st.recursive(
    SECRET_LEAF | harmless() | st.integers() | st.sampled_from(["hello", "a@b.c", "x=1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HARMLESS_KEYS, inner, max_size=3),
    max_leaves=8,
)


def _kept(value: object) -> set[str]:
    text = json.dumps(value)
    return set(re.findall(r"keep-\d+", text))


@settings(max_examples=200, deadline=None)
@given(args=st.lists(PAYLOAD, max_size=3), kwargs=st.dictionaries(HARMLESS_KEYS, PAYLOAD),
       result=PAYLOAD, as_text=st.booleans(), error=secret_text())  # fmt: skip
def test_no_injected_secret_survives_and_harmless_values_stay(
    args: list, kwargs: dict, result: object, as_text: bool, error: str
) -> None:
    record = {"job_id": "j", "task_name": "t", "args": args, "kwargs": kwargs,
              "result": str(result) if as_text else result, "error_message": error}  # fmt: skip
    prepared = prepare_record(record, RULES)
    stored = json.dumps({k: prepared[k] for k in ("args", "kwargs", "result", "error_message")})
    assert not LEAK.search(stored)
    assert not any(card in stored or re.sub(r"\D", "", card) in stored for card in CARDS)
    assert _kept([args, kwargs]) <= _kept([prepared["args"], prepared["kwargs"]])


TEXT_PIECES = st.sampled_from(
    ["password", "token", "note", "=", ": ", "'", '"', "\\", "[", "]", "(", "{", "}", ",", " ",
     "\n", "[redacted]", "Bearer ", "Basic ", "abc123", "4111 1111 1111 1111", "1111", "-",
     "postgres://u:", "@h/db", "?api_key=", "&", "-----BEGIN RSA PRIVATE KEY-----",
     "-----END RSA PRIVATE KEY-----", "S3cAbCdEf1234", "sk_live_abcdefgh12", "x"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT_PIECES, max_size=25).map("".join) | st.text(max_size=60))
def test_redact_text_is_idempotent(text: str) -> None:
    once = redact_text(text, P)
    assert redact_text(once, P) == once
    if text_is_clean(text, P):
        assert once == text


def test_positional_arguments_are_judged_by_their_parameter_names() -> None:
    from rearq_tasks.payloads import PayloadRules, prepare_record
    from rearq_tasks.redaction import compile_patterns, register_positional

    def charge(card_number, amount, note="", *rest):
        return None

    register_positional("tests.charge", charge)
    rules = PayloadRules(limit=10_000, pattern=compile_patterns(DEFAULT_REDACT_PATTERNS),
                         exempt=frozenset({"tests.exempt"}))  # fmt: skip
    record = {"task_name": "tests.charge", "args": ["0000-not-a-card", 10, "hello", "extra"]}
    assert prepare_record(record, rules)["args"] == [REDACTED, 10, "hello", "extra"]
    register_positional("tests.exempt", charge)
    exempt = {"task_name": "tests.exempt", "args": ["0000-not-a-card", 10]}
    assert prepare_record(exempt, rules)["args"] == ["0000-not-a-card", 10]


def test_a_bound_task_skips_its_own_parameter() -> None:
    from rearq_tasks.redaction import compile_patterns, redact_positional, register_positional

    def bound(task, password, count):
        return None

    register_positional("tests.bound", bound, bound=True)
    pattern = compile_patterns(DEFAULT_REDACT_PATTERNS)
    assert redact_positional("tests.bound", ["pw", 3], pattern) == [REDACTED, 3]
    assert redact_positional("tests.unknown", ["pw", 3], pattern) == ["pw", 3]
