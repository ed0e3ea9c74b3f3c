"""``GET /cfg/tasks/logs/stream/``: job transitions as Server-Sent Events (see docs/api.md).

Same authentication and permission as the list, a subset of its filters (those an event can
answer), resumable with ``Last-Event-ID``. Under ASGI the response is an async generator on
redis.asyncio; under WSGI a generator that holds a server thread for the connection's life,
so concurrent feeds per process are capped by ``STREAM_MAX_CONNECTIONS``.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rearq_tasks.access import ConfiguredAccessMixin
from rearq_tasks.conf import conf
from rearq_tasks.models import StatusChoices
from rearq_tasks.queue import feed as feeds
from rearq_tasks.queue.connection import async_redis_client, redis_client


class EventStreamRenderer(JSONRenderer):
    """Lets ``Accept: text/event-stream`` through content negotiation; errors stay JSON."""

    media_type = "text/event-stream"
    format = "event-stream"


class CommaList(serializers.ListField):
    """``a,b,c`` (one parameter) as a list, like the list API's ``*_in`` filters."""

    def get_value(self, dictionary: Any) -> Any:
        if self.field_name not in dictionary:
            return serializers.empty
        return [part for part in str(dictionary[self.field_name]).split(",") if part]


def _text() -> serializers.CharField:
    return serializers.CharField(required=False, max_length=255)


class StreamParams(serializers.Serializer):
    task_name = _text()
    task_name_exact = _text()
    task_name_in = CommaList(child=_text(), required=False)
    queue_name = _text()
    queue_name_in = CommaList(child=_text(), required=False)
    status = serializers.ChoiceField(choices=StatusChoices.choices, required=False)
    status_in = CommaList(
        child=serializers.ChoiceField(choices=StatusChoices.choices), required=False
    )
    job_id = _text()
    worker_id = _text()

    def feed_filter(self) -> feeds.FeedFilter:
        data = self.validated_data

        def one_of(name: str) -> frozenset[str]:
            values = [data.get(name), *data.get(f"{name}_in", ())]
            return feeds.names(values)

        return feeds.FeedFilter(
            task_contains=data.get("task_name", ""),
            task_names=feeds.names([data.get("task_name_exact"), *data.get("task_name_in", ())]),
            queue_names=one_of("queue_name"),
            statuses=one_of("status"),
            job_ids=feeds.names([data.get("job_id")]),
            worker_ids=feeds.names([data.get("worker_id")]),
        )


class FeedResponse(StreamingHttpResponse):
    """Frees the connection's slot when the server closes the response, even if the
    generator never started (a client gone before the first byte)."""

    def __init__(self, content: Any, release: Any) -> None:
        super().__init__(content, content_type="text/event-stream; charset=utf-8")
        self._release = release
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"  # nginx: do not buffer the feed

    def close(self) -> None:
        self._release()
        super().close()


def _position(request: Request) -> str | None:
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id")
    if not raw:
        return None
    if feeds.parse_event_id(raw) is None:
        raise ValidationError({"Last-Event-ID": ['Not a stream entry id ("<ms>-<seq>").']})
    return raw.strip()


class TaskLogStreamView(ConfiguredAccessMixin, APIView):
    """Job transitions as they happen (``text/event-stream``); see docs/api.md."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def get(self, request: Request) -> Any:
        unknown = sorted(set(request.query_params) - {*StreamParams().fields, "last_event_id"})
        if unknown:
            raise ValidationError({name: ["Not a filter of the stream."] for name in unknown})
        params = StreamParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        position = _position(request)
        if not feeds.SLOTS.take(conf.STREAM_MAX_CONNECTIONS):
            return Response(
                {"detail": "Too many live feeds open; retry later (STREAM_MAX_CONNECTIONS)."},
                status=503,
                headers={"Retry-After": "5"},
            )
        release = feeds.SLOTS.releaser()
        limits = feeds.FeedLimits.from_conf()
        feed = feeds.Feed(conf.CAPTURE_STREAM, params.feed_filter(), position, limits)
        timeout = limits.heartbeat + 5  # a blocking read waits at most one heartbeat
        try:
            if isinstance(request._request, ASGIRequest):
                content: Any = feeds.iter_async(feed, async_redis_client(timeout), release)
            else:
                content = feeds.iter_sync(feed, redis_client(timeout), release)
        except Exception:
            release()
            raise
        return FeedResponse(content, release)
