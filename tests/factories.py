from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from rearq_tasks.models import StatusChoices, TaskLog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class TaskLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskLog

    job_id = factory.Sequence(lambda n: f"job-{n:08d}")
    task_name = "send_email"
    queue_name = "default"
    status = StatusChoices.QUEUED
    enqueue_time = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=5))
