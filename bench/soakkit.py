"""The fault-injection soak, shared by ``bench/soak.py`` and the CI test
(``tests/integration/test_soak.py``): the job mix, the run (faults on a timeline) and the
field-by-field comparison of TaskLog with ReArq's ``rearq_job``/``rearq_job_results``. Its
machinery is the harness's: a private ``redis-server`` and the fault proxy that takes the
Django database away or slows it down (``harness.network``), the worker supervisor
(``harness.processes``), the soak's databases (``harness.databases``).

Every process of the soak runs with ``bench.soak_settings``; the workers reach PostgreSQL
only through the proxy, the enqueuer and ``sync_task_logs`` directly. Nothing here touches
the machine's shared Redis, and on PostgreSQL only the soak's own two databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.databases import pg_connect, recreate_database
from harness.network import FaultProxy, RedisServer
from harness.processes import ROOT, Supervisor, child_env, manage_argv

SETTINGS = "bench.soak_settings"
GROUP = "soak"
TASKLOG_TABLE = "django_cfg_task_log"
TERMINAL = {"success", "failed", "expired", "canceled"}


# --- the job mix (runs in the enqueuer process) -----------------------------------------------
KINDS = [("success", 60), ("retry_then_success", 10), ("always_fail", 8), ("expired", 5)] + [
    ("deferred", 8),
    ("nap", 7),
    ("cancel_waiting", 1),
    ("cancel_running", 1),
]


def kind_of(i: int) -> str:
    slot = i % 100
    for kind, share in KINDS:
        if slot < share:
            return kind
        slot -= share
    raise AssertionError(i)


def _spec(tasks: Any, i: int, run_id: str) -> tuple[str, Any, dict[str, Any]]:
    kind = kind_of(i)
    if kind == "success":
        return kind, tasks["add"], {"args": (i, 1)}
    if kind == "retry_then_success":
        return kind, tasks["flaky"], {"args": (f"{run_id}-{i}",)}
    if kind == "always_fail":
        return kind, tasks["always_fail"], {"args": (f"r{i}",)}
    if kind == "expired":
        return kind, tasks["add"], {"args": (i, 2), "expire": 0.001}
    if kind == "deferred":
        return kind, tasks["add"], {"args": (i, 3), "countdown": 1 + i % 12}
    if kind == "nap":
        return kind, tasks["nap"], {"args": (f"{run_id}-{i}", 0.2 + (i % 7) / 5)}
    if kind == "cancel_waiting":
        return kind, tasks["add"], {"args": (i, 4), "countdown": 30}
    return kind, tasks["nap"], {"args": (f"{run_id}-{i}", 4.0)}


def enqueue_main(jobs: int, rate: float, out: Path) -> None:
    """Enqueue ``jobs`` at ``rate`` per second and cancel the cancel kinds; write the mix."""
    import django

    django.setup()
    import redis

    from rearq_tasks.conf import conf
    from rearq_tasks.models import TaskLog
    from rearq_tasks.queue.client import get_rearq_client, load_task_modules
    from rearq_tasks.queue.jobs import cancel_job
    from rearq_tasks.queue.loop import run_sync

    rearq = get_rearq_client()
    load_task_modules()
    tasks = rearq.task_map
    run_id = uuid.uuid4().hex[:8]
    plain = redis.Redis.from_url(conf.REDIS_URL, decode_responses=True, socket_timeout=5)
    kinds: dict[str, str] = {}
    counts: Counter[str] = Counter()
    pending: list[tuple[float, str, str, str | None]] = []  # (due, kind, job_id, token)
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    progress = out.with_suffix(".progress")
    started = time.monotonic()

    def cancel(job_id: str) -> bool:
        row = TaskLog.objects.filter(job_id=job_id).first()
        if row is None or row.status in TERMINAL:
            return False
        try:
            cancel_job(row)
        except Exception as exc:
            print(f"cancel {job_id}: {exc}", file=sys.stderr)
            return False
        return True

    def work_cancels(final: bool) -> None:
        now = time.monotonic()
        for item in list(pending):
            due, kind, job_id, token = item
            if kind == "cancel_running":
                try:
                    running = bool(plain.exists(f"soak:running:{token}"))
                except redis.RedisError:
                    continue
                if not running and now < due:
                    continue
            elif now < due and not final:
                continue
            pending.remove(item)
            counts[f"{kind}_{'done' if cancel(job_id) else 'skipped'}"] += 1

    retry: list[int] = []  # refused while Redis restarted: enqueued again, as a client would
    n, next_i = 0, 0
    while next_i < jobs or retry:
        numbers, retry = retry[:per_tick], retry[per_tick:]
        take = min(jobs, next_i + per_tick - len(numbers))
        numbers += list(range(next_i, take))
        next_i = take
        specs = [_spec(tasks, i, run_id) for i in numbers]

        async def go(specs: list = specs) -> list:
            coros = [task.delay(**options) for _kind, task, options in specs]
            return await asyncio.gather(*coros, return_exceptions=True)

        try:
            results = run_sync(go, timeout=60)
        except Exception as exc:
            results = [exc] * len(specs)
        for i, (kind, _task, options), job in zip(numbers, specs, results, strict=True):
            if isinstance(job, BaseException) or job is None:
                counts["enqueue_refused_then_retried"] += 1
                retry.append(i)
                continue
            kinds[job.job_id] = kind
            counts[kind] += 1
            if kind == "cancel_waiting":
                pending.append((time.monotonic() + 1.0, kind, job.job_id, None))
            elif kind == "cancel_running":
                pending.append((time.monotonic() + 12.0, kind, job.job_id, options["args"][0]))
        work_cancels(final=False)
        progress.write_text(str(len(kinds)))
        n += 1
        pause = started + n * tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    deadline = time.monotonic() + 15
    while pending and time.monotonic() < deadline:
        work_cancels(final=False)
        time.sleep(0.1)
    work_cancels(final=True)
    out.write_text(json.dumps({"kinds": kinds, "counts": counts}))


# --- the run ----------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    jobs: int = 10_000
    rate: float = 80.0
    db_down_s: float = 10.0
    db_slow_s: float = 10.0
    db_slow_ms: float = 200.0
    redis_down_s: float = 2.0
    django_db: str = "rt_soak"
    rearq_db: str = "rt_soak_rearq"
    migrate: bool = True
    job_timeout: int = 5
    settle_timeout: float = 180.0
    workdir: Path | None = None
    log: Any = print


@dataclass
class SoakResult:
    jobs: int
    mix: dict[str, int]
    faults: list[str]
    comparison: Comparison
    counters: dict[str, int]
    redis_counters: dict[str, int]
    sync_output: str
    seconds: float
    enqueue_seconds: float
    load: str
    crashes: list[str] = field(default_factory=list)


def _env(config: SoakConfig, redis_url: str, db_port: int | None) -> dict[str, str]:
    env = child_env(
        SETTINGS,
        SOAK_DB_NAME=config.django_db,
        SOAK_REDIS_URL=redis_url,
        SOAK_REARQ_DB_URL=f"postgres://postgres@127.0.0.1:5432/{config.rearq_db}",
        SOAK_JOB_TIMEOUT=str(config.job_timeout),
    )
    env.pop("SOAK_DB_PORT", None)
    if db_port is not None:
        env["SOAK_DB_PORT"] = str(db_port)
    return env


def _manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        manage_argv(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _unsettled(rearq_db: str) -> int:
    with pg_connect(rearq_db) as conn:
        return conn.execute(
            "SELECT count(*) FROM rearq_job WHERE status IN ('queued', 'deferred', 'in_progress')"
        ).fetchone()[0]


def _stream_backlog(client: Any) -> int:
    """Events in the capture stream not yet written (undelivered + unacknowledged)."""
    try:
        groups = client.xinfo_groups("rearq_tasks:events")
    except Exception:
        return 0
    return sum((g.get("lag") or 0) + g.get("pending", 0) for g in groups)


def _settle(config: SoakConfig, supervisor: Supervisor, client: Any, not_before: float) -> None:
    """Wait until ReArq's unsettled count stays put for 10 s and the capture stream is
    empty, not before ``not_before`` (monotonic)."""
    deadline = time.monotonic() + config.settle_timeout
    last, steady = -1, 0.0
    while time.monotonic() < deadline:
        supervisor.check()
        unsettled = _unsettled(config.rearq_db)
        backlog = _stream_backlog(client)
        steady = steady + 1 if unsettled == last else 0
        last = unsettled
        if steady >= 10 and backlog == 0 and time.monotonic() > not_before:
            return
        time.sleep(1)


def run_soak(config: SoakConfig) -> SoakResult:
    log = config.log
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="rearq-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    recreate_database(config.rearq_db)
    if config.migrate:
        recreate_database(config.django_db)
    redis_server = RedisServer(workdir)
    redis_server.start()
    proxy = FaultProxy()
    direct = _env(config, redis_server.url, None)
    if config.migrate:
        _manage(direct, "migrate", "--verbosity", "0")
    supervisor = Supervisor(_env(config, redis_server.url, proxy.port), workdir, GROUP)
    faults: list[str] = []
    stop = threading.Event()
    try:
        for name in ("w1", "w2", "timer"):
            supervisor.start(name)
        time.sleep(4)  # workers create their consumer groups
        mix_file = workdir / "mix.json"
        enqueuer = subprocess.Popen(
            [sys.executable, "-m", "bench.soakkit", "enqueue", "--jobs", str(config.jobs),
             "--rate", str(config.rate), "--out", str(mix_file)],
            cwd=ROOT, env=direct, stdout=(workdir / "enqueuer.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        t0 = time.monotonic()
        progress = mix_file.with_suffix(".progress")

        def at(fraction: float) -> None:
            """Wait until that fraction of the jobs is enqueued (the enqueuer's real pace)."""
            while not stop.is_set() and enqueuer.poll() is None:
                try:
                    if int(progress.read_text() or 0) >= fraction * config.jobs:
                        return
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)

        def busy(name: str, timeout: float = 10.0) -> None:
            """Wait until the worker holds unacknowledged jobs: a kill then hits mid-job."""
            client = redis_server.client()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    if client.xpending_range(
                        "rearq:queue:default", GROUP, "-", "+", 1, consumername=name
                    ):
                        return
                except Exception:
                    pass
                time.sleep(0.02)

        def inject() -> None:
            at(0.15)
            busy("w1")
            supervisor.kill("w1")
            faults.append(f"{time.monotonic() - t0:5.1f}s SIGKILL worker w1 mid-job")
            time.sleep(2)
            supervisor.start("w1")
            at(0.3)
            proxy.cut()
            faults.append(
                f"{time.monotonic() - t0:5.1f}s Django DB unreachable {config.db_down_s:g}s"
            )
            time.sleep(config.db_down_s)
            proxy.slow(config.db_slow_ms)
            faults.append(
                f"{time.monotonic() - t0:5.1f}s Django DB slow (+{config.db_slow_ms:g} ms a round "
                f"trip) {config.db_slow_s:g}s"
            )
            time.sleep(config.db_slow_s)
            proxy.restore()
            at(0.6)
            faults.append(f"{time.monotonic() - t0:5.1f}s ReArq's redis-server restarted "
                          f"({config.redis_down_s:g}s down)")  # fmt: skip
            redis_server.restart(config.redis_down_s)
            at(0.8)
            busy("w2")
            supervisor.kill("w2")
            faults.append(f"{time.monotonic() - t0:5.1f}s SIGKILL worker w2 mid-job")
            time.sleep(2)
            supervisor.start("w2")

        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
        while enqueuer.poll() is None or injector.is_alive():
            supervisor.check()
            time.sleep(0.5)
        if enqueuer.returncode:
            raise RuntimeError(f"the enqueuer failed: {(workdir / 'enqueuer.log').read_text()}")
        enqueue_seconds = time.monotonic() - t0
        log(f"enqueued in {enqueue_seconds:.0f}s; waiting for ReArq and capture to settle")
        # ReArq finishes what it can; jobs it lost stay unsettled. Then the lost-job window
        # (fetched-but-unstarted jobs count from their enqueue: 5 timeouts) and the capture
        # stream (a killed collector's pending events are claimed after 30 s idle).
        lost_after = time.monotonic() + 5 * max(config.job_timeout, 5) + 2
        client = redis_server.client()
        _settle(config, supervisor, client, lost_after)
        # Jobs a killed worker fetched but never started are re-enqueued by sync_task_logs
        # while workers run; their re-runs settle like any job.
        recover_output = _manage(direct, "sync_task_logs", "--verbosity", "0").strip()
        log(f"sync with workers running: {recover_output}")
        _settle(config, supervisor, client, time.monotonic())
        redis_counters = {
            k: int(v) for k, v in client.hgetall("rearq_tasks:events:counters").items()
        }
    finally:
        stop.set()
        supervisor.stop_all()
        proxy.close()
    try:
        sync_output = _manage(direct, "sync_task_logs", "--verbosity", "0").strip()
        comparison = compare(config.django_db, config.rearq_db)
        mix = json.loads(mix_file.read_text())["counts"]
    finally:
        redis_server.stop()
    return SoakResult(
        jobs=comparison.rearq_jobs, mix=mix, faults=faults, comparison=comparison,
        counters=supervisor.capture_counters(), redis_counters=redis_counters,
        sync_output=sync_output, seconds=time.monotonic() - began,
        enqueue_seconds=enqueue_seconds,
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()), crashes=supervisor.crashes,
    )  # fmt: skip


