"""``manage.py rearq_server``: ReArq's own web UI, with its database opened in its own loop.

ReArq's CLI runs the startup hooks (where Tortoise is initialised) in one event loop and
uvicorn serves in another, so every database route answers 500. Here Tortoise is
initialised by the server's own startup, in the loop that serves the requests.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rearq_tasks.management.commands._rearq import client_with_tasks


class Command(BaseCommand):
    help = "Serve ReArq's own web UI (jobs, results, workers) on --host/--port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=7380)

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {options['port']}")
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
        uvicorn.run(app, host=options["host"], port=options["port"], log_level="info")
