"""Every Python and shell snippet of README.md and docs/*.md holds (see tests/docs_snippets.py).

Runs in every CI cell: the snippets that touch the database (enqueue, retry, commands) then run
on SQLite, PostgreSQL and MariaDB alike, and the whole set takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rearq import ReArq
from rearq.task import CronTask

from harness.factories import TaskLogFactory, UserFactory
from rearq_tasks.queue import client as rearq_client
from tests.docs_snippets import (
    Snippet,
    SnippetError,
    all_snippets,
    check_static,
    parse,
    run_python,
    run_settings,
    run_shell,
    run_urls,
)

SNIPPETS = all_snippets()
BROKEN = Path(__file__).parent / "fixtures" / "docs" / "broken.md"


@pytest.fixture
def task_registry() -> Iterator[None]:
    """ReArq keeps its tasks in class attributes: what a snippet registers is removed after."""
    saved = (dict(ReArq._task_map), {k: list(v) for k, v in ReArq._queue_task_map.items()},
             dict(CronTask._cron_tasks))  # fmt: skip
    yield
    for live, old in zip(
        (ReArq._task_map, ReArq._queue_task_map, CronTask._cron_tasks), saved, strict=True
    ):
        live.clear()
        live.update(old)


def _rearq() -> Any:
    from rearq_tasks import get_rearq_client

    return get_rearq_client()


def _request() -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = UserFactory(username="docs-reader", is_staff=True)
    return request


def _send_report() -> Any:
    async def send_report(report_id: int) -> str:
        return f"report {report_id}"

    return _rearq().task()(send_report)


# The names a snippet may assume (`<!-- docs-test: run given=request,task_log -->`): what the
# reader has at hand where the snippet goes (a view's request, a row, their own task).
GIVEN: dict[str, Callable[[], Any]] = {
    "request": _request,
    "rearq": _rearq,
    "send_report": _send_report,
    "task_log": lambda: TaskLogFactory(task_name="send_report", status="failed"),
    "ops_user": lambda: UserFactory(username="ops", is_staff=True),
}


def hold(snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    """What CI asks of one snippet: the static checks, then running it in its context."""
    check_static(snippet)
    for name in snippet.option("env"):  # read from the environment in production
        monkeypatch.setenv(name, f"docs-test-{name.lower()}-0123456789abcdef")
    role = snippet.args[0] if snippet.mode == "install" and snippet.args else snippet.mode
    if snippet.mode == "skip" or snippet.lang in ("cron", "yaml"):
        return
    if role == "settings":
        run_settings(snippet)
    elif role == "urls":
        run_urls(snippet)
    elif snippet.mode == "install" and snippet.lang == "python":
        # The page's tasks module: it must import and register its tasks, on a client of its
        # own (a new project's), not on this process's client where other tests' tasks live
        # (ReArq keeps its task registry on the class: a fresh one for the snippet).
        monkeypatch.setattr(rearq_client, "_client", None)
        monkeypatch.setattr(ReArq, "_task_map", {})
        monkeypatch.setattr(ReArq, "_queue_task_map", {})
        run_python(snippet, {})
    elif snippet.mode == "install":
        return  # tests/test_install.py runs the page's shell steps in a fresh virtualenv
    else:
        unknown = set(snippet.option("given")) - set(GIVEN)
        if unknown:
            raise snippet.fail(f"unknown given {sorted(unknown)}; known: {sorted(GIVEN)}")
        given = {name: GIVEN[name]() for name in snippet.option("given")}
        if snippet.lang == "python":
            run_python(snippet, given)
        else:
            run_shell(snippet)


def _runs(snippet: Snippet) -> bool:
    """Runs code against the database (and Redis): enqueue writes rows on its own connection."""
    return snippet.lang in ("python", "bash") and (
        snippet.mode == "run" or snippet.args[:1] == ["tasks"]
    )


RUNNING = [s for s in SNIPPETS if _runs(s)]
CHECKED = [s for s in SNIPPETS if not _runs(s)]


# transaction=True: the rows capture writes on its own connection are flushed afterwards.
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rearq_redis", "task_registry")
@pytest.mark.parametrize("snippet", RUNNING, ids=[s.id for s in RUNNING])
def test_documented_snippet_runs(snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    hold(snippet, monkeypatch)


@pytest.mark.usefixtures("task_registry")
@pytest.mark.parametrize("snippet", CHECKED, ids=[s.id for s in CHECKED])
def test_documented_snippet_holds(snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    hold(snippet, monkeypatch)


def test_every_document_is_searched_and_most_snippets_run() -> None:
    files = {s.path.name for s in SNIPPETS}
    assert {"README.md", "installation.md", "deployment.md", "troubleshooting.md"} <= files
    running = [s for s in SNIPPETS if s.mode == "run" and s.lang in ("python", "bash")]
    assert len(running) >= 10, [s.id for s in running]


BROKEN_SNIPPETS = parse(BROKEN)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rearq_redis", "task_registry")
@pytest.mark.parametrize("snippet", BROKEN_SNIPPETS, ids=[s.id for s in BROKEN_SNIPPETS])
def test_a_broken_snippet_fails(snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each block of the fixture says, in its first comment, the error it must produce.
    expected = snippet.code.splitlines()[0].lstrip("# ").removeprefix("expect: ")
    with pytest.raises((SnippetError, Exception)) as error:
        hold(snippet, monkeypatch)
    assert expected in str(error.value), str(error.value)


def test_the_broken_fixture_covers_each_kind_of_check() -> None:
    kinds = {(s.lang, s.mode) for s in BROKEN_SNIPPETS}
    assert {("python", "run"), ("python", "skip"), ("python", "settings"), ("python", "urls"),
            ("bash", "run"), ("bash", "skip"), ("cron", "run")} <= kinds  # fmt: skip
