"""What the statistics rollup triggers cost per job on PostgreSQL, by trigger body.

    BENCH_DB_NAME=rt_h16_bench python bench/trigger_cost.py --jobs 2000 --batch 1,20

One backend runs, in a ``DO`` loop, each job's three capture statements (queued, started,
success), ``--batch`` jobs per statement, each an ``INSERT … ON CONFLICT (job_id) DO UPDATE``
as the collector's upsert is (so both statement triggers fire on each). Round by round, in
an alternating order: triggers disabled (``none``), enabled with empty bodies (``empty``:
the cost of firing them and of their transition tables), the bodies of migration 0008
(``0008``), of 0013 (early exit, 15-minute and day spans: ``0013``) and the current ones
(``current``: 0014 adds the hour span). Printed: the backend's CPU µs per job (from
/proc) and its difference to ``none``, median over rounds and per round. No client round
trips and no worker (a commit after each statement, ``synchronous_commit`` off): only what
the triggers add (``bench/capture.py`` measures capture as a whole).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.databases import ensure_database, pg_connect  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.capture_settings")
DB = os.environ.setdefault("BENCH_DB_NAME", "rt_capture_bench")
VARIANTS = ("none", "empty", "0008", "0013", "current")
CLK = os.sysconf("SC_CLK_TCK")
# One capture statement per event: ``{status}`` and the columns it sets, ``g`` the job.
UPSERT = (
    "INSERT INTO django_cfg_task_log (job_id, task_name, queue_name, status, enqueue_time,"
    " start_time, finish_time, duration_ms, success, args, kwargs, job_retry, job_retries,"
    " job_retry_after, created_at, updated_at, error_message)"
    " SELECT 'b' || g, 'task' || (g % 5), 'default', '{status}', t0 + g * interval '1 ms',"
    " {start}, {finish}, {duration}, {success}, '[]', '{{}}', 0, 0, 60, now(), now(), ''"
    " FROM generate_series(i, least(i + {batch} - 1, {jobs})) g"
    " ON CONFLICT (job_id) DO UPDATE SET status = excluded.status,"
    " start_time = excluded.start_time, finish_time = excluded.finish_time,"
    " duration_ms = excluded.duration_ms, success = excluded.success"
)
START = "t0 + g * interval '1 ms' + interval '50 ms'"
EVENTS = (
    {"status": "queued", "start": "NULL::timestamptz", "finish": "NULL::timestamptz",
     "duration": "NULL::int", "success": "NULL::bool"},
    {"status": "in_progress", "start": START, "finish": "NULL::timestamptz",
     "duration": "NULL::int", "success": "NULL::bool"},
    {"status": "success", "start": START, "finish": f"{START} + interval '40 ms'",
     "duration": "40", "success": "true"},
)  # fmt: skip


def loop_sql(jobs: int, batch: int) -> str:
    # A commit after each statement, as the collector commits each batch: rollup rows updated
    # again and again in one transaction would leave row versions no one can prune yet.
    body = " ".join(f"{UPSERT.format(jobs=jobs, batch=batch, **e)}; COMMIT;" for e in EVENTS)
    return (
        "DO $$ DECLARE t0 timestamptz := now() - interval '1 hour'; BEGIN "
        f"FOR i IN 1..{jobs} BY {batch} LOOP {body} END LOOP; END $$"
    )


def configure(conn: object, variant: str) -> None:
    """Empty tables, then the triggers off or on with the bodies of ``variant``."""
    from rearq_tasks.rollup_sql import BIN_TABLE, LOG_TABLE, STAT_TABLE, postgres_functions_sql

    conn.execute(f"TRUNCATE {LOG_TABLE}, {STAT_TABLE}, {BIN_TABLE}")  # type: ignore[attr-defined]
    state = "DISABLE" if variant == "none" else "ENABLE"
    conn.execute(f"ALTER TABLE {LOG_TABLE} {state} TRIGGER USER")  # type: ignore[attr-defined]
    from rearq_tasks.rollups import SPANS, SPANS_0008

    spans = SPANS_0008 if variant in ("0008", "0013") else SPANS  # 0014 added the hour
    for _event, sql in postgres_functions_sql(variant != "0008", spans):
        if variant == "empty":
            sql = sql.split("$$")[0] + "$$ BEGIN RETURN NULL; END $$"
        conn.execute(sql)  # type: ignore[attr-defined]
    conn.execute("CHECKPOINT")  # type: ignore[attr-defined]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def run(conn: object, variant: str, jobs: int, batch: int) -> float:
    """Backend CPU µs per job of one round; checks the rollups counted every job once."""
    configure(conn, variant)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[attr-defined]
    before = cpu_seconds(pid)
    conn.execute(loop_sql(jobs, batch))  # type: ignore[attr-defined]
    used = cpu_seconds(pid) - before
    counted = conn.execute(  # type: ignore[attr-defined]
        "SELECT coalesce(sum(jobs), 0) FROM django_cfg_task_stat WHERE span = 900"
    ).fetchone()[0]
    assert counted == (jobs if variant in ("0008", "0013", "current") else 0), (variant, counted)
    return used * 1e6 / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", default="1,20", help="jobs per statement, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    conn = pg_connect(DB)
    conn.execute("SET synchronous_commit = off")  # type: ignore[attr-defined]
    print(f"load before: {os.getloadavg()}")
    for batch in (int(b) for b in args.batch.split(",")):
        rows = []
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS))
            rows.append({v: run(conn, v, args.jobs, batch) for v in order})
        print(f"\n{args.jobs} jobs, {batch} per statement, {args.rounds} rounds, µs per job:")
        for v in VARIANTS:
            diffs = [row[v] - row["none"] for row in rows]
            print(
                f"  {v:8} {statistics.median(row[v] for row in rows):7.1f}"
                f"  +{statistics.median(diffs):6.1f}  (rounds: {[round(d) for d in diffs]})"
            )
    configure(conn, "current")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
