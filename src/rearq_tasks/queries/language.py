"""The search language of the API's ``search`` parameter and the admin's search box.

``task:send_email status:failed status:expired kwargs.order_id:123 after:-2h timeout`` is
parsed into terms; different qualifiers are combined with AND, a repeated qualifier with OR,
and the plain words (joined by spaces, in order) keep each surface's plain search. A
``"quoted value"`` may hold spaces. Anything that cannot be searched for raises
:class:`QueryError` naming the qualifier, so a surface answers 400 or shows a message,
never a 500 and never a silent empty list. docs/api.md lists the qualifiers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from rearq_tasks.lifecycle import StatusChoices
from rearq_tasks.queries import search
from rearq_tasks.queries.arguments import ArgumentError, args_q, check_value, kwargs_q

MAX_QUERY_LENGTH = 1000
QUALIFIERS: tuple[str, ...] = (
    "task", "queue", "status", "worker", "user", "id", "error", "kwargs.<path>", "args",
    "after", "before",
)  # fmt: skip
_TOKEN = re.compile(r'(?:(?P<key>[A-Za-z_][\w.]*):)?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))?')
_RELATIVE = re.compile(r"^-(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_INTEGER = re.compile(r"^-?\d{1,19}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class QueryError(ValueError):
    """A search that cannot be run; the message names the qualifier or the fault."""


@dataclass
class Query:
    """A parsed search: values per qualifier (in order) and the plain words."""

    terms: dict[str, list[str]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The plain words as one search term (today's plain search)."""
        return " ".join(self.words)

    def __bool__(self) -> bool:
        return bool(self.terms or self.words)

    @property
    def uses_arguments(self) -> bool:
        """Whether it looks into args/kwargs (see :func:`arguments.index_first`)."""
        return any(q == "args" or q.startswith("kwargs.") for q in self.terms)


def _qualifier(key: str) -> str:
    name = key.lower()
    if name.startswith("kwargs."):
        path = name[len("kwargs.") :]
        if not path or "" in key[len("kwargs.") :].split("."):
            raise QueryError(f"{key}: a kwargs path needs key names between the dots")
        return "kwargs." + key[len("kwargs.") :]
    if name not in QUALIFIERS:
        known = ", ".join(f"{q}:" for q in QUALIFIERS)
        raise QueryError(
            f'unknown qualifier "{key}:" (known: {known}); quote a value that contains a colon'
        )
    return name


def parse(text: str) -> Query:
    """Split ``text`` into qualified terms and plain words; :class:`QueryError` if it cannot."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"a search is at most {MAX_QUERY_LENGTH} characters")
    if "\x00" in text:
        raise QueryError("a search may not contain NUL")
    query = Query()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return query
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"unterminated quote at character {pos + 1}")
        key, quoted, bare = match.group("key", "quoted", "bare")
        value = quoted if quoted is not None else bare
        if key is None:
            query.words.append(value or "")
        elif value is None:
            rest = text[match.end() :]
            problem = "an unterminated quote" if rest.startswith('"') else "no value"
            raise QueryError(f"{key}: has {problem}")
        else:
            query.terms.setdefault(_qualifier(key), []).append(value)
        pos = match.end()


def typed_values(value: str) -> list[Any]:
    """What ``value`` may stand for in a JSON payload: always the string, and the number,
    boolean or null it spells."""
    values: list[Any] = [value]
    if _INTEGER.match(value) and abs(int(value)) <= 2**63 - 1:
        values.append(int(value))
    elif _NUMBER.match(value):
        number = float(value)
        if number == number and abs(number) != float("inf"):
            values.append(number)
    elif value in ("true", "false"):
        values.append(value == "true")
    elif value == "null":
        values.append(None)
    return values


def parse_moment(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``-2h``/``-7d`` (s, m, h, d, w) before now, or an ISO date or date-time."""
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = relative.groups()
        try:
            return (now or timezone.now()) - dt.timedelta(**{_UNITS[unit]: int(amount)})
        except OverflowError:
            raise ValueError("too far back") from None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError("not an ISO date, date-time or -2h/-7d")
        moment = dt.datetime.combine(day, dt.time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(dt.UTC)


def _user_q(value: str) -> Q:
    q = Q(**{f"user__{get_user_model().USERNAME_FIELD}": value})
    if _INTEGER.match(value) and 0 <= int(value) <= 2**63 - 1:
        q |= Q(user_id=int(value))
    return q


def _status_q(value: str) -> Q:
    if value.lower() not in StatusChoices.values:
        raise ValueError(f"not a status (one of {', '.join(StatusChoices.values)})")
    return Q(status=value.lower())


def _payload_q(qualifier: str, value: str) -> Q:
    q = Q()
    for candidate in typed_values(value):
        check_value(candidate)
        if qualifier == "args":
            q |= args_q([candidate])
            continue
        for leaf in (candidate, [candidate]):  # the value, or an array holding it
            wanted: Any = leaf
            for key in reversed(qualifier.split(".")[1:]):
                wanted = {key: wanted}
            q |= kwargs_q(wanted)
    return q


def _term_q(qualifier: str, value: str, using: str, now: dt.datetime | None) -> Q:
    if qualifier in ("task", "queue", "worker"):
        column = {"task": "task_name", "queue": "queue_name", "worker": "worker_id"}[qualifier]
        return search.contains_q(column, value, using)
    if qualifier == "status":
        return _status_q(value)
    if qualifier == "user":
        return _user_q(value)
    if qualifier == "id":
        return Q(job_id=value)
    if qualifier == "error":
        return Q(error_message__icontains=value)
    if qualifier in ("after", "before"):
        lookup = "gte" if qualifier == "after" else "lt"
        return Q(**{f"enqueue_time__{lookup}": parse_moment(value, now)})
    return _payload_q(qualifier, value)


def _deferred(qualifier: str) -> bool:
    """Conditions a walk of the newest rows cannot narrow by index: arguments and text."""
    return qualifier in ("args", "error") or qualifier.startswith("kwargs.")


def query_parts(
    query: Query,
    words_q: Callable[[str], Q],
    using: str = "default",
    now: dt.datetime | None = None,
) -> tuple[Q, Q]:
    """The condition of ``query`` in two parts, ANDed they are :func:`query_q`: the column
    filters, and the argument and text conditions (``kwargs.``, ``args:``, ``error:``, plain
    words) that :func:`~rearq_tasks.queries.window.window_first` applies to a window."""
    columns, deferred = Q(), Q()
    for qualifier, values in query.terms.items():
        either = Q()
        for value in values:
            if not value:
                raise QueryError(f"{qualifier}: has no value")
            try:
                either |= _term_q(qualifier, value, using, now)
            except (ValueError, ArgumentError) as exc:
                raise QueryError(f'{qualifier}:"{value}" {exc}') from None
        if _deferred(qualifier):
            deferred &= either
        else:
            columns &= either
    if query.words:
        deferred &= words_q(query.text)
    return columns, deferred


def query_q(
    query: Query,
    words_q: Callable[[str], Q],
    using: str = "default",
    now: dt.datetime | None = None,
) -> Q:
    """The condition of ``query``: AND across qualifiers, OR within one, ``words_q`` for the
    plain words."""
    columns, deferred = query_parts(query, words_q, using, now)
    return columns & deferred
