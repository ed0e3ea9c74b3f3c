"""Retry and Cancel in the admin: confirmation on GET, ReArq only on a POST with CSRF.

Each row gets its own message (done, or why not); one bad row never aborts the others or
becomes a 500. The row menu, the detail page and the bulk actions all end in ``_operate``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from rearq_tasks import audit
from rearq_tasks.access import VIEW_PERMISSION
from rearq_tasks.conf import conf
from rearq_tasks.models import TaskLog
from rearq_tasks.operation_models import ACTION_PERMISSIONS, Action

logger = logging.getLogger("rearq_tasks.admin")

RETRY_PERMISSION = ACTION_PERMISSIONS[Action.RETRY]
CANCEL_PERMISSION = ACTION_PERMISSIONS[Action.CANCEL]
DELETE_PERMISSION = ACTION_PERMISSIONS[Action.DELETE]


def can_operate(request: HttpRequest, permission: str) -> bool:
    """Retry/Cancel/Delete: active staff granted ``permission`` *and* ``tasks.view_tasklog``.

    Acting on a job one may not look at would be blind (and the confirmation page shows
    the job); superusers hold every permission.
    """
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and user.has_perm(VIEW_PERMISSION)
        and user.has_perm(permission)
    )


class JobActionsMixin:
    """For a ModelAdmin of TaskLog that defines ``_change_url(obj)``."""

    def _confirm_or_run(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        """GET shows a confirmation form; only its POST (with CSRF) touches ReArq."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No task log with id {object_id!r}")
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "object": obj,
                "kind": kind,
                "title": _("Retry this job?") if kind == "retry" else _("Cancel this job?"),
                "change_url": self._change_url(obj),
            }
            return TemplateResponse(request, "rearq_tasks/admin/confirm_action.html", context)
        self._operate(request, kind, [obj])
        return HttpResponseRedirect(self._change_url(obj))

    def _operate(self, request: HttpRequest, kind: str, logs: Iterable[TaskLog]) -> None:
        """Run ``kind`` on each row; one message per row says what happened or why not."""
        limit = conf.ADMIN_ACTION_MAX_ROWS
        rows = list(logs[: limit + 1] if isinstance(logs, QuerySet) else logs)
        if len(rows) > limit:
            self.message_user(
                request,
                _("Select at most %(limit)s jobs at a time; nothing was done.") % {"limit": limit},
                messages.ERROR,
            )
            return
        done = 0
        for log in rows:
            ok, message = self._operate_one(request, kind, log)
            done += ok
            self.message_user(request, message, messages.SUCCESS if ok else messages.ERROR)
        audit.record(
            kind,
            source="admin",
            request=request,
            job_ids=[log.job_id for log in rows],
            matched=len(rows),
            done=done,
            failed=len(rows) - done,
        )
        if len(rows) > 1:
            verb = _("retried") if kind == "retry" else _("canceled")
            self.message_user(
                request,
                ngettext(
                    "%(done)s of %(total)s job %(verb)s.",
                    "%(done)s of %(total)s jobs %(verb)s.",
                    len(rows),
                )
                % {"done": done, "total": len(rows), "verb": verb},
                messages.INFO,
            )

    def _operate_one(self, request: HttpRequest, kind: str, log: TaskLog) -> tuple[bool, str]:
        from rearq_tasks.queue import jobs
        from rearq_tasks.queue.loop import ReArqUnavailable

        try:
            if kind == "retry":
                new_job_id = jobs.retry_job(log, user=request.user)
            else:
                jobs.cancel_job(log)
        except ReArqUnavailable as exc:
            return False, format_html(
                "Could not {} job {}: ReArq is unavailable ({}).", kind, log.job_id, str(exc)
            )
        except ValueError as exc:
            return False, format_html("Could not {} job {}: {}", kind, log.job_id, str(exc))
        except Exception as exc:  # one bad row must not abort the others or become a 500
            logger.exception("admin %s of job %s failed", kind, log.job_id)
            return False, format_html(
                "Could not {} job {}: unexpected error {}.", kind, log.job_id, type(exc).__name__
            )
        if kind == "cancel":
            return True, format_html("Cancel requested for job {}.", log.job_id)
        new_log = TaskLog.objects.filter(job_id=new_job_id).only("pk").first()
        if new_log is not None:
            url = self._change_url(new_log)
        else:  # its row is written by the capture a moment later: search for it
            changelist = reverse(f"{self.admin_site.name}:tasks_tasklog_changelist")
            url = f"{changelist}?{urlencode({'q': new_job_id})}"
        message = format_html('Job {} retried as <a href="{}">{}</a>.', log.job_id, url, new_job_id)
        return True, message
