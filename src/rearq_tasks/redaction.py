"""Find secrets in job payloads and text, and replace them with ``[redacted]``.

Pure Python with no project or Django imports: the bottom of the dependency graph, so the
settings spec can take :data:`DEFAULT_REDACT_PATTERNS` from here.

**Keys.** A key is split into lower-case words on ``_ - .``, spaces and other punctuation,
camelCase and letter/digit boundaries, then joined with ``_``: ``AWSSecretAccessKey`` →
``aws_secret_access_key``, ``X-Api-Key`` → ``x_api_key``, ``clientSecret`` →
``client_secret``, ``cvv2`` → ``cvv_2``. Each pattern (a case-insensitive regex, e.g. from
``REDACT_PATTERNS``/``REDACT_EXTRA_PATTERNS``) must match WHOLE words of that form: it is
searched as ``(?:^|(?<=_))(?:pattern)(?=_|$)``. So ``pass`` matches ``pass``/``old_pass`` but
not ``bypass_cache`` or ``passenger_count``; ``card`` not ``discard_old``; ``auth`` not
``author``; ``token`` not ``tokens_used`` (a plural ``tokens`` is a count, not a token);
``pin`` not ``pinned``/``spin``/``opinion``. A pattern may use ``^``/``$`` to pin the whole
key (``^pan$``) and ``[a-z]*`` to catch run-together words (``csrftoken``, ``dbpassword``).
By decision ``token_count`` IS secret (it has the word ``token``) while ``session_count`` and
``session_timeout`` are not (``session`` counts only alone or before ``id``/``key``/…).

**Values** (every string, whatever its key) lose: the password in ``scheme://user:pw@host``;
``Bearer``/``Basic`` credentials; PEM private-key blocks; well-known token formats (JWT,
``sk_live_``, ``ghp_``, ``xox?-``, ``AKIA``, ``AIza``); Luhn-valid 13–19 digit card numbers
starting with 2–6 (spaces/dashes allowed, found at digit-group boundaries); and the value of
every ``key=value``, ``key: value``, ``"key": "value"``, ``'key': 'value'`` or
``('key', value)`` pair whose key is secret (query strings, JSON text and Python reprs alike).
Unquoted values end at whitespace, quotes, ``,;&`` or a closing bracket; a bracketed value is
redacted to its matching bracket. Redaction is idempotent and never touches ``[redacted]``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
MAX_DEPTH = 64

DEFAULT_REDACT_PATTERNS: tuple[str, ...] = (
    r"pass(code)?|[a-z]*pass(word|wd|phrase)s?|pwd",
    r"[a-z]*secrets?",
    r"[a-z]*token",
    r"[a-z]*api_?keys?",
    r"(access|secret|private|priv|signing|encryption|master|hmac|ssh)_?keys?",
    r"o?auth(entication|orization|n|z)?",
    r"cookies?",
    r"session(_?(id|key|token|cookie)s?)?$|[a-z]*sess(ion)?id",
    r"jwts?",
    r"[th]?otp",
    r"pin",
    r"cards?",
    r"^(cc|pan)$|cc_?(number|num|no)",
    r"cv[vc]|csc",
    r"iban",
    r"ssn",
    r"credentials?|creds?",
    r"sig(nature)?s?",
)

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def key_words(key: str) -> str:
    """``key`` as lower-case words joined with ``_``: the text key patterns are matched on."""
    return "_".join(_WORD.findall(key)).lower()


@lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    body = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(rf"(?:^|(?<=_))(?:{body})(?=_|$)", re.IGNORECASE)


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One compiled key matcher for ``patterns`` (None when there are none); cached."""
    return _compile(tuple(patterns))


# Per compiled pattern (held, so its id stays its own): key -> secret, names -> positions. Not
# an lru_cache keyed by the pattern: hashing a compiled pattern hashes its code (~1 µs).
_CACHES: dict[int, tuple[re.Pattern[str], dict[Any, Any]]] = {}


