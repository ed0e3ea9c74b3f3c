"""Create, recreate and drop the databases tests and benchmarks run on.

PostgreSQL through psycopg (defaults: ``127.0.0.1:5432``, user ``$PGUSER`` or ``postgres``),
MariaDB/MySQL through mysqlclient; an SQLite file needs only its directory. Dropping is
allowed only for databases the harness owns (``test_…`` or a soak's): never anybody else's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


def pg_connect(
    dbname: str,
    autocommit: bool = True,
    *,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str | None = None,
    password: str | None = None,
    **options: Any,
) -> Any:
    """A psycopg connection (``options`` go to ``psycopg.connect``, e.g. ``connect_timeout``)."""
    import psycopg

    return psycopg.connect(
        host=host, port=port, user=user or os.environ.get("PGUSER", "postgres"),
        password=password, dbname=dbname, autocommit=autocommit, **options,
    )  # fmt: skip


def ensure_database(name: str, **connect: Any) -> None:
    """Create the PostgreSQL database ``name`` if it does not exist yet."""
    with pg_connect("postgres", **connect) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _check_disposable(name: str) -> None:
    if "soak" not in name and not name.startswith("test_"):
        raise ValueError(f"refusing to drop {name!r}: not a test or soak database")


def drop_database(name: str, **connect: Any) -> None:
    """Drop one of the harness's own PostgreSQL databases, connections and all."""
    _check_disposable(name)
    with pg_connect("postgres", **connect) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(name: str, **connect: Any) -> None:
    """Drop and create one of the harness's own PostgreSQL databases (never any other)."""
    _check_disposable(name)
    with pg_connect("postgres", **connect) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_database_url(url: str) -> None:
    """Make the database of a Tortoise ``DB_URL`` exist: Tortoise creates tables, not
    databases. PostgreSQL and MariaDB/MySQL: created if missing; SQLite: its directory."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    password = unquote(parts.password) if parts.password else None
    if parts.scheme in ("postgres", "asyncpg", "psycopg"):
        ensure_database(
            name, host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
            user=parts.username or "postgres", password=password,
        )  # fmt: skip
    elif parts.scheme == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=parts.username or "root", passwd=password or "",
        )  # fmt: skip
        try:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        finally:
            conn.close()
    elif parts.scheme == "sqlite":
        path = url.removeprefix("sqlite://")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
