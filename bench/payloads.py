"""Cost of ``prepare_record`` per capture event: this branch against main's, in one run.

    .venv/bin/python bench/payloads.py            # or --rounds 9 --number 20000

main's ``payloads.py`` is read with ``git show main:src/rearq_tasks/payloads.py`` and loaded
as a module of its own, so both run in the same process on the same records. Plain events
(the capture benchmark's ``noop(i)`` job: queued, in progress, success) must stay within
~1 µs of main; the secret-bearing and already-prepared rows are for information.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import timeit
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

from rearq_tasks import payloads as new  # noqa: E402
from rearq_tasks.redaction import DEFAULT_REDACT_PATTERNS, compile_patterns  # noqa: E402

LIMIT = 64 * 1024


def old_module(ref: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:src/rearq_tasks/payloads.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("old_payloads")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:payloads.py", "exec"), module.__dict__)
    return module


def event(status: str, **fields: object) -> dict[str, object]:
    base = {"job_id": "0b9c3f2e8d7a4c1e9f0a", "task_name": "noop", "queue_name": "default",
            "args": [7], "kwargs": {}, "status": status, "job_retry": 0, "job_retries": 0,
            "job_retry_after": 60, "enqueue_time": 1.7e12, "expire_time": None}  # fmt: skip
    return {**base, **fields}


def cases() -> dict[str, tuple[dict[str, object], dict[str, object]]]:
    """name -> (record as main's capture sends it, record as this branch's would)."""
    done = {"success": True, "finish_time": 1.7e12, "duration_ms": 3, "worker_id": "w-1"}
    kw = {"user_id": 42, "email": "a@example.com", "when": "2026-01-02T03:04:05+00:00"}
    secret = {"password": "hunter2", "dsn": "postgres://u:pw@h/db"}
    return {
        "plain queued": (event("queued"),) * 2,
        "plain in_progress": (event("in_progress", start_time=1.7e12, worker_id="w-1"),) * 2,
        "plain success (int result)": (
            event("success", result="7", **done),
            event("success", result=7, **done),
        ),
        "plain success, text result": (event("success", result="sent", **done),) * 2,
        "plain kwargs (3 keys)": (event("queued", kwargs=kw),) * 2,
        "secret kwargs (full path)": (event("queued", kwargs=secret),) * 2,
    }


def ns_per_call(fn, record, rules, rounds: int, number: int) -> float:
    timer = timeit.Timer(lambda: fn(record, rules))
    return statistics.median(timer.repeat(rounds, number)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    opts = parser.parse_args()
    old = old_module(opts.ref)
    old_rules = old.PayloadRules(LIMIT, old._compile(DEFAULT_REDACT_PATTERNS), frozenset())
    new_rules = new.PayloadRules(LIMIT, compile_patterns(DEFAULT_REDACT_PATTERNS), frozenset())
    print(f"{'event':32} {opts.ref + ' ns':>10} {'branch ns':>10} {'delta ns':>9}")
    for name, (old_record, new_record) in cases().items():
        before = ns_per_call(old.prepare_record, old_record, old_rules, opts.rounds, opts.number)
        after = ns_per_call(new.prepare_record, new_record, new_rules, opts.rounds, opts.number)
        print(f"{name:32} {before:10.0f} {after:10.0f} {after - before:+9.0f}")
    prepared = new.prepare_record(event("queued"), new_rules)
    again = ns_per_call(new.prepare_record, prepared, new_rules, opts.rounds, opts.number)
    print(f"{'already prepared (branch only)':32} {'':10} {again:10.0f}")


if __name__ == "__main__":
    main()
