"""What lifecycle capture costs a ReArq worker, measured against ReArq alone in the same run.

    python bench/capture.py --jobs 2000 --rounds 10

Each round runs, in an alternating order, one worker draining N no-op jobs:
``plain`` (ReArq alone), ``embedded`` (capture, the collector inside the worker) and
``external`` (capture, the worker only sends events; ``manage.py rearq_collector`` writes),
``external-norollup`` (the same with the statistics rollup triggers disabled) and
``external-0008`` (the same with the trigger functions as migration 0008 installed them,
before the early exit of 0013) and ``external-nogin`` (the same without the argument GIN
indexes of migration 0009; with ``--kwargs`` every job carries realistic keyword arguments,
so that the indexes have keys to write).
Django and ReArq share one PostgreSQL database; Redis is ``BENCH_REDIS_URL`` (its DB is
flushed). Drain time = first XADD -> last JobResult.finish_time. Printed: the median of
per-round throughput ratios against ``plain``, the capture lag (JobResult.finish_time ->
TaskLog row written, p50/p95), the job history rows stored per job, and CPU microseconds
per job of the worker, the collector (in embedded mode the worker's child process), the
PostgreSQL backends of the benchmark database and redis-server (from /proc). Redis is a
private ``redis-server`` on a free port started for the run, so its CPU is the benchmark's
alone; ``--pin`` gives the worker core 0 alone and everything else the other cores
(``bench/pinning.py``), so that the worker's figures are its own; ``--shared-redis`` uses
``BENCH_REDIS_URL`` instead (its server's CPU then includes
other users' load). ``--rate`` paces the enqueue (jobs/s) so the collector sees the small
batches of a deployment below its peak rate; the rollup trigger functions' calls and time per
job come from ``pg_stat_user_functions`` (``track_functions = 'pl'`` on this database).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pinning  # noqa: E402
from bench._common import cpu_seconds, redis_server_pid  # noqa: E402
from harness.databases import ensure_database, pg_connect  # noqa: E402
from harness.processes import (  # noqa: E402
    child_env,
    children_of,
    manage_argv,
    spawn,
    terminate,
    worker_argv,
    workers_up,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.capture_settings")
REDIS_URL = os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
DB = os.environ.setdefault("BENCH_DB_NAME", "rt_capture_bench")
QUEUE = "rearq:queue:default"
GROUP = "bench"
MODES = ("plain", "embedded", "external", "external-norollup", "external-0008", "external-nogin")
# The same as ``external`` with the rollup triggers disabled for the round (this scratch
# database only): what the statistics rollups add to capture.
NO_ROLLUP = "external-norollup"
# The same with the trigger bodies of migration 0008 (no early exit) for the round.
OLD_ROLLUP = "external-0008"
# The same without the argument GIN indexes of migration 0009 for the round: what they add.
NO_GIN = "external-nogin"
GIN_INDEXES = {"tasklog_kwargs_gin_idx": "kwargs", "tasklog_args_gin_idx": "args"}
# With --kwargs, every job carries arguments shaped like a real job's (a unique id, a nested
# object, a short text), so that the GIN indexes have keys to index.
ARGUMENTS = {"kwargs": False}
PIN = {"on": False}  # --pin: the worker alone on core 0 (bench/pinning.py)


def job_kwargs(i: int) -> str:
    if not ARGUMENTS["kwargs"]:
        return "{}"
    plan = ("free", "pro", "enterprise")[i % 3]
    return json.dumps({"order_id": i, "customer": {"plan": plan, "tenant": f"t{i % 50}"},
                       "note": f"order {i} for tenant t{i % 50}"})  # fmt: skip


def gin_indexes(conn: object, present: bool) -> None:
    for name, column in GIN_INDEXES.items():
        if present:
            sql = (f"CREATE INDEX IF NOT EXISTS {name} ON django_cfg_task_log "
                   f"USING gin ({column} jsonb_path_ops)")  # fmt: skip
        else:
            sql = f"DROP INDEX IF EXISTS {name}"
        conn.execute(sql)  # type: ignore[attr-defined]


def private_redis() -> object:
    """A redis-server of this run only, its URL in ``BENCH_REDIS_URL`` for every child."""
    import tempfile

    from harness.network import RedisServer

    server = RedisServer(Path(tempfile.mkdtemp(prefix="capture-bench-")))
    server.start()
    os.environ["BENCH_REDIS_URL"] = server.url
    return server


def setup_database() -> None:
    ensure_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import asyncio

    from tortoise import Tortoise

    async def schemas() -> None:
        await Tortoise.init(
            db_url=f"postgres://postgres@127.0.0.1:5432/{DB}",
            modules={"rearq": ["rearq.server.models"]},
        )
        await Tortoise.generate_schemas(safe=True)
        await Tortoise.close_connections()

    asyncio.run(schemas())
    pg_connect(DB).execute(f"ALTER DATABASE {DB} SET track_functions = 'pl'")


def trigger_stats(conn: object) -> tuple[float, float]:
    """Calls and milliseconds (wall, inner statements included) of the rollup triggers."""
    calls, ms = conn.execute(  # type: ignore[attr-defined]
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0)"
        " FROM pg_stat_user_functions WHERE funcname LIKE 'rearq_tasks_rollup%'"
    ).fetchone()
    return float(calls), float(ms)


def backends_gone(conn: object, before: set[int]) -> None:
    """Wait until the round's backends exited: they flush their function statistics then."""
    deadline = time.monotonic() + 10
    while set(backend_pids(conn)) - before:
        if time.monotonic() > deadline:
            raise SystemExit("the round's PostgreSQL backends did not exit")
        time.sleep(0.05)


def pg() -> object:
    return pg_connect(DB)


def backend_pids(conn: object) -> list[int]:
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DB]
    ).fetchall()
    return [r[0] for r in rows]


def reset(conn: object, redis: object) -> None:
    conn.execute(  # type: ignore[attr-defined]
        "TRUNCATE rearq_job_results, rearq_job, django_cfg_task_log, django_cfg_task_event,"
        " django_cfg_task_stat, django_cfg_task_stat_bin"
    )
    redis.flushdb()  # type: ignore[attr-defined]
    redis.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)  # type: ignore[attr-defined]


def trigger_bodies(conn: object, early_exit: bool) -> None:
    from rearq_tasks.rollup_sql import postgres_functions_sql

    for _event, statement in postgres_functions_sql(early_exit):
        conn.execute(statement)  # type: ignore[attr-defined]


def start(mode: str, log: Path) -> list[subprocess.Popen[bytes]]:
    collector = "external" if mode.startswith("external") else "embedded"
    env = child_env(BENCH_COLLECTOR=collector)
    module = "bench.capture_plain:rearq" if mode == "plain" else "bench.capture_tasks:rearq"
    procs = []
    if collector == "external":
        procs.append(spawn(manage_argv("rearq_collector"), log, env, append=True))
    worker = spawn(worker_argv(group=GROUP, consumer=mode, app=module), log, env, append=True)
    return [worker, *procs]


def wait_ready(redis: object, mode: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"{mode}: a process exited early, see bench/results/capture.log")
        # The collector (embedded or not) creates its consumer group once it is up.
        if workers_up(redis, [f"{GROUP}-{mode}"], collector=mode != "plain"):
            time.sleep(1.0)  # let imports, pools and the collector settle
            return
        time.sleep(0.05)
    raise SystemExit(f"{mode}: worker did not start")


def enqueue(conn: object, redis: object, n: int, rate: float = 0) -> float:
    """Jobs as Task.delay writes them, all at once or ``rate`` per second; returns the time
    the first was queued."""
    ids = [uuid.uuid4().hex for _ in range(n)]
    with conn.cursor().copy(  # type: ignore[attr-defined]
        "COPY rearq_job (task, args, kwargs, job_retry, job_retries, job_retry_after, job_id,"
        " enqueue_time, status) FROM STDIN"
    ) as copy:
        for i, job_id in enumerate(ids):
            row = ["noop", json.dumps([i]), job_kwargs(i), 0, 0, 60, job_id, "now", "queued"]
            copy.write_row(row)
    t0 = time.time()
    if rate:
        for i, job_id in enumerate(ids):
            time.sleep(max(0.0, t0 + i / rate - time.time()))
            redis.xadd(QUEUE, {"job_id": job_id})  # type: ignore[attr-defined]
        return t0
    pipe = redis.pipeline(transaction=False)  # type: ignore[attr-defined]
    for job_id in ids:
        pipe.xadd(QUEUE, {"job_id": job_id})
    pipe.execute()
    return t0


def run_round(
    mode: str, n: int, conn: object, redis: object, log: Path, rate: float = 0
) -> dict[str, float]:
    reset(conn, redis)
    before = set(backend_pids(conn))
    calls0, ms0 = trigger_stats(conn)
    out = measure_round(mode, n, conn, redis, log, rate)
    backends_gone(conn, before)
    calls1, ms1 = trigger_stats(conn)
    out["trigger_calls_per_job"] = (calls1 - calls0) / n
    out["trigger_us_per_job"] = (ms1 - ms0) * 1e3 / n
    return out


def measure_round(
    mode: str, n: int, conn: object, redis: object, log: Path, rate: float
) -> dict[str, float]:
    triggers = "DISABLE" if mode == NO_ROLLUP else "ENABLE"
    conn.execute(f"ALTER TABLE django_cfg_task_log {triggers} TRIGGER USER")  # type: ignore[attr-defined]
    trigger_bodies(conn, early_exit=mode != OLD_ROLLUP)
    gin_indexes(conn, present=mode != NO_GIN)
    procs = start(mode, log)
    try:
        wait_ready(redis, mode, procs)
        if PIN["on"]:
            pinning.worker(procs[0].pid)  # its collector (embedded: its child) stays off it
        pg0 = {pid: cpu_seconds(pid) for pid in backend_pids(conn)}
        if mode == "embedded":
            procs_pids = [procs[0].pid, *children_of(procs[0].pid)]
        else:
            procs_pids = [p.pid for p in procs]
        server = redis_server_pid(redis)
        redis0 = cpu_seconds(server) if server else 0.0
        cpu0 = [cpu_seconds(pid) for pid in procs_pids]
        t0 = enqueue(conn, redis, n, rate)
        deadline = time.monotonic() + 300
        while conn.execute("SELECT count(*) FROM rearq_job_results").fetchone()[0] < n:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: jobs did not drain")
            time.sleep(0.05)
        end = conn.execute(
            "SELECT extract(epoch FROM max(finish_time)) FROM rearq_job_results"
        ).fetchone()[0]  # type: ignore[attr-defined]  # noqa: E501
        out = {"seconds": float(end) - t0}
        if mode != "plain":
            while (
                conn.execute(  # type: ignore[attr-defined]
                    "SELECT count(*) FROM django_cfg_task_log WHERE status = 'success'"
                ).fetchone()[0]
                < n
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{mode}: TaskLog rows did not arrive")
                time.sleep(0.05)
            p50, p95 = conn.execute(  # type: ignore[attr-defined]
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
                " percentile_cont(0.95) WITHIN GROUP (ORDER BY lag) FROM ("
                " SELECT extract(epoch FROM t.updated_at - r.finish_time) * 1000 AS lag"
                " FROM django_cfg_task_log t JOIN rearq_job j ON j.job_id = t.job_id"
                " JOIN rearq_job_results r ON r.job_id = j.id) x"
            ).fetchone()
            out.update(lag_p50_ms=p50, lag_p95_ms=p95)
            stored = conn.execute(  # type: ignore[attr-defined]
                "SELECT count(*) FROM django_cfg_task_event"
            ).fetchone()[0]
            out["history_rows_per_job"] = stored / n
        cpu1 = [cpu_seconds(pid) for pid in procs_pids]
        out["worker_us_per_job"] = (cpu1[0] - cpu0[0]) * 1e6 / n
        if len(procs_pids) > 1:
            out["collector_us_per_job"] = sum(cpu1[1:]) - sum(cpu0[1:])
            out["collector_us_per_job"] *= 1e6 / n
        if server:
            out["redis_us_per_job"] = (cpu_seconds(server) - redis0) * 1e6 / n
        # Backends opened during the drain count from zero.
        pg1 = {pid: cpu_seconds(pid) for pid in backend_pids(conn)}
        pg_used = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        out["postgres_us_per_job"] = pg_used * 1e6 / n
        return out
    finally:
        terminate(procs)
        conn.execute("ALTER TABLE django_cfg_task_log ENABLE TRIGGER USER")  # type: ignore[attr-defined]
        trigger_bodies(conn, early_exit=True)
        gin_indexes(conn, present=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rate", type=float, default=0, help="jobs/s enqueued (0: all at once)")
    parser.add_argument("--kwargs", action="store_true",
                        help="jobs carry realistic keyword arguments (see job_kwargs)")  # fmt: skip
    parser.add_argument("--shared-redis", action="store_true",
                        help="use BENCH_REDIS_URL rather than a private redis-server")  # fmt: skip
    parser.add_argument("--pin", action="store_true", help="the worker alone on core 0")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    ARGUMENTS["kwargs"] = args.kwargs
    if "plain" not in modes or any(m not in MODES for m in modes):
        raise SystemExit(f"--modes must include plain and be among {MODES}")
    import redis as redis_lib

    server = None if args.shared_redis else private_redis()
    setup_database()
    conn = pg()
    redis = redis_lib.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
    try:
        if args.pin:
            PIN["on"] = True
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[attr-defined]
            pinning.others(os.getpid(), pinning.postmaster(backend), redis_server_pid(redis) or 0)
            print(f"pinned: worker on CPUs {sorted(pinning.WORKER_CPUS)}, the rest on "
                  f"{sorted(pinning.OTHER_CPUS)}")  # fmt: skip
        rounds(args, modes, conn, redis)
    finally:
        pinning.release()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def rounds(args: argparse.Namespace, modes: list[str], conn: object, redis: object) -> None:
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    log = results_dir / "capture.log"
    log.write_text("")
    rows: list[dict[str, dict[str, float]]] = []
    print(f"load before: {os.getloadavg()}")
    for r in range(args.rounds):
        order = modes if r % 2 == 0 else list(reversed(modes))
        result = {m: run_round(m, args.jobs, conn, redis, log, args.rate) for m in order}
        rows.append(result)
        line = "  ".join(f"{m}: {args.jobs / result[m]['seconds']:.0f} jobs/s" for m in modes)
        print(f"round {r + 1}: {line}", flush=True)
    print(f"load after: {os.getloadavg()}")
    print(f"\n{args.jobs} no-op jobs, {args.rounds} paired rounds (median):")
    plain = [row["plain"]["seconds"] for row in rows]
    print(f"  plain     {args.jobs / statistics.median(plain):.0f} jobs/s")
    for m in modes:
        if m == "plain":
            continue
        ratios = [row["plain"]["seconds"] / row[m]["seconds"] for row in rows]

        def med(key: str, m: str = m) -> float:
            return statistics.median(row[m].get(key, 0) for row in rows)

        print(
            f"  {m:9} ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max "
            f"{max(ratios):.3f})  lag p50 {med('lag_p50_ms'):.0f} ms p95 {med('lag_p95_ms'):.0f} ms"
            f"  history rows/job {med('history_rows_per_job'):.2f}"
        )
    (results_dir / "capture.json").write_text(json.dumps(rows, indent=1))
    print("\nCPU µs per job (median; trigger: wall µs and calls per job):")
    for m in modes:
        parts = [
            f"{key.replace('_us_per_job', '').replace('_per_job', '/job')} "
            f"{statistics.median(row[m][key] for row in rows):.{2 if 'calls' in key else 0}f}"
            for key in (
                "worker_us_per_job",
                "collector_us_per_job",
                "postgres_us_per_job",
                "redis_us_per_job",
                "trigger_us_per_job",
                "trigger_calls_per_job",
            )  # fmt: skip
            if key in rows[0][m]
        ]
        print(f"  {m:9} " + ", ".join(parts))


if __name__ == "__main__":
    main()
