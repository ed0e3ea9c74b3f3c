"""The code blocks of README.md and docs/*.md, found and checked (``tests/test_docs_snippets.py``).

A fenced block is run in the context its marker names; the marker is an HTML comment on the
line before the fence (blank lines allowed), invisible in the rendered page::

    <!-- docs-test: settings -->             settings.py lines: system checks must pass
    <!-- docs-test: urls -->                 urls.py lines, after startproject's urls.py
    <!-- docs-test: run given=request -->    run with Django set up and a database (default)
    <!-- docs-test: skip reason ... -->      cannot run here (production host, pip, a daemon)
    <!-- docs-test: install ROLE -->         a step of docs/installation.md (test_install.py)

Whatever the mode, Python must compile and every import must resolve; shell must pass
``bash -n`` and every ``manage.py`` command it names must exist and accept its options.
Unmarked ``python`` blocks run; unmarked ``bash`` blocks run too, which only works when each
command is a ``manage.py`` command: anything else has to say why it is skipped.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import inspect
import io
import re
import shlex
import subprocess
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<spec>.*?)\s*-->\s*\Z", re.S)
CHECKED = {"python", "bash", "cron", "yaml"}
PYTHON_MODES = {"run", "settings", "urls", "skip", "install"}
SHELL_MODES = {"run", "skip", "install"}
# A usage synopsis, not a command line: option values are placeholders.
PLACEHOLDER = re.compile(r"\[|<[A-Za-z]|\.\.\.|…")


class SnippetError(AssertionError):
    """A snippet that does not hold: the message names the file and line."""


@dataclasses.dataclass
class Snippet:
    path: Path
    line: int
    lang: str
    code: str
    mode: str
    args: list[str]

    @property
    def id(self) -> str:
        try:
            name = self.path.relative_to(ROOT)
        except ValueError:
            name = self.path
        return f"{name}:{self.line}"

    def option(self, key: str) -> list[str]:
        """``key=a,b`` from the marker, as a list."""
        for arg in self.args:
            if arg.startswith(f"{key}="):
                return [v for v in arg.split("=", 1)[1].split(",") if v]
        return []

    def fail(self, message: str) -> SnippetError:
        return SnippetError(f"{self.id} ({self.lang}, {self.mode}): {message}")


def documents() -> list[Path]:
    """The Markdown a user reads: README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse(path: Path) -> list[Snippet]:
    """Every checked fenced block of ``path`` with its marker (or the default mode)."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        lang = match["lang"]
        if lang not in CHECKED:
            continue
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines()) + "\n"
        before = text[: match.start()].rstrip()
        marker = MARKER.search(before[before.rfind("<!--") :]) if "<!--" in before else None
        spec = marker["spec"].split() if marker else []
        mode = spec[0] if spec else "run"
        line = text.count("\n", 0, match.start()) + 1
        found.append(Snippet(path, line, lang, code, mode, spec[1:]))
    return found


def all_snippets() -> list[Snippet]:
    return [s for path in documents() for s in parse(path)]


# --- static checks: every mode -------------------------------------------------------------
def check_static(snippet: Snippet) -> None:
    """Syntax, imports and named commands: what holds even for a snippet that cannot run."""
    if snippet.lang == "python":
        if snippet.mode not in PYTHON_MODES:
            raise snippet.fail(f"unknown mode {snippet.mode!r}; one of {sorted(PYTHON_MODES)}")
        check_python_imports(snippet)
    elif snippet.lang == "bash":
        if snippet.mode not in SHELL_MODES:
            raise snippet.fail(f"unknown mode {snippet.mode!r}; one of {sorted(SHELL_MODES)}")
        check_shell(snippet, snippet.code)
    elif snippet.lang == "cron":
        commands = [
            line.split(None, 5)[5] for line in _lines(snippet.code) if len(line.split()) > 5
        ]
        if not commands:
            raise snippet.fail("no crontab entry (five time fields and a command)")
        check_shell(snippet, "\n".join(commands))
    elif snippet.lang == "yaml":
        import yaml

        try:
            yaml.safe_load(snippet.code)
        except yaml.YAMLError as exc:
            raise snippet.fail(f"invalid YAML: {exc}") from exc
    if snippet.mode == "skip" and not snippet.args:
        raise snippet.fail("`docs-test: skip` needs a reason")


def compile_python(snippet: Snippet) -> ast.Module:
    try:
        return ast.parse(snippet.code, str(snippet.path))
    except SyntaxError as exc:
        raise snippet.fail(f"syntax error line {exc.lineno}: {exc.msg}") from exc


def check_python_imports(snippet: Snippet) -> None:
    """Every ``import x`` / ``from x import y`` of the snippet resolves in this environment."""
    for node in ast.walk(compile_python(snippet)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _import(snippet, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = _import(snippet, node.module)
            for alias in node.names:
                if alias.name != "*" and not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError as exc:
                        raise snippet.fail(
                            f"cannot import {alias.name!r} from {node.module!r}"
                        ) from exc


def _import(snippet: Snippet, name: str) -> object:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise snippet.fail(f"import {name!r} fails: {exc}") from exc


def _lines(code: str) -> list[str]:
    return [
        line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def check_shell(snippet: Snippet, code: str) -> None:
    """``bash -n`` and every ``manage.py <command> [options]`` exists and parses."""
    proc = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
    if proc.returncode:
        raise snippet.fail(f"bash -n: {proc.stderr.strip()}")
    for argv in manage_commands(code):
        parse_command(snippet, argv)
    for word in re.findall(
        r"(?<![\w/.])((?:scripts|bench|tests|docs|example_project)/[\w./-]+)", code
    ):
        if not (ROOT / word).exists():
            raise snippet.fail(f"{word} does not exist in the repository")


def manage_commands(code: str) -> list[list[str]]:
    """The ``manage.py`` invocations of a shell snippet, as argv after ``manage.py``."""
    found = []
    for line in _lines(code.replace("\\\n", " ")):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";|")
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token not in (";", "&&", "||", "|", "&"):
                words.append(token)
                continue
            for i, word in enumerate(words):
                if " " in word:  # a quoted command line: `ssh host "... manage.py x"`
                    found += manage_commands(word)
                elif word.endswith("manage.py"):
                    found.append(words[i + 1 :])
                    break
            words = []
    return found


def parse_command(snippet: Snippet, argv: list[str]) -> None:
    """The command exists; unless it is a synopsis, its options parse."""
    from django.core.management import get_commands, load_command_class

    if not argv:
        raise snippet.fail("`manage.py` without a command")
    name, *args = argv
    app = get_commands().get(name)
    if app is None:
        raise snippet.fail(f"manage.py has no command {name!r}")
    redirect = next((i for i, a in enumerate(args) if re.match(r"\d*[<>]", a)), len(args))
    args = args[:redirect]
    if any(PLACEHOLDER.search(a) for a in args):
        return
    command = app if not isinstance(app, str) else load_command_class(app, name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except (SystemExit, Exception) as exc:
        raise snippet.fail(f"`manage.py {' '.join(argv)}` does not parse: {exc}") from exc


# --- running: each mode in its context -------------------------------------------------------
def startproject(name: str) -> str:
    """A file as ``django-admin startproject`` writes it (the installed Django's template)."""
    import django

    template = Path(django.__file__).parent / "conf" / "project_template" / "project_name"
    return re.sub(r"\{\{.*?\}\}", "mysite", (template / f"{name}-tpl").read_text())


def startproject_apps() -> list[str]:
    found = re.search(r"^INSTALLED_APPS = (\[.*?\])", startproject("settings.py"), re.M | re.S)
    assert found, "Django's project template has no INSTALLED_APPS"
    return ast.literal_eval(found[1])


def run_settings(snippet: Snippet) -> None:
    """Exec the lines into a copy of the project's settings; the system checks must pass."""
    from django.conf import settings
    from django.core import checks
    from django.test import override_settings

    base = {k: copy.deepcopy(getattr(settings, k)) for k in dir(settings) if k.isupper()}
    namespace = {"BASE_DIR": ROOT, "Path": Path, **copy.deepcopy(base)}
    if snippet.option("from") == ["startproject"] or snippet.mode == "install":
        namespace["INSTALLED_APPS"] = startproject_apps()
    tree = compile_python(snippet)
    exec(compile(tree, snippet.id, "exec"), namespace)
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id.isupper()
    }
    if not assigned:
        raise snippet.fail("sets no setting")
    changed = {name: namespace[name] for name in assigned}
    if "INSTALLED_APPS" in changed:
        changed["INSTALLED_APPS"] = merge_apps(changed["INSTALLED_APPS"], base["INSTALLED_APPS"])
    with override_settings(**changed):
        messages = checks.run_checks()
    bad = [m for m in messages if m.is_serious() or (m.id or "").startswith("rearq_tasks.")]
    if bad:
        raise snippet.fail("system checks: " + "; ".join(str(m) for m in bad))


