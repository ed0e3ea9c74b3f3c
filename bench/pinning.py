"""Core pinning for the capture benchmarks: the worker alone on one core, the rest elsewhere.

On a 2-core box a ReArq worker shares its core with PostgreSQL, Redis and the collector, so a
capture mode's extra database and collector work slows the worker down (and inflates its own
CPU per job: fewer jobs per event-loop turn) although none of it runs in the worker. Issue #19
measures the worker "with the collector and the database on other cores": ``--pin`` gives it
core 0 alone and moves everything else the run touches (this process, its children, the
PostgreSQL server and every backend, the private redis-server) to the other cores. Affinity
is per thread, so every thread of a process is moved; PostgreSQL's new backends inherit the
postmaster's. :func:`release` gives them all every core back (also at exit). The PostgreSQL
server is the machine's: while a pinned run lasts, every database on it shares one core, and
a run killed with SIGKILL leaves it there (``taskset -apc 0-N`` on each postgres process
undoes it).
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

ALL = frozenset(range(os.cpu_count() or 1))
WORKER_CPUS = frozenset({0})
OTHER_CPUS = ALL - WORKER_CPUS or ALL
_moved: set[int] = set()  # processes given OTHER_CPUS, to give every core back at the end


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    found = []
    for tid in _threads(pid):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _set(pid: int, cpus: frozenset[int]) -> None:
    for tid in _threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):
            pass  # gone, or not ours to move: the figures then include that sharing


def postmaster(backend_pid: int) -> int:
    """The PostgreSQL server process (a backend's parent)."""
    fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def others(*pids: int) -> None:
    """Move ``pids`` and their descendants off the worker's core."""
    if len(ALL) < 2:
        raise SystemExit("--pin needs at least two cores")
    if not _moved:
        atexit.register(release)
    for pid in pids:
        for member in tree(pid):
            _set(member, OTHER_CPUS)
            _moved.add(member)


def worker(pid: int) -> None:
    """Give the worker process (its threads, not its children) the worker's core alone."""
    _set(pid, WORKER_CPUS)


def release() -> None:
    """Every core back to every process moved (and to their children since)."""
    for pid in sorted(_moved):
        for member in tree(pid):
            _set(member, ALL)
    _moved.clear()
