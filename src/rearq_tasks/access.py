"""Who may read the TaskLog API and the metrics endpoint: one rule for both surfaces.

``API_AUTHENTICATION_CLASSES`` and ``API_PERMISSION_CLASSES`` are dotted paths read from
``REARQ_TASKS`` on each request (so ``override_settings`` applies at once). The default
permission, :class:`CanViewTaskLogs`, admits the people who may open the admin's TaskLog
changelist.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from rearq_tasks.conf import conf

VIEW_PERMISSION = "tasks.view_tasklog"


class CanViewTaskLogs(BasePermission):
    """Active staff holding ``tasks.view_tasklog`` (superusers hold every permission).

    ``IsAdminUser`` alone would let staff who cannot open the TaskLog changelist read every
    job's arguments and errors through the API.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


class ConfiguredAccessMixin:
    """For DRF views: authentication and permission classes read from ``REARQ_TASKS``."""

    def get_authenticators(self) -> list[Any]:
        return [import_string(path)() for path in conf.API_AUTHENTICATION_CLASSES]

    def get_permissions(self) -> list[Any]:
        return [import_string(path)() for path in conf.API_PERMISSION_CLASSES]