def merge_apps(listed: list[str], project: list[str]) -> list[str]:
    """``listed`` ("# ..." elided) completed with the project's other apps at its end: an app
    the snippet leaves out (say ``unfold``) lands after ``django.contrib.admin``, as it would in
    a project that followed the snippet, and the checks judge that."""
    listed = list(dict.fromkeys(listed))  # `+=` of an app the project already has
    return [*listed, *(app for app in project if app not in listed)]


def run_urls(snippet: Snippet) -> None:
    """Exec after startproject's urls.py; the URLconf must pass Django's URL checks."""
    from django.urls import URLPattern, URLResolver, resolve
    from django.urls.resolvers import RegexPattern

    namespace: dict[str, object] = {}
    exec(startproject("urls.py"), namespace)  # a urls snippet continues it
    exec(compile(compile_python(snippet), snippet.id, "exec"), namespace)
    module = types.ModuleType("docs_snippet_urls")
    module.urlpatterns = namespace["urlpatterns"]  # type: ignore[attr-defined]
    resolver = URLResolver(RegexPattern(r"^/"), module)
    errors = resolver.check()
    if errors:
        raise snippet.fail("URL checks: " + "; ".join(str(e) for e in errors))
    for pattern in module.urlpatterns:  # type: ignore[attr-defined]
        if not isinstance(pattern, URLPattern | URLResolver):
            raise snippet.fail(f"{pattern!r} in urlpatterns is not a path()")
        route = f"/{pattern.pattern}"
        if isinstance(pattern, URLPattern) and "<" not in route:
            resolve(route, urlconf=module)


