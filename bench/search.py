"""Argument search, the search language and export, at a million rows on PostgreSQL.

    .venv/bin/python bench/search.py [--rows 1000000] [--runs 20] [--database rearq_bench_search]
                                     [--skip-export]

Seeds (once) ``--rows`` jobs with ``seed_task_logs`` (each job's kwargs hold a unique
``order_id`` and a customer plan, "enterprise" for 1 % of them), then measures in one run:

1. kwargs containment for a rare value (``order_id`` 123: one job) and two common ones (plan
   "enterprise": ≈ 1 % of the rows; plan "partner": ≈ 0.1 %, 10k jobs at ten million), newest
   50 first: the GIN-served ``kwargs @> …`` against
   an unindexed ``kwargs::text LIKE`` scan for the same rows, p50/p95 and the ratio; and the
   same filters through the API (``?kwargs=``, pagination's capped count included);
2. the GIN indexes' sizes next to the table's;
3. five typical search-language queries through the API (p50/p95);
4. an export of every row through a real gunicorn worker over HTTP: rows/s and the worker's
   peak RSS (``VmHWM``) against its RSS before the export.

Prints the load average: the machine may be shared, and the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import ensure_data, p95, setup_django, timed  # noqa: E402

SEARCHES = {
    "which job processed order 123": "kwargs.order_id:123",
    "failed charges today": "task:charge status:failed after:-24h",
    "enterprise failures, failed or expired": (
        "kwargs.customer.plan:enterprise status:failed status:expired"
    ),
    "error text on a queue": 'error:"timed out" queue:critical',
    "a worker's recent jobs": "worker:worker-a after:-2h",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reference-runs", type=int, default=5)
    parser.add_argument("--database", default="rearq_bench_search")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args()
    if args.rows <= 0 or args.runs <= 0 or args.reference_runs <= 0:
        parser.error("--rows, --runs and --reference-runs must be positive")
    return args


def containment(runs: int, reference_runs: int) -> list[tuple[str, list[float], list[float]]]:
    """(label, GIN samples, LIKE samples) for the rare and the common value, in SQL."""
    from django.db import connection

    cases = {
        "rare (order_id 123, 1 job)": ('{"order_id": 123}', '%"order_id": 123}'),
        "common (plan enterprise, 1 %)": (
            '{"customer": {"plan": "enterprise"}}',
            '%"customer": {"plan": "enterprise"}%',
        ),
        "common (plan partner, 0.1 %)": (
            '{"customer": {"plan": "partner"}}',
            '%"customer": {"plan": "partner"}%',
        ),
    }
    page = "SELECT id FROM django_cfg_task_log WHERE {} ORDER BY enqueue_time DESC LIMIT 50"
    results = []
    with connection.cursor() as cursor:
        for label, (wanted, pattern) in cases.items():
            cursor.execute("SELECT count(*) FROM django_cfg_task_log WHERE kwargs @> %s", [wanted])
            (matches,) = cursor.fetchone()
            cursor.execute(
                "SELECT count(*) FROM django_cfg_task_log WHERE kwargs::text LIKE %s", [pattern]
            )
            assert cursor.fetchone()[0] == matches, "the LIKE reference must find the same rows"

            def gin(wanted: str = wanted) -> None:
                cursor.execute(page.format("kwargs @> %s"), [wanted])
                cursor.fetchall()

            def like(pattern: str = pattern) -> None:
                cursor.execute(page.format("kwargs::text LIKE %s"), [pattern])
                cursor.fetchall()

            results.append(
                (f"{label}: {matches:,} rows", timed(gin, runs), timed(like, reference_runs))
            )
    return results


def api_client():
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user, _ = get_user_model().objects.update_or_create(
        username="bench_staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


def through_api(runs: int) -> dict[str, list[float]]:
    client = api_client()
    urls = {
        "?kwargs={order_id: 123}": ("kwargs", '{"order_id": 123}'),
        "?kwargs={customer: {plan: enterprise}} (1 %)": (
            "kwargs",
            '{"customer": {"plan": "enterprise"}}',
        ),
        "?kwargs={customer: {plan: partner}} (0.1 %)": (
            "kwargs",
            '{"customer": {"plan": "partner"}}',
        ),
        **{f"search: {label} ({query})": ("search", query) for label, query in SEARCHES.items()},
    }
    results = {}
    for label, (param, value) in urls.items():

        def call(param: str = param, value: str = value) -> None:
            response = client.get("/cfg/tasks/logs/", {param: value})
            assert response.status_code == 200, (param, value, response.content[:200])

        results[label] = timed(call, runs)
    return results


def sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname IN "
            "('django_cfg_task_log', 'tasklog_kwargs_gin_idx', 'tasklog_args_gin_idx')"
        )
        return dict(cursor.fetchall())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def export_over_http(
    rows: int,
    fmt: str = "csv",
    app: str = "example_project.wsgi:application",
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run one gunicorn worker (``app``, with ``env`` added to the environment), download the
    export of every row in ``fmt``, read the worker's CPU time and memory."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "DJANGO_DEBUG": "0", **(env or {})}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--workers", "1", "--timeout", "600", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", app],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        token = _token()
        headers = {"Authorization": f"Token {token}"}
        url = f"http://127.0.0.1:{port}/cfg/tasks/logs/export/?format={fmt}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url + "&search=id:none", headers=headers)
                ) as warm:
                    warm.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        worker = _worker_pid(server.pid)
        before = _kib(worker, "VmRSS")
        cpu_before = _cpu_seconds(worker)
        start = time.perf_counter()
        received = lines = 0
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            while chunk := response.read(1 << 20):
                received += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - start
        peak = _kib(worker, "VmHWM")
        cpu = _cpu_seconds(worker) - cpu_before
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    exported = lines - 1 if fmt == "csv" else lines  # the header
    assert exported >= rows * 0.99, (exported, rows)  # quoted newlines make lines ≥ rows
    return {
        "rows": exported,
        "seconds": seconds,
        "rows_per_s": exported / seconds,
        "rows_per_cpu_s": exported / cpu,
        "cpu_s": cpu,
        "mb": received / 1e6,
        "rss_before_mb": before / 1024,
        "peak_rss_mb": peak / 1024,
    }


def _token() -> str:
    """A token for the bench user (the example project authenticates the API by token)."""
    from django.conf import settings

    if "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        raise SystemExit("the example project needs rest_framework.authtoken for this bench")
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.get(username="bench_staff")
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def report(args, gin_like, api, size, exported, load) -> None:
    print(
        f"\n{args.rows:,} rows, PostgreSQL; {args.runs} runs (LIKE: {args.reference_runs}); "
        f"load average {load[0][0]:.2f} → {load[1][0]:.2f} on {os.cpu_count()} CPUs\n"
    )
    print(
        "| kwargs containment, newest 50 (SQL) | GIN p50 | GIN p95 | LIKE scan p50 | LIKE p95 "
        "| ratio (p95) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, gin, like in gin_like:
        print(
            f"| {label} | {statistics.median(gin):.1f} ms | {p95(gin):.1f} ms | "
            f"{statistics.median(like):.0f} ms | {p95(like):.0f} ms | {p95(like) / p95(gin):.0f}× |"
        )
    print("\n| through the API (list page + capped count) | p50 | p95 |\n|---|---:|---:|")
    for label, samples in api.items():
        print(f"| {label} | {statistics.median(samples):.1f} ms | {p95(samples):.1f} ms |")
    table = size.get("django_cfg_task_log", 0)
    print("\n| relation | size |\n|---|---:|")
    for name, value in sorted(size.items()):
        share = (
            f" ({value / table:.0%} of the table)"
            if table and name != "django_cfg_task_log"
            else ""
        )
        print(f"| {name} | {value / 1e6:.1f} MB{share} |")
    if exported:
        print(
            f"\nexport (CSV over HTTP, one gunicorn worker): {exported['rows']:,} rows, "
            f"{exported['mb']:.0f} MB in {exported['seconds']:.1f} s = "
            f"{exported['rows_per_s']:,.0f} rows/s wall (goal ≥ 50,000); the worker used "
            f"{exported['cpu_s']:.1f} CPU-s = {exported['rows_per_cpu_s']:,.0f} rows per "
            f"CPU-second; worker RSS "
            f"{exported['rss_before_mb']:.0f} MB before, peak {exported['peak_rss_mb']:.0f} MB "
            f"(goal < 150 MB)"
        )


def main() -> None:
    args = parse_args()
    setup_django(args)
    ensure_data(args.rows)
    load_before = os.getloadavg()
    gin_like = containment(args.runs, args.reference_runs)
    api = through_api(args.runs)
    size = sizes()
    exported = None if args.skip_export else export_over_http(args.rows)
    report(args, gin_like, api, size, exported, (load_before, os.getloadavg()))


if __name__ == "__main__":
    main()