def _cache(pattern: re.Pattern[str]) -> dict[Any, Any]:
    entry = _CACHES.get(id(pattern))
    if entry is None or entry[0] is not pattern or len(entry[1]) >= 8192:  # bounded: job ids
        if len(_CACHES) >= 64:
            _CACHES.clear()
        entry = _CACHES[id(pattern)] = (pattern, {})
    return entry[1]


def is_secret_key(key: str, pattern: re.Pattern[str] | None) -> bool:
    """Whether a value under ``key`` is a secret (whole-word match, see the module doc)."""
    if pattern is None:
        return False
    cache = _cache(pattern) if len(key) <= 256 else {}  # a long key: not worth a slot
    found = cache.get(key)
    if found is None:
        found = cache[key] = pattern.search(key_words(key)) is not None
    return found


_KEY_LIKE = re.compile(r"[A-Za-z_][\w .-]{0,63}")


def is_pair_key(item: Any, pattern: re.Pattern[str] | None) -> bool:
    """Whether ``item``, first of a 2-item list/tuple, names a secret (``("password", x)``):
    a key-like word, not free text that merely mentions one."""
    return (
        isinstance(item, str) and _KEY_LIKE.fullmatch(item) is not None
        and is_secret_key(item, pattern)
    )  # fmt: skip


# --- cards ---------------------------------------------------------------------------------
_CARD_LIKE = re.compile(r"(?:\d[ -]?){12,18}\d")
_CARD_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,}")
_DIGITS = re.compile(r"\d+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits)


def looks_like_card_number(value: str) -> bool:
    """A 13–19 digit string (spaces/dashes allowed) starting with 2–6 that passes Luhn."""
    if not _CARD_LIKE.fullmatch(value):
        return False
    return _is_card(re.sub(r"[ -]", "", value))


def _redact_run(run: str) -> str:
    """The longest card number at digit-group boundaries is replaced, then the rest."""
    spans = [m.span() for m in _DIGITS.finditer(run)]
    best: tuple[int, int, int] | None = None
    for i, (start, _) in enumerate(spans):
        count = 0
        for j in range(i, len(spans)):
            count += spans[j][1] - spans[j][0]
            if count > 19:
                break
            end = spans[j][1]
            if count >= 13 and (best is None or count > best[0]):
                if _is_card(re.sub(r"\D", "", run[start:end])):
                    best = (count, start, end)
    if best is None:
        return run
    _, start, end = best
    return _redact_run(run[:start]) + REDACTED + _redact_run(run[end:])


# --- other value forms -----------------------------------------------------------------------
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)", re.S
)
_TOKENS = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{8,}|gh[pousr]_[0-9A-Za-z]{20,}"
    r"|github_pat_\w{20,}|xox[abposr]-[0-9A-Za-z-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{35}"
    r"|eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*)"
)
_URL_CREDS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s/'\"]+@")
_AUTH = re.compile(r"(?P<head>\b(?:[Bb]earer|[Bb]asic|BEARER|BASIC)[ \t]+)(?P<tok>[\w.~+/-]+=*)")
# A cheap over-approximation of everything above: no match means none of them can match.
# Each branch starts with a literal, so the engine skips in C to where one stands (3x faster
# on ReArq's log lines); ``d(?<!\dd)`` is ``(?<!\d)d``, ``b(?i:earer)`` ``(?i:bearer)``.
_TRIGGER = re.compile(
    r"-----BEGIN|://[^\s/]*@|b(?i:earer|asic)\s|B(?i:earer|asic)\s|"
    + "".join(f"{d}(?<!\\d{d})(?:[ -]?\\d){{12}}|" for d in "23456")
    + r"sk_(?:live|test)_|rk_(?:live|test)_|gh[pousr]_|github_pat_|xox[abposr]-|AKIA|AIza|eyJ"
)


def _auth(match: re.Match[str]) -> str:
    """Only credential-looking words after Bearer/Basic: ``Basic authentication`` stays."""
    tok = match["tok"]
    if len(tok) >= 20 or re.search(r"[\dA-Z._~+/=-]", tok[1:]) or tok[0].isdigit():
        return match["head"] + REDACTED
    return match[0]


