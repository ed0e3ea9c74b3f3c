"""Admin for TaskLog on django-unfold: logs are records, not forms."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from rearq_tasks.models import TaskLog


@admin.register(TaskLog)
class TaskLogAdmin(ModelAdmin):
    list_display = ("task_name", "queue_name", "status", "user", "duration_ms", "job_retries",
                    "created_at", "finish_time")  # fmt: skip
    list_filter = ("status",)
    list_select_related = ("user",)
    search_fields = ("=job_id",)
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-enqueue_time",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser
