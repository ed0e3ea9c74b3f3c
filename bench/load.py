"""The API under concurrent load while two captured workers drain jobs (PostgreSQL, 1M rows).

    .venv/bin/python bench/load.py [--clients 16] [--duration 60] [--rate 50]

Creates (once) the database ``rearq_bench_load`` and seeds it like ``bench/api.py``
(``seed_task_logs --seed 1``, 1,000,000 rows, again when older than two hours), then starts:

* gunicorn (gthread workers) serving ``example_project`` with DEBUG off on a free loopback port;
* two ``manage.py rearq_worker`` processes, capture on (embedded collector), on the Redis DB
  ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/7``; it is flushed);
* a feeder enqueuing the no-op ``add`` job at ``--rate`` jobs/s through ``enqueue``;
* ``--clients`` threads, each with its own keep-alive connection, sending GETs back to back
  (closed loop, no think time) over a weighted mix of list, filters, search, detail, stats,
  timeline and overview, authenticated by a DRF token of a staff user with the view permission.

The load runs twice in one run, each time ``--warmup`` seconds unmeasured then ``--duration``
measured: first with the API alone (the workers up but idle), then with the job stream.
Prints per endpoint and phase: requests, errors (any status other than 200, or no response),
p50/p99 and throughput; the capture lag (JobResult.finish_time -> TaskLog.updated_at) p50/p95
of the jobs finished during the measured window and of all jobs drained; jobs without a final
TaskLog row; CPU per role from /proc (server, workers, feeder, PostgreSQL backends, clients,
other processes); the most PostgreSQL connections seen; the load average. Exits non-zero on
any error or missing row. ``--no-capture`` runs ReArq alone, for comparison. Every process it
starts is stopped on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.databases import ensure_database  # noqa: E402
from harness.network import free_port  # noqa: E402
from harness.processes import ProcessPool, pythonpath, worker_argv, workers_up  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GROUP = "load"
WORKERS = ("w1", "w2")
# label -> (weight, path relative to the API root); {id} is a seeded row, picked per request.
MIX = {
    "list": (3, "logs/"),
    "list filtered (is_failed + task_name)": (2, "logs/?is_failed=true&task_name=email"),
    "list filtered (queue + status)": (2, "logs/?queue_name=critical&status=success"),
    "list search": (2, "logs/?search=smtp"),
    "detail": (2, "logs/{id}/"),
    "stats 24h": (1, "logs/stats/?period_hours=24"),
    "timeline 7d hourly": (1, "logs/timeline/?period_hours=168&interval=hour"),
    "overview": (1, "logs/overview/"),
}
API = "/cfg/tasks/"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="rearq_bench_load")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument("--rate", type=float, default=50.0, help="no-op jobs enqueued per second")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per process")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--capture", action=argparse.BooleanOptionalAction, default=True,
        help="record the jobs in TaskLog (--no-capture: ReArq alone, for comparison)",
    )  # fmt: skip
    parser.add_argument("--feed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    positive = ("rows", "clients", "duration", "rate", "server_workers", "threads", "timeout")
    if any(getattr(args, name) <= 0 for name in positive) or args.warmup < 0:
        parser.error(f"{', '.join('--' + n.replace('_', '-') for n in positive)} must be positive")
    return args


def configure(database: str, capture: bool) -> None:
    """The environment every process of the run shares (example_project reads it)."""
    pg = f"postgres://{os.environ.get('PGUSER', 'postgres')}@127.0.0.1:5432/{database}"
    os.environ.update(
        DATABASE_URL=pg,
        REARQ_DB_URL=pg,
        REARQ_REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
        DJANGO_SETTINGS_MODULE="bench.load_settings",
        DJANGO_DEBUG="0",
        BENCH_CAPTURE="1" if capture else "0",
        PYTHONPATH=pythonpath(),
    )


# --- the feeder (runs as ``load.py --feed`` in its own process) -----------------------------
def feed(rate: float) -> None:
    """Enqueue ``add`` jobs at ``rate`` per second until SIGTERM, as an application would.

    Up to 32 enqueues overlap, so a slow round trip on a busy machine does not lower the rate.
    """
    import django

    django.setup()
    from rearq_tasks.queue.client import get_rearq_client
    from rearq_tasks.queue.jobs import enqueue

    async def run() -> None:
        await get_rearq_client().startup()
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        slots = asyncio.Semaphore(32)
        pending: set[asyncio.Task[str]] = set()
        sent, start = 0, time.monotonic()

        async def one(i: int) -> str:
            try:
                return await enqueue("add", i, 1)
            finally:
                slots.release()

        while not stopping.is_set():
            await slots.acquire()
            task = asyncio.create_task(one(sent))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                except TimeoutError:
                    pass
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - start
        print(f"feeder: {sent} jobs in {elapsed:.1f} s ({sent / elapsed:.1f}/s)", flush=True)

    asyncio.run(run())


# --- setup -----------------------------------------------------------------------------------
async def rearq_schemas() -> None:
    """ReArq's tables, made once here: two workers starting together would race to make them."""
    from tortoise import Tortoise

    await Tortoise.init(
        db_url=os.environ["REARQ_DB_URL"], modules={"rearq": ["rearq.server.models"]}
    )
    await Tortoise.generate_schemas(safe=True)
    await Tortoise.close_connections()


def prepare(args: argparse.Namespace) -> tuple[str, list[int]]:
    """Seeded data, no leftovers of an earlier run, a staff token; returns (token, row ids)."""
    ensure_database(args.database)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from bench.api import ensure_data
    from rearq_tasks.models import TaskLog

    asyncio.run(rearq_schemas())
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a fresh database has no TaskLog table yet
    with connection.cursor() as cursor:
        # Rows captured by an earlier run would change the count and force a reseed.
        cursor.execute(
            "DELETE FROM django_cfg_task_log WHERE job_id IN (SELECT job_id FROM rearq_job)"
        )
        cursor.execute("TRUNCATE rearq_job_results, rearq_job")
    ensure_data(args.rows)
    user, _ = get_user_model().objects.get_or_create(
        username="load_bench", defaults={"is_staff": True}
    )
    user.user_permissions.add(
        Permission.objects.get(codename="view_tasklog", content_type__app_label="tasks")
    )
    token, _ = Token.objects.get_or_create(user=user)
    recent = list(TaskLog.objects.order_by("-enqueue_time").values_list("id", flat=True)[:20000])
    connection.close()
    return token.key, recent[::100]


CLK = os.sysconf("SC_CLK_TCK")


def proc_stats() -> list[tuple[int, int, float]]:
    """(pid, process group, CPU seconds) of every process on the machine."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.append((int(entry.name), int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK))
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK


class Processes(ProcessPool):
    """Everything the run started, each in its own session so its children go with it;
    stopped with SIGTERM (ReArq workers take up to 10 s to leave XREADGROUP), then SIGKILL."""

    def __init__(self) -> None:
        super().__init__(RESULTS, grace=12.0, new_session=True)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        return self.spawn(name, argv, log=f"load-{name}.log")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per role: each started process with its children, this
        process, and the whole machine."""
        stats = proc_stats()
        out = {name: sum(c for _, g, c in stats if g == p.pid) for name, p in self.procs.items()}
        out["load generator"] = sum(c for pid, _, c in stats if pid == os.getpid())
        out["machine"] = machine_busy()
        return out

    def check(self) -> None:
        for name, proc in self.exited():
            raise SystemExit(f"{name} exited early ({proc.returncode}): see {RESULTS}")

    def stop_named(self, name: str) -> None:
        self.stop(self.procs.pop(name))


def start_workers(procs: Processes, redis: object, capture: bool) -> None:
    for consumer in WORKERS:
        procs.start(f"worker-{consumer}", worker_argv(group=GROUP, consumer=consumer))
    names = [f"{GROUP}-{c}" for c in WORKERS]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        procs.check()
        if workers_up(redis, names, collector=capture):
            return
        time.sleep(0.1)
    raise SystemExit("the workers did not start")


def start_server(procs: Processes, args: argparse.Namespace, port: int, token: str) -> None:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    argv = [gunicorn, "example_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread", "--workers", str(args.server_workers),
            "--threads", str(args.threads), "--timeout", "60", "--backlog", "256"]  # fmt: skip
    helptext = subprocess.run([gunicorn, "--help"], capture_output=True, text=True).stdout
    if "--no-control-socket" in helptext:
        # Recent gunicorn opens a control socket at one path per user: other servers share it.
        argv.append("--no-control-socket")
    procs.start("gunicorn", argv)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        procs.check()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", API + "logs/", headers={"Authorization": f"Token {token}"})
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
            raise SystemExit(f"the server answers {status} to an authenticated list")
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


# --- the load --------------------------------------------------------------------------------
@dataclass
class Sample:
    label: str
    start: float
    ms: float
    error: str | None


def client(port: int, token: str, ids: list[int], seed: int, until: float,
           out: list[Sample], timeout: float) -> None:  # fmt: skip
    """One user: a keep-alive connection, requests back to back until ``until``."""
    rng = random.Random(seed)
    labels = list(MIX)
    weights = [MIX[label][0] for label in labels]
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until:
        label = rng.choices(labels, weights)[0]
        path = API + MIX[label][1].format(id=rng.choice(ids))
        start = time.monotonic()
        error = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                error = f"HTTP {response.status}: {body[:200]!r}"
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            conn = None
        out.append(Sample(label, start, (time.monotonic() - start) * 1000, error))
    if conn is not None:
        conn.close()


@dataclass
class Phase:
    samples: list[Sample]
    since: float  # wall-clock bounds of the measured window
    until: float
    loads: list[float]
    cpu: dict[str, float]  # cores used per role over the window
    connections: int  # most PostgreSQL connections to the benchmark database seen at once


def drive(
    args: argparse.Namespace,
    port: int,
    token: str,
    ids: list[int],
    procs: Processes,
    cpu: Callable[[], dict[str, float]],
    backends: Callable[[], dict[int, float]],
) -> Phase:
    """Run the clients for ``--warmup`` + ``--duration`` seconds; keep the measured part."""
    measure_from = time.monotonic() + args.warmup
    until = measure_from + args.duration
    samples: list[Sample] = []
    threads = [
        threading.Thread(
            target=client,
            args=(port, token, ids, args.seed * 1000 + i, until, samples, args.timeout),
            daemon=True,
        )
        for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    cpu0, t0 = cpu(), time.monotonic()
    # Backends come and go (CONN_MAX_AGE): follow each one, count what it used in the window.
    first = backends()
    last = dict(first)
    loads, most = [], len(first)
    while any(t.is_alive() for t in threads):
        procs.check()
        loads.append(os.getloadavg()[0])
        seen = backends()
        most = max(most, len(seen))
        last.update(seen)
        time.sleep(1)
    cpu1, t1 = cpu(), time.monotonic()
    last.update(backends())
    wall = time.time() - time.monotonic()
    used = {role: (cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) / (t1 - t0) for role in cpu1}
    used["postgres"] = sum(c - first.get(pid, 0.0) for pid, c in last.items()) / (t1 - t0)
    kept = [s for s in samples if s.start >= measure_from]
    return Phase(kept, measure_from + wall, until + wall, loads, used, most)


# --- results ---------------------------------------------------------------------------------
def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[Sample], label: str, duration: float) -> tuple[int, int, str]:
    """(requests, errors, "p50 | p99 | req/s" cells) of one endpoint (or "all")."""
    chosen = [s for s in samples if label in ("all", s.label)]
    if not chosen:
        return 0, 0, " | | "
    ordered = sorted(s.ms for s in chosen)
    cells = (
        f"{percentile(ordered, 0.5):.0f} ms | {percentile(ordered, 0.99):.0f} ms | "
        f"{len(chosen) / duration:.1f}"
    )
    return len(chosen), sum(1 for s in chosen if s.error), cells


def report_http(alone: Phase, loaded: Phase, duration: float) -> int:
    """The table; returns the number of errors in both phases."""
    print(
        "| endpoint | requests | errors | p50 | p99 | req/s "
        "| alone: requests | errors | p50 | p99 | req/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label in [*MIX, "all"]:
        n, failed, cells = summary(loaded.samples, label, duration)
        n0, failed0, cells0 = summary(alone.samples, label, duration)
        name = f"**{label}**" if label == "all" else label
        print(f"| {name} | {n} | {failed} | {cells} | {n0} | {failed0} | {cells0} |")
    seen: dict[str, int] = {}
    for s in [*alone.samples, *loaded.samples]:
        if s.error:
            seen[s.error] = seen.get(s.error, 0) + 1
    for error, n in sorted(seen.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {n} × {error}")
    return sum(seen.values())


def report_cpu(alone: Phase, loaded: Phase) -> None:
    print("\nCPU in cores over the measured window (with jobs / API alone):")
    for role in [r for r in loaded.cpu if r != "machine"] + ["machine"]:
        print(f"  {role:16} {loaded.cpu[role]:.2f} / {alone.cpu.get(role, 0.0):.2f}")
    for phase, name in ((loaded, "with jobs"), (alone, "API alone")):
        ours = sum(v for k, v in phase.cpu.items() if k != "machine")
        print(f"  {name}: this run {ours:.2f}, other processes {phase.cpu['machine'] - ours:.2f}")


def wait_drained(conn: object, capture: bool, timeout: float = 180) -> tuple[int, int]:
    """Until every enqueued job has a result and (with capture) a final TaskLog row;
    returns (jobs, jobs without one)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs, results, final = conn.execute(  # type: ignore[attr-defined]
            "SELECT (SELECT count(*) FROM rearq_job),"
            " (SELECT count(DISTINCT job_id) FROM rearq_job_results),"
            " (SELECT count(*) FROM django_cfg_task_log t JOIN rearq_job j USING (job_id)"
            "  WHERE t.status = 'success')"
        ).fetchone()
        if not capture:
            final = results
        if (jobs == results == final) or time.monotonic() > deadline:
            return jobs, jobs - final
        time.sleep(0.25)


def capture_lag(conn: object, since: float | None, until: float | None) -> tuple[int, float, float]:
    """(jobs, p50 ms, p95 ms) of JobResult.finish_time -> TaskLog.updated_at."""
    window = ""
    params: list[float] = []
    if since is not None and until is not None:
        window = " WHERE r.finish_time >= to_timestamp(%s) AND r.finish_time < to_timestamp(%s)"
        params = [since, until]
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY lag) FROM ("
        " SELECT extract(epoch FROM t.updated_at - r.finish_time) * 1000 AS lag"
        " FROM django_cfg_task_log t JOIN rearq_job j ON j.job_id = t.job_id"
        " JOIN rearq_job_results r ON r.job_id = j.id" + window + ") x",
        params,
    ).fetchone()
    return row[0], float(row[1] or 0), float(row[2] or 0)


def interrupted(*_: object) -> None:
    """SIGTERM ends the run like Ctrl-C, so the ``finally`` stops every process."""
    raise KeyboardInterrupt


def main() -> None:
    args = parse_args()
    configure(args.database, args.capture)
    if args.feed:
        feed(args.rate)
        return
    import psycopg
    import redis as redis_lib

    RESULTS.mkdir(exist_ok=True)
    token, ids = prepare(args)
    redis = redis_lib.Redis.from_url(os.environ["REARQ_REDIS_URL"], decode_responses=True)
    redis.flushdb()
    pg = psycopg.connect(
        host="127.0.0.1", user=os.environ.get("PGUSER", "postgres"), dbname=args.database,
        autocommit=True,
    )  # fmt: skip
    procs = Processes()
    signal.signal(signal.SIGTERM, interrupted)
    try:
        load_before = os.getloadavg()
        start_workers(procs, redis, args.capture)
        port = free_port()
        start_server(procs, args, port, token)

        def backends() -> dict[int, float]:
            """CPU seconds so far of each backend connected to the benchmark database."""
            pids = {
                r[0]
                for r in pg.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()", [args.database],
                ).fetchall()
            }  # fmt: skip
            return {pid: c for pid, _, c in proc_stats() if pid in pids}

        alone = drive(args, port, token, ids, procs, procs.cpu, backends)
        procs.start("feeder", [sys.executable, str(Path(__file__)), "--feed",
                               "--database", args.database, "--rate", str(args.rate)])  # fmt: skip
        loaded = drive(args, port, token, ids, procs, procs.cpu, backends)
        procs.stop_named("feeder")
        fed = (RESULTS / "load-feeder.log").read_text().strip().splitlines()[-1:]
        jobs, missing = wait_drained(pg, args.capture)
        during = capture_lag(pg, loaded.since, loaded.until)
        drained = capture_lag(pg, None, None)
        load_after = os.getloadavg()
    finally:
        procs.stop_all()
    print(
        f"\n{args.rows:,} TaskLog rows, PostgreSQL; gunicorn gthread {args.server_workers}×"
        f"{args.threads}; {args.clients} clients, {args.duration:.0f} s measured after "
        f"{args.warmup:.0f} s warm-up, first with the API alone (two idle workers), then with "
        f"two workers (capture {'on' if args.capture else 'off'}) draining no-op jobs fed at "
        f"{args.rate:.0f}/s\n"
    )
    errors = report_http(alone, loaded, args.duration)
    if args.capture:
        print(
            f"\ncapture lag (JobResult.finish_time -> TaskLog row): jobs finished during the "
            f"load: {during[0]}, p50 {during[1]:.0f} ms, p95 {during[2]:.0f} ms; all "
            f"{drained[0]} jobs drained: p50 {drained[1]:.0f} ms, p95 {drained[2]:.0f} ms"
        )
        print(f"jobs enqueued: {jobs}; without a final TaskLog row: {missing} ({' '.join(fed)})")
    else:
        print(f"\ncapture off; jobs enqueued: {jobs}, not run: {missing} ({' '.join(fed)})")
    report_cpu(alone, loaded)
    print(
        f"PostgreSQL connections to {args.database} (most at once): with jobs "
        f"{loaded.connections}, API alone {alone.connections}"
    )
    for phase, name in ((alone, "API alone"), (loaded, "with jobs")):
        print(
            f"load average (1 min) {name}: mean {sum(phase.loads) / max(len(phase.loads), 1):.2f}"
            f", max {max(phase.loads, default=0):.2f}"
        )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    if errors or missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