# --- the comparison ---------------------------------------------------------------------------
@dataclass
class Comparison:
    rearq_jobs: int = 0
    rows: int = 0
    missing: int = 0
    duplicated: int = 0
    extra: int = 0
    wrong: int = 0
    left_in_progress: int = 0
    # Jobs a killed worker fetched but never started: re-enqueued once (sync_task_logs).
    recovered: int = 0
    recovered_not_run_once: int = 0
    unstarted_left_lost: int = 0
    lost_by_rearq: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


REARQ_SQL = """
SELECT j.job_id, j.task, j.args, j.kwargs, j.job_retry, j.job_retries, j.enqueue_time,
       j.expire_time, j.status, r.worker, r.success, r.result, r.start_time, r.finish_time,
       (SELECT count(*) FROM rearq_job_results c WHERE c.job_id = j.id) AS runs
FROM rearq_job j LEFT JOIN LATERAL (
  SELECT worker, success, result, start_time, finish_time FROM rearq_job_results
  WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON TRUE
"""
TASKLOG_SQL = f"""
SELECT job_id, task_name, queue_name, args, kwargs, status, job_retry, job_retries, enqueue_time,
       expire_time, start_time, finish_time, duration_ms, success, result, error_message, worker_id,
       retry_of
FROM {TASKLOG_TABLE}
"""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def compare(django_db: str, rearq_db: str) -> Comparison:
    """TaskLog against ReArq's tables, field by field (see docs/reliability.md)."""
    with pg_connect(rearq_db) as conn:
        cur = conn.execute(REARQ_SQL)
        names = [c.name for c in cur.description]
        rearq = {row[0]: dict(zip(names, row, strict=True)) for row in cur}
    with pg_connect(django_db) as conn:
        cur = conn.execute(TASKLOG_SQL)
        names = [c.name for c in cur.description]
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in cur:
            rows.setdefault(row[0], []).append(dict(zip(names, row, strict=True)))
    result = Comparison(rearq_jobs=len(rearq), rows=sum(len(v) for v in rows.values()))
    extra = sorted(set(rows) - set(rearq))
    result.extra = len(extra)
    for job_id in extra[:10]:
        log = rows[job_id][0]
        result.examples.append(
            f"extra {job_id} ({log['task_name']}, TaskLog {log['status']}, enqueued "
            f"{log['enqueue_time']}, retry_of {log['retry_of']}, error {log['error_message']!r})"
        )
    _check_recovered(rearq, rows, result)
    for job_id, job in rearq.items():
        found = rows.get(job_id, [])
        if not found:
            result.missing += 1
            result.examples.append(f"missing {job_id} ({job['task']}, ReArq {job['status']})")
            continue
        if len(found) > 1:
            result.duplicated += 1
        log = found[0]
        result.statuses[log["status"]] += 1
        if log["status"] == "in_progress":
            result.left_in_progress += 1
        diffs = _diffs(job, log, result)
        if diffs:
            result.wrong += 1
            if len(result.examples) < 20:
                result.examples.append(f"wrong {job_id} ({job['task']}): {'; '.join(diffs)}")
    return result


