"""The wheel and sdist a user installs, and the docs site, built for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.packaging, pytest.mark.slow]
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", ".tox", "var", "dist", "build", "site", "*.egg-info", "__pycache__",
    ".pytest_cache", ".hypothesis", ".ruff_cache", "*.sqlite3",
)  # fmt: skip


def run(*cmd: str | Path, cwd: Path = ROOT, timeout: int = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _migration_names() -> list[str]:
    folder = ROOT / "src" / "rearq_tasks" / "migrations"
    return [p.stem for p in folder.glob("0*.py")]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # From a copy: building in the checkout writes *.egg-info there, which another cell
    # building at the same moment (scripts/test runs cells in parallel) would race on.
    tree = tmp_path_factory.mktemp("tree") / "src"
    shutil.copytree(ROOT, tree, ignore=COPY_IGNORE)
    run(sys.executable, "-m", "build", "--outdir", out, tree)
    wheel = next(out.glob("*.whl"))
    sdist = next(out.glob("*.tar.gz"))
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_contents(dists: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert "rearq_tasks/py.typed" in names
    assert "rearq_tasks/migrations/0001_initial.py" in names
    assert {f"rearq_tasks/migrations/{n}.py" for n in _migration_names()} <= set(names)
    assert "rearq_tasks/templates/rearq_tasks/admin/dashboard.html" in names
    assert "rearq_tasks/static/rearq_tasks/favicon.svg" in names
    assert "rearq_tasks/templatetags/rearq_tasks_admin.py" in names
    assert "rearq_tasks/capture/upsert.py" in names
    assert "rearq_tasks/models.py" in names
    assert any(n.startswith("rearq_tasks/management/commands/seed_task_logs") for n in names)
    # The demo's commands (demo_setup creates an admin/admin superuser) are the example's.
    assert not any("demo_" in n for n in names)
    for package in ("api", "admin", "ops", "queries", "queue", "capture", "conf"):
        assert f"rearq_tasks/{package}/__init__.py" in names
    others = ("tests/", "example_project/", "bench/", "harness/", "docs/")
    assert not any(n.startswith(others) for n in names)
    top = {n.split("/")[0] for n in names}
    assert top <= {"rearq_tasks", *(n for n in top if n.endswith(".dist-info"))}


def test_sdist_contents(dists: dict[str, Path]) -> None:
    names = tarfile.open(dists["sdist"]).getnames()
    assert any(n.endswith("src/rearq_tasks/migrations/0001_initial.py") for n in names)
    assert any(n.endswith("src/rearq_tasks/py.typed") for n in names)
    assert any(n.endswith("/README.md") for n in names)


def test_wheel_installs_into_a_fresh_project(dists: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", dists["wheel"])
    # What pip resolved must run ReArq's own CLI (worker, timer and server share its imports).
    run(py, "-c", "import rearq.cli, rearq.worker, rearq.server.app, rearq_tasks")
    run(venv / "bin" / "rearq", "--help")
    run(venv / "bin" / "django-admin", "startproject", "site_", tmp_path, cwd=tmp_path)
    settings = tmp_path / "site_" / "settings.py"
    text = settings.read_text()
    text = text.replace(
        "INSTALLED_APPS = [",
        'INSTALLED_APPS = [\n    "unfold",\n    "rest_framework",\n    "django_filters",\n'
        '    "health_check",\n    "rearq_tasks",',
    )
    text += '\nREARQ_TASKS = {"REDIS_URL": "redis://127.0.0.1:6379/0"}\n'
    settings.write_text(text)
    urls = tmp_path / "site_" / "urls.py"
    urls.write_text(
        urls.read_text()
        .replace("from django.urls import path", "from django.urls import include, path")
        .replace(
            "path('admin/', admin.site.urls),",
            "path('admin/', admin.site.urls),\n"
            "    path('cfg/tasks/', include('rearq_tasks.urls')),",
        )
        .replace(
            'path("admin/", admin.site.urls),',
            'path("admin/", admin.site.urls),\n'
            '    path("cfg/tasks/", include("rearq_tasks.urls")),',
        )
    )
    assert "rearq_tasks.urls" in urls.read_text()
    out = run(py, "manage.py", "migrate", cwd=tmp_path)
    assert "tasks.0001_initial... OK" in out
    assert "no issues" in run(py, "manage.py", "check", cwd=tmp_path)
    run(py, "manage.py", "seed_task_logs", "--count", "100", "--days", "1", cwd=tmp_path)


def test_docs_build_strict(tmp_path: Path) -> None:
    run(sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", tmp_path / "site")
    assert (tmp_path / "site" / "model" / "index.html").exists()
