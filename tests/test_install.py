"""docs/installation.md followed literally: wheel, fresh virtualenv, startproject, real worker.

The steps are the page's blocks marked ``<!-- docs-test: install ROLE -->``, read from the file
and run as written, with two documented substitutions: the checkout is a copy of this one (no
``git clone``), and ``runserver``/``curl`` use a free port instead of 8000. Runs where
``REARQ_TASKS_INSTALL=1`` (tox: py311-django52-sqlite); pip reaches the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_snippets import ROOT, Snippet, parse

pytestmark = [pytest.mark.install, pytest.mark.slow]
PAGE = ROOT / "docs" / "installation.md"
ROLES = ("build", "wheel", "project", "settings", "urls", "tasks", "migrate", "worker",
         "enqueue", "serve", "check")  # fmt: skip
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", ".tox", "var", "dist", "build", "site", "*.egg-info", "__pycache__",
    ".pytest_cache", ".hypothesis", ".ruff_cache", "*.sqlite3",
)  # fmt: skip


def steps() -> dict[str, Snippet]:
    found = {s.args[0]: s for s in parse(PAGE) if s.mode == "install" and s.args}
    missing = set(ROLES) - set(found)
    assert not missing, f"docs/installation.md lacks the install steps {sorted(missing)}"
    return found


def test_the_installation_page_names_every_step() -> None:
    assert list(steps()) == list(ROLES)


class Site:
    """A directory holding the checkout copy, a fresh virtualenv and the new project."""

    def __init__(self, base: Path, redis_url: str) -> None:
        self.base = base
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
        keep = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
        }
        self.env = {**keep, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
                    "VIRTUAL_ENV": str(venv), "REARQ_REDIS_URL": redis_url}  # fmt: skip
        self.processes: list[subprocess.Popen[str]] = []

    def sh(self, code: str, timeout: int = 600) -> str:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=self.base, env=self.env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        assert proc.returncode == 0, f"{code}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    def start(self, code: str) -> subprocess.Popen[str]:
        log = open(self.base / f"process-{len(self.processes)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(["bash", "-c", f"exec {code}"], cwd=self.base, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=15)  # ReArq needs up to ~12 s to notice a SIGTERM
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.base.glob("process-*.log")))


@pytest.fixture
def site(tmp_path: Path, rearq_redis) -> Iterator[Site]:
    from rearq_tasks.conf import conf

    # The capture stream too: events other tests left there name users this project lacks.
    for key in rearq_redis.scan_iter("rearq_tasks:*"):
        rearq_redis.delete(key)
    built = Site(tmp_path, conf.REDIS_URL)
    yield built
    built.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, probe, site: Site, timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout} s; process output:\n{site.logs()}")


def test_installation_page_followed_literally(site: Site, rearq_redis) -> None:
    step = steps()
    shutil.copytree(ROOT, site.base / "django-rearq-tasks", ignore=COPY_IGNORE)
    build = "\n".join(line for line in step["build"].code.splitlines() if "git clone" not in line)
    site.sh(build)
    assert not list((site.base / "django-rearq-tasks" / "src").glob("*.egg-info"))
    site.sh(step["wheel"].code)
    site.sh(step["project"].code)
    project = site.base / "mysite"
    with (project / "settings.py").open("a") as settings:
        settings.write("\n" + step["settings"].code)
    (project / "urls.py").write_text(step["urls"].code)
    (project / "tasks.py").write_text(step["tasks"].code)
    migrated = site.sh(step["migrate"].code)
    assert "tasks.0001_initial... OK" in migrated

    site.start(step["worker"].code)
    _wait("a worker beats", lambda: rearq_redis.hlen("rearq:worker"), site)
    job_id = site.sh(step["enqueue"].code, timeout=60).split()[-1]
    port = _free_port()
    site.start(step["serve"].code.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    check = step["check"].code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")

    def api_row() -> dict | None:
        proc = subprocess.run(["bash", "-c", check], capture_output=True, text=True, timeout=30)
        if proc.returncode or not proc.stdout.startswith("{"):
            return None
        rows = [r for r in json.loads(proc.stdout)["results"] if r["job_id"] == job_id]
        return rows[0] if rows and rows[0]["status"] == "success" else None

    row = _wait("the job captured as success in the API", api_row, site)
    assert row["task_name"] == "add" and row["success"] is True  # type: ignore[index]

    admin = site.sh(
        'python manage.py shell -c "from django.test import Client; '
        "c = Client(HTTP_HOST='localhost'); "
        "assert c.login(username='admin', password='change-me'); "
        f"r = c.get('/admin/tasks/tasklog/?q={job_id}'); print(r.status_code); "
        f"print('{job_id}' in r.content.decode())\"",
        timeout=60,
    ).split()
    assert admin[-2:] == ["200", "True"], admin
