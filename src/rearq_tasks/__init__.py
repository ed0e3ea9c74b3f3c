"""django-rearq-tasks: a complete, trustworthy record and view of every ReArq job."""

from __future__ import annotations

__version__ = "0.1.0"
