"""Where alerts go: Django mail, a Slack incoming webhook, a generic JSON webhook, PagerDuty.

Each channel sends one digest per ``check_task_alerts`` run and raises :class:`ChannelError`
with a message safe to print (no webhook path, no token) when delivery fails; the caller
reports it and carries on with the other channels.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail

from rearq_tasks.conf import conf
from rearq_tasks.payloads import dumps

if TYPE_CHECKING:
    from rearq_tasks.ops.alerts import Notification

SOURCE = "django-rearq-tasks"


class ChannelError(Exception):
    """Delivery failed; the message names the channel but never its secret URL."""


class Channel(Protocol):
    name: str

    def send(self, notifications: Sequence[Notification]) -> None: ...


def summary(notifications: Sequence[Notification]) -> str:
    firing = sum(1 for n in notifications if n.status == "firing")
    resolved = len(notifications) - firing
    parts = []
    if firing:
        parts.append(f"{firing} alert{'s' if firing != 1 else ''} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    return f"[ReArq tasks] {', '.join(parts)}"


def plain_text(notifications: Sequence[Notification]) -> str:
    lines = []
    for n in notifications:
        lines.append(f"{n.label}  {n.key}: {n.message}")
        lines.extend(f"    {detail}" for detail in n.details)
    return "\n".join(lines) + "\n"


def _recipients(entries: Sequence[str]) -> list[str]:
    addresses: list[str] = []
    for entry in entries:
        if entry in ("ADMINS", "MANAGERS"):
            for item in getattr(settings, entry, ()) or ():
                addresses.append(item[1] if isinstance(item, list | tuple) else item)
        else:
            addresses.append(entry)
    return list(dict.fromkeys(addresses))


@dataclass
class EmailChannel:
    recipients: list[str]
    name: str = "email"

    def send(self, notifications: Sequence[Notification]) -> None:
        try:
            send_mail(
                summary(notifications),
                plain_text(notifications),
                settings.SERVER_EMAIL,
                self.recipients,
                fail_silently=False,
            )
        except (OSError, ValueError) as exc:
            raise ChannelError(f"email: {type(exc).__name__}: {exc}") from exc


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def post_json(url: str, payload: Any, timeout: float, name: str) -> None:
    """POST ``payload``; any failure becomes a ChannelError naming only scheme and host."""
    request = urllib.request.Request(
        url,
        data=dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": SOURCE},
        method="POST",
    )
    where = f"{name} ({_where(url)})"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"{where}: HTTP {exc.code}") from None
    except TimeoutError as exc:
        raise ChannelError(f"{where}: no answer within {timeout:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ChannelError(f"{where}: no answer within {timeout:g} s") from None
        raise ChannelError(f"{where}: {type(exc.reason).__name__}") from None
    except OSError as exc:
        raise ChannelError(f"{where}: {type(exc).__name__}") from None


@dataclass
class _HttpChannel:
    """A channel that POSTs JSON to a secret URL; its repr shows only scheme and host."""

    url: str = ""
    timeout: float = 5.0
    name: str = "http"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_where(self.url)})"


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities, so job text stays text.

    Without it a task name or error message could mention ``<!channel>``/``<!here>``/
    ``<@U…>`` or show a disguised link ``<http://evil|click here>``. Slack decodes exactly
    these three entities and nothing else.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(repr=False)
class SlackChannel(_HttpChannel):
    name: str = "slack"

    def send(self, notifications: Sequence[Notification]) -> None:
        icons = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}
        esc = slack_escape
        lines = [f"*{esc(summary(notifications))}*"]
        for n in notifications:
            lines.append(f"{icons[n.status]} *{esc(n.label)}* `{esc(n.key)}`: {esc(n.message)}")
            lines.extend(f"    • {esc(detail)}" for detail in n.details)
        post_json(self.url, {"text": "\n".join(lines)}, self.timeout, self.name)


@dataclass(repr=False)
class WebhookChannel(_HttpChannel):
    name: str = "webhook"

    def send(self, notifications: Sequence[Notification]) -> None:
        payload = {
            "source": SOURCE,
            "summary": summary(notifications),
            "notifications": [n.as_dict() for n in notifications],
        }
        post_json(self.url, payload, self.timeout, self.name)


PAGERDUTY_SUMMARY_MAX = 1024  # Events API v2 refuses a longer payload.summary


@dataclass(repr=False)
class PagerDutyChannel(_HttpChannel):
    """PagerDuty Events API v2: one event per notification, ``dedup_key`` = the alert's key.

    A firing alert (new, worse, reminder) is a ``trigger`` (PagerDuty folds repeats of a
    key into one open incident); a cleared one is a ``resolve`` of the same key. The routing
    key is a secret: it is sent in the body, never shown in a repr or an error.
    """

    routing_key: str = ""
    name: str = "pagerduty"

    def event(self, n: Notification) -> dict[str, Any]:
        body: dict[str, Any] = {
            "routing_key": self.routing_key,
            "dedup_key": n.key,
            "event_action": "resolve" if n.status == "resolved" else "trigger",
        }
        if n.status != "resolved":
            body["payload"] = {
                "summary": f"{n.label} {n.key}: {n.message}"[:PAGERDUTY_SUMMARY_MAX],
                "source": SOURCE,
                "severity": "error",
                "component": n.rule,
                "custom_details": n.as_dict(),
            }
        return body

    def send(self, notifications: Sequence[Notification]) -> None:
        failures = []
        for n in notifications:  # the API takes one event per request
            try:
                post_json(self.url, self.event(n), self.timeout, self.name)
            except ChannelError as exc:
                failures.append(str(exc))
        if failures:
            raise ChannelError(
                f"{failures[0]} ({len(failures)} of {len(notifications)} events not delivered)"
            )


def configured_channels() -> list[Channel]:
    """The channels the settings enable, in a stable order."""
    channels: list[Channel] = []
    recipients = _recipients(conf.ALERT_EMAIL_RECIPIENTS)
    if recipients:
        channels.append(EmailChannel(recipients))
    timeout = conf.ALERT_HTTP_TIMEOUT_SECONDS
    if conf.ALERT_SLACK_WEBHOOK_URL:
        channels.append(SlackChannel(conf.ALERT_SLACK_WEBHOOK_URL, timeout))
    if conf.ALERT_WEBHOOK_URL:
        channels.append(WebhookChannel(conf.ALERT_WEBHOOK_URL, timeout))
    if conf.ALERT_PAGERDUTY_ROUTING_KEY:
        channels.append(
            PagerDutyChannel(
                conf.ALERT_PAGERDUTY_URL, timeout, routing_key=conf.ALERT_PAGERDUTY_ROUTING_KEY
            )
        )
    return channels
