"""DRF permission of the API and metrics: the people who may view TaskLog in the admin."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

VIEW_PERMISSION = "tasks.view_tasklog"


class CanViewTaskLogs(BasePermission):
    """Active staff holding ``tasks.view_tasklog`` (superusers hold every permission).

    ``IsAdminUser`` alone would let staff who cannot open the TaskLog changelist read every
    job's arguments and errors through the API.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))
