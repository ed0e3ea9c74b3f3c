"""``manage.py rearq_server``: ReArq's own web UI, with its database opened in its own loop.

ReArq's CLI runs the startup hooks (where Tortoise is initialised) in one event loop and
uvicorn serves in another, so every database route answers 500. Here Tortoise is
initialised by the server's own startup, in the loop that serves the requests.

ReArq's UI has no authentication, shows every job's arguments in clear and can enqueue
jobs, so it binds to loopback only unless ``--allow-remote`` says otherwise.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rearq_tasks.management.commands._rearq import client_with_tasks


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); anything else may be reachable."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


class Command(BaseCommand):
    help = "Serve ReArq's own web UI (jobs, results, workers) on --host/--port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Loopback unless --allow-remote.")
        parser.add_argument("--port", type=int, default=7380)
        parser.add_argument(
            "--allow-remote",
            action="store_true",
            help="Bind a non-loopback --host although the UI has no authentication.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {options['port']}")
        host = options["host"].strip().strip("[]")  # "[::1]" is "::1"
        if not is_loopback(host) and not options["allow_remote"]:
            raise CommandError(
                f"refusing to serve ReArq's UI on --host {host!r}: it has no "
                "authentication, shows every job's arguments (credentials included) and lets "
                "anyone who reaches it enqueue jobs. Bind to 127.0.0.1 and reach it through an "
                "SSH tunnel or an authenticating proxy, or pass --allow-remote if the network "
                "itself is trusted."
            )
        import uvicorn
        from rearq.server.app import app

        rearq = client_with_tasks()
        app.set_rearq(rearq)

        async def startup() -> None:
            from rearq_tasks.queue.loop import ensure_ready

            await ensure_ready()

        async def shutdown() -> None:
            from tortoise import Tortoise

            await Tortoise.close_connections()
            await rearq.close()

        app.router.on_startup.append(startup)
        app.router.on_shutdown.append(shutdown)
        uvicorn.run(app, host=host, port=options["port"], log_level="info")
