"""factory_boy factories of the app's models, and ReArq worker heartbeats written exactly the
way ReArq 0.2.9's ``Worker._push_heartbeat`` does. Needs Django set up (models are imported)."""

from __future__ import annotations

import datetime as dt
import json
import time

import factory
import redis
from django.contrib.auth import get_user_model
from django.utils import timezone

from rearq_tasks.models import StatusChoices, TaskLog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


def staff_viewer(*perms: str, **kwargs) -> object:
    """A staff user holding ``tasks.view_tasklog`` (what the API asks by default) and ``perms``."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True, **kwargs)
    codenames = ("view_tasklog", *perms)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="tasks", codename__in=codenames)
    )
    return user


class TaskLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskLog

    job_id = factory.Sequence(lambda n: f"job-{n:08d}")
    task_name = "send_email"
    queue_name = "default"
    status = StatusChoices.QUEUED
    enqueue_time = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=5))


def finished_jobs(task: str, count: int, failed: int, minutes_ago: int = 10, **fields) -> None:
    """``count`` finished jobs of ``task`` enqueued ``minutes_ago``, the first ``failed`` failed."""
    enqueue = timezone.now() - dt.timedelta(minutes=minutes_ago)
    for i in range(count):
        bad = i < failed
        TaskLogFactory(
            task_name=task,
            status=StatusChoices.FAILED if bad else StatusChoices.SUCCESS,
            success=not bad,
            enqueue_time=enqueue,
            error_message=f"ValueError: boom {i}" if bad else None,
            **{"duration_ms": 100, **fields},
        )


# --- ReArq's worker heartbeats ----------------------------------------------------------------
def push_heartbeat(
    client,
    group: str = "host-a",
    consumer: str | int = 4242,
    queue: str = "default",
    is_timer: bool = False,
    age_seconds: float = 0,
) -> str:
    name = f"{group}-{consumer}"
    value = {
        "queue": f"rearq:queue:{queue}",
        "is_timer": is_timer,
        "ms": int((time.time() - age_seconds) * 1000),
        "group": group,
        "consumer": consumer,
    }
    client.hset("rearq:worker", name, value=json.dumps(value))
    return name


def consume(client, queue: str, group: str, consumer: str | int) -> None:
    """What a worker's XREADGROUP leaves behind once it took a job: the group knows the consumer.

    (Redis creates a consumer only when a message is delivered to it, not on an empty read.)
    """
    stream = f"rearq:queue:{queue}"
    try:
        client.xgroup_create(stream, group, mkstream=True)
    except redis.ResponseError as exc:  # BUSYGROUP: the group exists already
        if "BUSYGROUP" not in str(exc):
            raise
    client.xadd(stream, {"job_id": "j1"})
    client.xreadgroup(group, str(consumer), {stream: ">"}, count=1, block=None)