def run_python(snippet: Snippet, given: dict[str, object]) -> dict[str, object]:
    """Exec (top-level ``await`` allowed) with the ``given`` names; returns the namespace."""
    from rearq_tasks.queue import loop as rearq_loop

    code = compile(
        compile_python(snippet), snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    namespace = {"__name__": "docs_snippet", **given}
    if code.co_flags & inspect.CO_COROUTINE:

        async def main() -> None:
            await eval(code, namespace)

        # On the client's own loop, as the package runs ReArq's async code from sync code: a
        # throwaway loop would bind the client's Redis connections to a loop that then dies.
        rearq_loop.run_sync(main, timeout=120)
    else:
        exec(code, namespace)
    return namespace


def run_shell(snippet: Snippet) -> list[str]:
    """Each command is a ``manage.py`` command, run with ``call_command``; their output."""
    from django.core.management import call_command

    outputs = []
    for line in _lines(snippet.code.replace("\\\n", " ")):
        words = shlex.split(line, comments=True)
        if not words or not words[0].endswith("python") or words[1:2] != ["manage.py"]:
            raise snippet.fail(
                f"cannot run `{line}` here: only `python manage.py ...` runs; "
                "mark the block `<!-- docs-test: skip <reason> -->`"
            )
        parse_command(snippet, words[2:])
        out = io.StringIO()
        call_command(*words[2:], stdout=out, stderr=out)
        outputs.append(out.getvalue())
    return outputs