# --- key/value pairs in text -----------------------------------------------------------------
_KEY_SEP = re.compile(
    r"""(?P<pair>[\[(][ \t]*)(?P<pq>\\{0,3}['"])(?P<pkey>[^'"\\\n=:]{1,64})(?P=pq)\s*,[ \t]*
    |(?:(?P<q>\\{0,3}['"])(?P<qkey>[^'"\\\n=:]{1,64})(?P=q)
       |(?<![\w.\-])(?P<key>[A-Za-z_][\w.\-]{0,255}))
     [ \t]*(?::=|==|[:=])(?!//)[ \t]*""",
    re.X,
)
_QUOTED = re.compile(r"""(?P<q>\\{0,3}['"])(?P<body>(?:\\[^\n]|[^\n])*?)(?:(?P=q)|$)""", re.M)
_TOKEN = r"(?:\[redacted\]|[^\s'\",;&)}\[\]])+"
_SCHEME_TOKEN = re.compile(rf"(?i:bearer|basic|token|digest|negotiate|bot)[ \t]+{_TOKEN}")
_BARE = re.compile(_TOKEN)
_OPEN = {"(": ")", "[": "]", "{": "}"}


def _key_of(match: re.Match[str]) -> str:
    return match["pkey"] or match["qkey"] or match["key"] or ""


def _balanced_end(text: str, start: int) -> int:
    """The end of the bracketed value at ``start`` (quotes respected), else its line's end."""
    depth, quote, i, stop = 0, "", start, min(len(text), start + 65536)
    while i < stop:
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    line_end = text.find("\n", start)
    return len(text) if line_end < 0 else line_end


def _value_span(text: str, start: int) -> tuple[int, int] | None:
    """The part of the value at ``start`` to replace, or None (nothing, or already done)."""
    if start >= len(text) or text.startswith(REDACTED, start):
        return None
    char = text[start]
    if char in "'\"\\":
        quoted = _QUOTED.match(text, start)
        if quoted is not None and quoted["q"][-1:] in "'\"":
            if quoted["body"] == REDACTED or not quoted["body"]:
                return None
            return quoted.span("body")
    if char in _OPEN:
        return start, _balanced_end(text, start)
    match = _SCHEME_TOKEN.match(text, start) or _BARE.match(text, start)
    return None if match is None else (start, match.end())


def _redact_pairs(text: str, pattern: re.Pattern[str]) -> str:
    out: list[str] = []
    done = pos = 0
    while (match := _KEY_SEP.search(text, pos)) is not None:
        pos = match.end()
        if not is_secret_key(_key_of(match), pattern):
            continue  # keys inside this value are still found
        span = _value_span(text, pos)
        if span is None:
            continue
        out += [text[done : span[0]], REDACTED]
        done = pos = span[1]
    return "".join(out) + text[done:] if out else text


def redact_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """``text`` with every secret value form replaced (see the module doc); idempotent.

    ``pattern`` (from :func:`compile_patterns`) decides which keys are secret; None still
    redacts the key-independent forms (URL passwords, Bearer, PEM, tokens, cards). The passes
    repeat until nothing changes: one form's marker can expose another (a card glued to a
    token), and a second call must find nothing left to do.
    """
    if text_is_clean(text, pattern, full_scan=False):  # most text: no pass to run
        return text
    for _ in range(8):
        if not text:
            return text
        done = _redact_once(text, pattern)
        if done == text:
            break
        text = done
    return text


def _redact_once(text: str, pattern: re.Pattern[str] | None) -> str:
    if "-----BEGIN" in text:
        text = _PEM.sub(REDACTED, text)
    text = _CARD_RUN.sub(lambda m: _redact_run(m[0]), text)
    text = _TOKENS.sub(REDACTED, text)
    if pattern is not None:
        text = _redact_pairs(text, pattern)
    if "://" in text:
        text = _URL_CREDS.sub(rf"\g<head>{REDACTED}@", text)
    return _AUTH.sub(_auth, text)


