"""The part of a key pattern that can match a hex job id: a job id is no secret key, cheaply.

A hex job id before ``:`` is a key to the redaction scan, and a new one per job, so the key
cache never helps and the whole key pattern (18 alternatives by default, ~8 µs on 32 hex
characters) runs each time. Its words (:func:`rearq_tasks.redaction.key_words`) hold only
``0-9``, ``a-f`` and ``_``. Every alternative of the pattern that must consume some other
character can never match them; :func:`hex_key_pattern` drops those (by the default patterns,
all but ``^(cc)$``) and compiles the rest, which answers exactly as the whole pattern on such
words. Anything it cannot analyse (a back-reference, an unknown node, another Python's parse
tree) keeps the whole pattern.
"""

from __future__ import annotations

import re
from typing import Any

try:  # the regex parser and compiler of CPython 3.11+
    from re import _compiler as sre_compile  # type: ignore[attr-defined]
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another implementation: keep the whole pattern
    sre_compile = sre_constants = sre_parse = None

HEX_WORD_CHARS = "0123456789abcdef_"
_NO_MATCH = object()  # no key of hex words can match: a hex id is never a secret key
_cache: dict[int, tuple[re.Pattern[str], Any]] = {}


def _may_match_hex(source: str) -> bool:
    """Whether the one-character regex ``source`` matches a hex word character, by testing
    each, case-insensitively (a superset of what any flags of the pattern let it match)."""
    compiled = re.compile(source, re.IGNORECASE)
    return any(compiled.fullmatch(char) for char in HEX_WORD_CHARS)


def _class_may_match_hex(items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        if op is sre_constants.LITERAL:
            if _may_match_hex(re.escape(chr(arg))):
                return True
        elif op is sre_constants.RANGE:
            if _may_match_hex(f"[{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}]"):
                return True
        else:  # a category, a negation: anything
            return True
    return False


def _needs_other(sequence: Any) -> bool:
    """Whether every match of ``sequence`` (parse-tree nodes) consumes a character outside
    :data:`HEX_WORD_CHARS`. False whenever unsure (anchors and lookarounds consume none)."""
    for op, arg in sequence:
        if op is sre_constants.LITERAL:
            if not _may_match_hex(re.escape(chr(arg))):
                return True
        elif op is sre_constants.IN:
            if not _class_may_match_hex(arg):
                return True
        elif op is sre_constants.SUBPATTERN:
            if _needs_other(arg[3]):
                return True
        elif op is sre_constants.ATOMIC_GROUP:
            if _needs_other(arg):
                return True
        elif op is sre_constants.BRANCH:
            if all(_needs_other(branch) for branch in arg[1]):
                return True
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
                    sre_constants.POSSESSIVE_REPEAT):  # fmt: skip
            if arg[0] >= 1 and _needs_other(arg[2]):
                return True
    return False


def _prune(sequence: Any) -> None:
    """Drop, in place, the alternatives of ``sequence``'s branches (and its groups') that
    :func:`_needs_other`: they cannot match hex words, so the rest matches exactly as all."""
    for op, arg in sequence:
        if op is sre_constants.BRANCH:
            arg[1][:] = [branch for branch in arg[1] if not _needs_other(branch)]
            for branch in arg[1]:
                _prune(branch)
        elif op is sre_constants.SUBPATTERN:
            _prune(arg[3])


def _has_reference(sequence: Any) -> bool:
    """Whether ``sequence`` refers to a group (pruning could change what that group holds)."""
    text = repr(list(sequence))
    return "GROUPREF" in text


def _residual(pattern: re.Pattern[str]) -> Any:
    if sre_parse is None:
        return pattern
    try:
        tree = sre_parse.parse(pattern.pattern, pattern.flags)
        if _has_reference(tree):
            return pattern
        _prune(tree)
        if _needs_other(tree):  # every alternative went: nothing of hex words matches
            return _NO_MATCH
        return sre_compile.compile(tree, pattern.flags)
    except Exception:  # an unfamiliar tree: the whole pattern decides
        return pattern


def hex_key_pattern(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A pattern that searches words of ``0-9a-f_`` exactly as ``pattern`` does (None: it
    matches none of them), for the key check of hex job ids; computed once per pattern."""
    entry = _cache.get(id(pattern))
    if entry is None or entry[0] is not pattern:
        if len(_cache) >= 64:
            _cache.clear()
        entry = _cache[id(pattern)] = (pattern, _residual(pattern))
    residual = entry[1]
    return None if residual is _NO_MATCH else residual
