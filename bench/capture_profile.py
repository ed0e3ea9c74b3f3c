"""Where a captured worker's CPU goes, by function: py-spy samples over one drain.

    python bench/capture_profile.py --jobs 20000 [--mode external] [--save after]
                                    [--compare before]

One worker (``--mode external``: it only sends events, ``manage.py rearq_collector`` writes;
``embedded``: the collector is the worker's own) drains N no-op jobs while ``py-spy record``
samples it at 200 Hz (active samples only). Printed: the worker's CPU µs per job (from
/proc), the share of samples under capture frames (any ``rearq_tasks`` frame that is not the
task itself), and for each capture function the share of samples it is on the stack for
(inclusive) with the µs per job that share is of the worker's CPU. ``--save NAME`` keeps
the figures in ``bench/results/capture_profile-NAME.json``; ``--compare NAME`` prints them
next to this run's (a before/after; against a ``--mode plain`` run, the functions whose
µs per job differ most, any code's: where a capture mode's extra worker CPU goes). ``--pin``
gives the worker core 0 alone (``bench/pinning.py``). Needs ``py-spy`` (``pip install
py-spy``) and the same services as ``bench/capture.py`` (``BENCH_REDIS_URL``,
``BENCH_DB_NAME``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pinning  # noqa: E402
from bench._common import cpu_seconds, redis_server_pid  # noqa: E402
from bench.capture import (  # noqa: E402
    enqueue,
    pg,
    reset,
    setup_database,
    start,
    wait_ready,
)
from harness.processes import terminate  # noqa: E402

REDIS_URL = os.environ["BENCH_REDIS_URL"]
RESULTS = ROOT / "bench" / "results"
CAPTURE_MARK = "rearq_tasks/"
REARQ_MARK = "rearq/"
# The benchmark's task and ReArq's own code called from a capture wrapper are not capture.
NOT_CAPTURE = ("bench/capture_tasks.py",)


def frame_parts(frame: str) -> tuple[str, str]:
    """(function, file) of one py-spy frame ``function (path/file.py:line)``."""
    name, _, where = frame.partition(" (")
    return name, where.rsplit(":", 1)[0]


def capture_key(frame: str) -> str | None:
    name, path = frame_parts(frame)
    if CAPTURE_MARK not in path or any(path.endswith(p) for p in NOT_CAPTURE):
        return None
    module = path.split(CAPTURE_MARK, 1)[1].removesuffix(".py").replace("/", ".")
    return f"{module}.{name}"


def analyse(raw: Path) -> dict[str, object]:
    """Samples in all, under capture, and inclusive samples per capture function. A sample
    is capture's when, walking up from the leaf, a capture frame comes before any frame of
    ReArq or of the task: the job a capture wrapper awaits is ReArq's work, not capture's.
    Only the capture frames below the nearest ReArq frame are charged."""
    total = captured = 0
    by_function: collections.Counter[str] = collections.Counter()
    every: collections.Counter[str] = collections.Counter()  # any frame, inclusive
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        every.update(dict.fromkeys({_short(frame) for frame in stack.split(";")}, n))
        keys: set[str] = set()
        for frame in reversed(stack.split(";")):
            path = frame_parts(frame)[1]
            key = capture_key(frame)
            if key is None and (REARQ_MARK in path or any(path.endswith(p) for p in NOT_CAPTURE)):
                break
            if key is not None:
                keys.add(key)
        if keys:
            captured += n
            by_function.update(dict.fromkeys(keys, n))
    return {"samples": total, "captured": captured, "by_function": dict(by_function),
            "every": dict(every)}  # fmt: skip


def _short(frame: str) -> str:
    """``package/module.py:function`` of a frame, whatever the install prefix."""
    name, path = frame_parts(frame)
    return f"{'/'.join(path.split('/')[-2:])}:{name}"


def profile(mode: str, jobs: int, rate: int, pin: bool = False) -> dict[str, object]:
    import redis as redis_lib

    setup_database()
    conn = pg()
    redis = redis_lib.Redis.from_url(REDIS_URL, decode_responses=True)
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / "capture_profile.log"
    log.write_text("")
    raw = RESULTS / f"capture_profile-{mode}.raw"
    reset(conn, redis)
    procs = start(mode, log)
    spy = None
    try:
        wait_ready(redis, mode, procs)
        worker = procs[0].pid
        if pin:  # the worker alone on core 0 (bench/pinning.py); py-spy starts off it
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[attr-defined]
            pinning.others(os.getpid(), pinning.postmaster(backend), redis_server_pid(redis) or 0)
            for pid in procs[1:]:
                pinning.others(pid.pid)
            pinning.worker(worker)
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "-r",
                str(rate),
                "--format",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(worker),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        cpu0 = cpu_seconds(worker)
        enqueue(conn, redis, jobs)
        deadline = time.monotonic() + 600
        while conn.execute("SELECT count(*) FROM rearq_job_results").fetchone()[0] < jobs:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not drain")
            time.sleep(0.05)
        cpu1 = cpu_seconds(worker)
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        terminate(procs)
        pinning.release()
    result = analyse(raw)
    result.update(mode=mode, jobs=jobs, load=os.getloadavg(),
                  worker_us_per_job=(cpu1 - cpu0) * 1e6 / jobs)  # fmt: skip
    return result


def show(result: dict[str, object], other: dict[str, object] | None) -> None:
    def us(r: dict[str, object], samples: int) -> float:
        return float(r["worker_us_per_job"]) * samples / max(1, int(r["samples"]))  # type: ignore[arg-type]

    def cell(r: dict[str, object] | None, key: str | None) -> str:
        if r is None:
            return ""
        n = int(r["captured"] if key is None else r["by_function"].get(key, 0))  # type: ignore[union-attr,arg-type]
        return f"{100 * n / max(1, int(r['samples'])):5.1f} % {us(r, n):6.1f} µs"  # type: ignore[arg-type]

    print(f"mode {result['mode']}, {result['jobs']} jobs, load average {result['load']}")
    print(f"worker CPU {float(result['worker_us_per_job']):.0f} µs/job"  # type: ignore[arg-type]
          + (f" (compared: {float(other['worker_us_per_job']):.0f})" if other else ""))  # type: ignore[arg-type]  # fmt: skip
    head = f"{'function (inclusive)':52} {'this run':>18}"
    print(head + (f" {'compared':>18}" if other else ""))
    print(f"{'all capture frames':52} {cell(result, None):>18} {cell(other, None):>18}")
    keys = set(result["by_function"]) | set(other["by_function"] if other else ())  # type: ignore[arg-type]
    ranked = sorted(
        keys,
        key=lambda k: (
            -max(
                int(result["by_function"].get(k, 0)),  # type: ignore[union-attr]
                int(other["by_function"].get(k, 0)) if other else 0,  # type: ignore[union-attr]
            )
        ),
    )
    for key in ranked[:25]:
        print(f"{key:52} {cell(result, key):>18} {cell(other, key):>18}")
    if other is not None and "every" in other:
        differences(result, other, us)


def differences(result: dict[str, object], other: dict[str, object], us: object) -> None:
    """The functions (any code, inclusive) whose µs per job differ most between the runs:
    with ``--mode plain`` on one side, where a capture mode's extra worker CPU goes."""
    this, that = result["every"], other["every"]  # type: ignore[index]
    rows = [(key, us(result, this.get(key, 0)), us(other, that.get(key, 0)))  # type: ignore[operator,union-attr]
            for key in set(this) | set(that)]  # type: ignore[arg-type]  # fmt: skip
    rows.sort(key=lambda row: -abs(row[1] - row[2]))
    print(f"\n{'any function (inclusive), µs per job':64} {'this':>8} {'compared':>9} {'diff':>7}")
    for key, mine, theirs in rows[:30]:
        print(f"{key[:64]:64} {mine:8.1f} {theirs:9.1f} {mine - theirs:+7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--mode", choices=("external", "embedded", "plain"), default="external")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--pin", action="store_true", help="the worker alone on core 0")
    parser.add_argument("--save", help="keep this run's figures under this name")
    parser.add_argument("--compare", help="print a saved run's figures next to this one")
    args = parser.parse_args()
    other = None
    if args.compare:
        other = json.loads((RESULTS / f"capture_profile-{args.compare}.json").read_text())
    result = profile(args.mode, args.jobs, args.rate, args.pin)
    if args.save:
        (RESULTS / f"capture_profile-{args.save}.json").write_text(json.dumps(result, indent=1))
    show(result, other)


if __name__ == "__main__":
    main()