def _diffs(job: dict[str, Any], log: dict[str, Any], result: Comparison) -> list[str]:
    diffs: list[str] = []

    def check(name: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            diffs.append(f"{name}: ReArq {expected!r} != TaskLog {actual!r}")

    status = job["status"]
    if status == "in_progress":
        # ReArq lost it (killed worker: never re-run; or it sits unacknowledged for ever).
        error = log["error_message"] or ""
        if log["status"] == "failed" and error.startswith("lost before it started"):
            result.lost_by_rearq["in_progress in ReArq, never started, re-enqueued"] += 1
        elif log["status"] == "failed" and error.startswith("lost:"):
            result.lost_by_rearq["in_progress in ReArq, failed (lost) in TaskLog"] += 1
        elif log["status"] == "success" and log["success"]:
            # It ran to its end; ReArq's ack raised (Redis away) before it saved anything.
            result.lost_by_rearq[
                "in_progress in ReArq, success in TaskLog (ReArq's ack failed)"
            ] += 1
        else:
            diffs.append(f"ReArq lost the job (in_progress) but TaskLog says {log['status']}")
    else:
        check("status", status, log["status"])
        if status in ("queued", "deferred"):
            result.lost_by_rearq[f"{status} for ever in ReArq and TaskLog"] += 1
    check("task_name", job["task"], log["task_name"])
    check("queue_name", "default", log["queue_name"])
    check("args", list(_json(job["args"]) or []), log["args"])
    check("kwargs", dict(_json(job["kwargs"]) or {}), log["kwargs"])
    check("job_retry", job["job_retry"], log["job_retry"])
    check("job_retries", job["job_retries"], log["job_retries"])
    check("enqueue_time", job["enqueue_time"], log["enqueue_time"])
    check("expire_time", job["expire_time"], log["expire_time"])
    if status in ("success", "failed") and job["finish_time"] is not None:
        check("worker_id", job["worker"], log["worker_id"])
        check("finish_time", job["finish_time"], log["finish_time"])
        check("success", job["success"], log["success"])
        text = log["result"] if status == "success" else log["error_message"]
        check("result" if status == "success" else "error_message", job["result"], text)
        start = log["start_time"]
        if start is None or start < job["start_time"]:
            diffs.append(f"start_time {start!r} before ReArq's {job['start_time']!r}")
        elif (
            log["duration_ms"] is None
            or abs(log["duration_ms"] - (log["finish_time"] - start).total_seconds() * 1000) > 1
        ):
            diffs.append(f"duration_ms {log['duration_ms']!r} != finish - start")
    if status == "expired":
        check("success", False, log["success"])
    return diffs


def _dropped(job: dict[str, Any]) -> bool:
    """Whether ReArq's current attempt of ``job`` never ran: one result row per earlier
    attempt, none for this one."""
    return job["runs"] == (job["job_retries"] or 0)


def _check_recovered(
    rearq: dict[str, dict[str, Any]], rows: dict[str, list[dict[str, Any]]], result: Comparison
) -> None:
    """Each re-run of a dropped job: the dropped attempt never ran, its re-run ran exactly
    once (settled, one result row per attempt); no fetched-but-unstarted job is left lost.

    The dropped attempt need not be the first: a job that failed, was retried by ReArq and
    had its retry fetched by a worker that then died ran its earlier attempts (one result
    row each) and never its last; ``_dropped`` is that rule.

    A re-run can be dropped in turn (the second SIGKILLed worker had fetched it): it never
    ran either, and its own re-run is the one that must have run once."""
    rerun_again = {found[0]["retry_of"] for found in rows.values() if found[0]["retry_of"]}
    for job_id, found in rows.items():
        log = found[0]
        original = rearq.get(log["retry_of"] or "")
        if original is None:
            continue
        result.recovered += 1
        job = rearq.get(job_id)
        if job is not None and job_id in rerun_again:
            ran_once = _dropped(original) and _dropped(job)
        else:
            ran_once = (
                job is not None
                and _dropped(original)
                and job["status"] in ("success", "failed")
                and job["runs"] == job["job_retries"] + 1
                # only the retries the dropped job had left
                and job["job_retry"] == max(original["job_retry"] - original["job_retries"], 0)
            )
        if not ran_once:
            result.recovered_not_run_once += 1
            state = (
                "gone"
                if job is None
                else (
                    f"ReArq {job['status']}, {job['runs']} runs, "
                    f"{job['job_retries']} of {job['job_retry']} retries"
                )
            )
            result.examples.append(
                f"re-run {job_id} of {log['retry_of']} (which ran {original['runs']} of "
                f"{original['job_retries'] + 1} attempts) "
                f"did not run once: {state}, TaskLog {log['status']}"
            )
    for job_id, job in rearq.items():
        log = (rows.get(job_id) or [{}])[0]
        error = log.get("error_message") or ""
        never_started = job["status"] == "in_progress" and _dropped(job)
        if never_started and error.startswith("lost:") and log.get("start_time") is None:
            result.unstarted_left_lost += 1
            result.examples.append(f"{job_id} fetched, never started, left lost")


# --- the report -------------------------------------------------------------------------------
def format_report(result: SoakResult) -> str:
    c = result.comparison
    lines = [
        f"jobs (rearq_job rows): {result.jobs}   TaskLog rows: {c.rows}   "
        f"run time: {result.seconds:.0f}s (enqueueing {result.enqueue_seconds:.0f}s)   "
        f"load average at end: {result.load}",
        "mix: " + ", ".join(f"{k} {v}" for k, v in sorted(result.mix.items())),
        f"faults injected: {len(result.faults)}",
        *[f"  {f}" for f in result.faults],
        "processes that exited unasked (restarted): "
        + (", ".join(result.crashes) if result.crashes else "none"),
        f"missing: {c.missing}   duplicated: {c.duplicated}   wrong: {c.wrong}   "
        f"extra rows: {c.extra}   left in_progress: {c.left_in_progress}",
        f"fetched but never started (ReArq dropped them): {c.recovered} re-enqueued, "
        f"{c.recovered_not_run_once} of them not run exactly once, "
        f"{c.unstarted_left_lost} left lost",
        "TaskLog statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(c.statuses.items())),
        "lost by ReArq itself: "
        + (", ".join(f"{v} {k}" for k, v in sorted(c.lost_by_rearq.items())) or "none"),
        "capture counters (workers, summed): "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.counters.items())),
        "capture counters in Redis: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.redis_counters.items())) or "none"),
        f"sync_task_logs: {result.sync_output}",
        *c.examples[:20],
    ]
    return "\n".join(lines)


def _main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    enqueue = sub.add_parser("enqueue")
    enqueue.add_argument("--jobs", type=int, required=True)
    enqueue.add_argument("--rate", type=float, required=True)
    enqueue.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    enqueue_main(args.jobs, args.rate, args.out)


if __name__ == "__main__":
    _main()
