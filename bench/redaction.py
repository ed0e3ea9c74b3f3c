"""Cost of redacting ReArq's own per-job log lines: this branch against a git ref, in one run.

    python bench/redaction.py            # or --ref <commit> --rounds 9 --lines 4000

ReArq logs two loguru lines per job (``rearq/worker.py``): ``"%6.2fs → %s"`` at the start and
``"%6.2fs ← %s ● %s"`` at the end, ``%s`` being ``<job_id>:<task>(<args_to_string>)``. The
capture's loguru patcher passes each through ``redact_text``. The ref's ``redaction.py``
(``git show REF:src/rearq_tasks/redaction.py``, loaded as a module of its own) and this
branch's run on the same lines, interleaved per round; printed: µs per line (median of the
rounds; fresh job ids each round, as in a worker) of ``text_is_clean`` and ``redact_text``
for each kind of line, and of the patcher's call itself (``patcher``: the ref's
``redact_text`` against this branch's ``capture.log_lines.redact_log_line``), with ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

from rearq.utils import args_to_string  # noqa: E402

from rearq_tasks import redaction as new  # noqa: E402
from rearq_tasks.capture.log_lines import redact_log_line  # noqa: E402


def old_module(ref: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:src/rearq_tasks/redaction.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("old_redaction")
    exec(compile(source, f"{ref}:redaction.py", "exec"), module.__dict__)
    return module


def rearq_lines(count: int, task: str, args: list[object], kwargs: dict[str, object]) -> list[str]:
    """ReArq's start and end line of ``count`` jobs, formatted as ``rearq/worker.py`` does."""
    lines = []
    for i in range(count):
        ref = f"{uuid.uuid4().hex}:{task}({args_to_string(args or [i], kwargs)})"
        lines.append(f"{i % 7 / 100:6.2f}s → {ref}")
        lines.append(f"{i % 3 / 100:6.2f}s ← {ref} ● {i}")
    return lines


CASES: dict[str, tuple[str, list[object], dict[str, object]]] = {
    "noop(i) (the capture benchmark's job)": ("noop", [], {}),
    "send(str, kwargs)": ("send_email", ["ann@example.com"], {"subject": "Hello", "retry": 2}),
    "login(password=…) (dirty)": ("login", ["ann"], {"password": "hunter2"}),
}


def us_per_line(fn: Callable[[str], object], lines: list[str]) -> float:
    start = time.perf_counter()
    for line in lines:
        fn(line)
    return (time.perf_counter() - start) / len(lines) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main", help="the code to compare with (git ref)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--lines", type=int, default=4000, help="lines per case and round")
    opts = parser.parse_args()
    old = old_module(opts.ref)
    old_p = old.compile_patterns(old.DEFAULT_REDACT_PATTERNS)
    new_p = new.compile_patterns(new.DEFAULT_REDACT_PATTERNS)
    print(f"load average {os.getloadavg()}; {opts.rounds} rounds, µs per line (median)")
    print(f"{'line':40} {'function':14} {opts.ref:>8} {'branch':>8} {'ratio':>7}")
    for name, (task, args, kwargs) in CASES.items():
        for fn in ("text_is_clean", "redact_text", "patcher"):
            before, after = [], []
            old_f = old.redact_text if fn == "patcher" else getattr(old, fn)
            new_f = redact_log_line if fn == "patcher" else getattr(new, fn)
            old_fn = functools.partial(lambda line, f: f(line, old_p), f=old_f)
            new_fn = functools.partial(lambda line, f: f(line, new_p), f=new_f)
            for _ in range(opts.rounds):  # interleaved: both see the same load
                # Fresh job ids each round, as in a worker: no key cache knows them yet.
                lines = rearq_lines(opts.lines // 2, task, args, kwargs)
                before.append(us_per_line(old_fn, lines))
                after.append(us_per_line(new_fn, lines))
            b, a = statistics.median(before), statistics.median(after)
            print(f"{name:40} {fn:14} {b:8.2f} {a:8.2f} {b / a:6.1f}x")
        same = all(
            old.redact_text(x, old_p) == new.redact_text(x, new_p) == redact_log_line(x, new_p)
            for x in lines
        )
        print(f"{'':40} {'same output':14} {str(same):>8}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