def text_is_clean(text: str, pattern: re.Pattern[str] | None, full_scan: bool = True) -> bool:
    """Cheap: True guarantees ``redact_text(text, pattern) == text`` (False may be wrong); most
    lines are proved clean before the full key scan (``full_scan=False``: False instead)."""
    if len(text) >= 7 and _TRIGGER.search(text) is not None:
        return False
    if pattern is not None and ("=" in text or ":" in text or "," in text):
        keys = _keys_near_separators(text)
        if keys is not None and not any(is_secret_key(key, pattern) for key in keys):
            return True
        if not full_scan:
            return False
        for match in _KEY_SEP.finditer(text):
            if is_secret_key(_key_of(match), pattern):
                return False
    return True


# Reversed text: at every separator (``:=,``; a lookahead), after spaces, the quoted text back
# to the previous quote, or the whole ``[\w.-]`` run if it starts like a name.
_BEFORE_SEPARATOR = re.compile(
    r"""[:=,](?=\s*(?:['"]([^'"]*)['"]|([\w.\-]*[A-Za-z_])(?![\w.\-])))"""
)


def _keys_near_separators(text: str) -> list[str] | None:
    """A superset of the keys :data:`_KEY_SEP` can find in ``text`` (None: not worth it, scan
    in full): every match's key stands right before a separator, after spaces."""
    if len(text) > 1024 or text.count(",") + text.count(":") + text.count("=") > 16:
        return None
    return [(quoted or bare)[::-1] for quoted, bare in _BEFORE_SEPARATOR.findall(text[::-1])]


def redact(value: Any, pattern: re.Pattern[str] | None, _depth: int = 0) -> Any:
    """A copy of a JSON-like ``value`` with secrets replaced: values under secret keys, the
    second item of ``[secret_key, value]`` pairs, secrets inside every string (keys too) and
    card numbers held as ints."""
    if isinstance(value, str):
        return redact_text(value, pattern)
    if type(value) is int and 10**12 <= value < 10**19:  # a card number kept as an int
        return REDACTED if _is_card(str(value)) else value
    if _depth > MAX_DEPTH:
        return REDACTED if isinstance(value, (dict, list, tuple)) else value
    if isinstance(value, dict):
        return {
            redact_text(str(k), pattern): (
                REDACTED if is_secret_key(str(k), pattern) else redact(v, pattern, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        first = value[0] if len(value) == 2 else None
        if is_pair_key(first, pattern):
            items = [first, REDACTED]
        else:
            items = [redact(v, pattern, _depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


# A positional argument has no key: the task function's parameter name stands in for it, so
# `charge(card_number, amount)` called as `charge.delay("4111…", 10)` is judged like kwargs.
_POSITIONAL: dict[str, tuple[str, ...]] = {}


def register_positional(task_name: str, function: Callable[..., Any], bound: bool = False) -> None:
    """Remember the positional parameter names of ``task_name``'s function (``bound``: ReArq
    passes the task itself as the first argument)."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return
    names = []
    for param in params[1:] if bound else params:
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            break
        names.append(param.name)
    _POSITIONAL[task_name] = tuple(names)


def _secret_positions(names: tuple[str, ...], pattern: re.Pattern[str]) -> frozenset[int]:
    cache = _cache(pattern)
    found = cache.get(names)  # a tuple: never one of the str keys
    if found is None:
        found = cache[names] = frozenset(
            i for i, n in enumerate(names) if is_secret_key(n, pattern)
        )
    return found


def redact_positional(
    task_name: str, args: list[Any], pattern: re.Pattern[str] | None
) -> list[Any]:
    """``args`` with the values of secret-named parameters redacted (``args`` itself when none)."""
    names = _POSITIONAL.get(task_name)
    if not names or pattern is None:
        return args
    secret = _secret_positions(names, pattern)
    if not secret or min(secret) >= len(args):
        return args
    return [REDACTED if i in secret else value for i, value in enumerate(args)]
