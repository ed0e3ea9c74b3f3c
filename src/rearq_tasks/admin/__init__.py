"""The Unfold admin of TaskLog: changelist, detail, actions and the dashboard (a surface).

``TaskLogAdmin`` lives in :mod:`rearq_tasks.admin.tasklog`; the app config registers it when
``django.contrib.admin`` is installed. This package module stays empty so that the template
tags can import :mod:`rearq_tasks.admin.filters` while Unfold renders its own admin class.
"""
