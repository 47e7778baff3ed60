"""Plain helpers behind the template's test fixtures: bake, find interpreters, build baked virtualenvs, run.

The fixtures in `conftest.py` wrap these; a test may also import them directly (`from bakery import run`).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType

from cookiecutter.environment import StrictEnvironment

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
BUILD_DIR = TEMPLATE_DIR / "build"
CONTEXT = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))

# Every value of every choice in cookiecutter.json, as {answer: [values]}; the first value is the default.
CHOICES: dict[str, list[str]] = {
    key: value for key, value in CONTEXT.items() if isinstance(value, list) and not key.startswith("_")
}
DEFAULT_PYTHON = CHOICES["python_version"][0]
RUFF = Path(sys.executable).with_name("ruff")  # the template's own tools run from the test's virtualenv


# Answers that break naive templating: quotes of both kinds, triple quotes, backslashes and non-ASCII text.
TRICKY_ANSWERS = {
    "quotes": {
        "project_name": 'The "Best" Shop',
        "author_name": "Seán O'Brien",
        "description": "Say \"hi\" to O'Brien's shop \\ with a backslash",
    },
    "unicode": {
        "project_name": "Ünïcödé Café 🚀",
        "author_name": "Zoë 李",
        "description": "Emoji 🚀, ''' and \"\"\" triple quotes, C:\\path\\to\\it",
    },
}


# A value that changes only a dependency and a setting rides along with another value's bake instead of
# costing a whole suite run of its own: {(answer, value): (host answer, host value)}. The Redis change feed
# goes with PostgreSQL, the database it relieves (the plain postgresql bake's suite runs on a real server in
# test_postgresql_bake.py).
RIDES_ALONG = {("change_feed", "redis"): ("database", "postgresql")}


def option_bakes() -> dict[str, dict[str, str]]:
    """One bake per option value (not the cross product), named for pytest ids; the defaults come first.

    A value that equals its default bakes the same project as the defaults, so it is folded into them; one
    in RIDES_ALONG is baked together with its host value.
    """
    bakes: dict[str, dict[str, str]] = {"defaults": {}}
    for answer, values in CHOICES.items():
        for value in values[1:]:
            if (answer, value) not in RIDES_ALONG:
                bakes[f"{answer}={value}"] = {answer: value}
    for (answer, value), (host_answer, host_value) in RIDES_ALONG.items():
        host = bakes.pop(f"{host_answer}={host_value}")
        bakes[f"{host_answer}={host_value},{answer}={value}"] = {**host, answer: value}
    return bakes


def python_version_of(answers: Mapping[str, str]) -> str:
    """The Python a bake should be tested with: the lowest it supports, its `python_version` answer."""
    return answers.get("python_version", DEFAULT_PYTHON)


def run(
    args: Sequence[str | os.PathLike[str]],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and on failure raise with the command and the end of its output."""
    completed = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and completed.returncode != 0:
        output = completed.stdout + completed.stderr
        if len(output) > 10_000:  # the first errors and the final summary say the most
            output = f"{output[:5000]}\n[... {len(output) - 9000} characters cut ...]\n{output[-4000:]}"
        raise AssertionError(
            f"`{' '.join(map(str, args))}` in {cwd} exited {completed.returncode}:\n{output}"
        )
    return completed


def cookiecutter_cli(
    output_dir: Path, *answers: str, check: bool = True, typed: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Bake through the real `cookiecutter` command line: with --no-input and `key=value` answers, or, when
    `typed` is given, answering the prompts with that text on standard input."""
    cookiecutter = Path(sys.executable).with_name("cookiecutter")
    command = [cookiecutter] if cookiecutter.exists() else [sys.executable, "-m", "cookiecutter"]
    if typed is None:
        command.append("--no-input")
    with tempfile.TemporaryDirectory() as home:
        # Our own config: the user's ~/.cookiecutterrc must not change the answers, nor replays land in ~.
        config = Path(home) / "config.yaml"
        config.write_text(f"replay_dir: {json.dumps(home)}\ncookiecutters_dir: {json.dumps(home)}\n")
        command += ["--config-file", config, "-o", output_dir, TEMPLATE_DIR, *answers]
        return run(command, check=check, stdin=typed)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(
    command: Sequence[str | os.PathLike[str]],
    url: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
) -> Iterator[list[str]]:
    """Run a server until the block ends; enter once `url` answers, failing with the server's output if it
    exits first or `timeout` seconds pass. Yields the server's output lines (a list that keeps growing: it
    is drained all along, so a chatty server never blocks). The server gets its own process group, so
    whatever it started (a reloader, workers, `make`'s children) stops with it."""
    server = subprocess.Popen(
        [str(arg) for arg in command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    drain = threading.Thread(target=lambda: output.extend(iter(server.stdout.readline, "")), daemon=True)
    drain.start()
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not serve {url}:\n{''.join(output)[-5000:]}")
            time.sleep(0.2)
        yield output
    finally:
        _stop_group(server)


def _stop_group(server: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)


@contextmanager
def gunicorn(project: Path, env: Mapping[str, str], *options: str, app: str | None = None) -> Iterator[str]:
    """Serve the baked app in `project` (or `app`, a gunicorn app spec) with gunicorn and `options` on a free
    port; yields its URL."""
    address = f"127.0.0.1:{free_port()}"
    spec = app or f"{project.name}:create_app()"
    command = ["python", "-m", "gunicorn", "--bind", address, *options, spec]
    with serving(command, f"http://{address}/", cwd=project, env=env):
        yield f"http://{address}"


def flask_cli(project: Path, env: Mapping[str, str], *args: str) -> str:
    """Run `flask ARGS` for the baked app in `project`; its output."""
    return run(["python", "-m", "flask", "--app", project.name, *args], cwd=project, env=env).stdout


def _answers(url: str) -> bool:
    """Whether something serves `url` now."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def log_in(url: str, email: str, password: str) -> tuple[urllib.request.OpenerDirector, str]:
    """Log in through the real form, CSRF token and all, as a browser without JavaScript would.

    Returns the session (an opener that keeps its cookies) and the page the login landed on.
    """
    session = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    token = csrf_token(session.open(f"{url}/auth/login").read().decode())
    form = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password}).encode()
    return session, session.open(f"{url}/auth/login", data=form).read().decode()


def copy_project(project: Path, destination: Path) -> Path:
    """Copy a baked project so a test can run tools in it without touching the shared bake."""
    target = destination / project.name
    shutil.copytree(project, target)
    return target


def text_files(root: Path) -> Iterator[Path]:
    """Every file under `root` that decodes as UTF-8 text."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield path


def find_python(version: str) -> str | None:
    """An interpreter that really is Python `version` (e.g. "3.12"): `python3.12` on PATH, or pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / "python")))
    candidates.append(sys.executable)
    for candidate in candidates:
        if candidate and _reports_version(candidate, version):
            return candidate
    return None


def _reports_version(executable: str, version: str) -> bool:
    # pyenv shims exist for every installed version but fail unless that version is selected: ask it.
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        completed = subprocess.run([executable, "-c", probe], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return completed.returncode == 0 and completed.stdout.strip() == version


def baked_dependencies(project: Path, extras: Sequence[str] = ("dev",)) -> list[str]:
    """The runtime requirements a baked project declares in its pyproject.toml, plus those of `extras`."""
    project_table = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project_table.get("optional-dependencies", {})
    return [*project_table["dependencies"], *(req for extra in extras for req in optional[extra])]


def ensure_virtualenv(python: str, requirements: Sequence[str], purpose: str | None = None) -> Path:
    """A virtualenv under build/ with `requirements` installed; built once, reused while they are unchanged.

    Keyed by the interpreter and the requirement list, so a changed list gets a fresh one; with a `purpose`
    (e.g. "baked"), the outdated virtualenvs of that purpose and Python are removed. A file lock makes
    concurrent pytest-xdist workers wait for one build instead of racing.
    """
    version = run([python, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    key = hashlib.sha256(json.dumps([python, version, sorted(requirements)]).encode()).hexdigest()[:12]
    prefix = f"{purpose}-py{version}" if purpose else f"py{version}"
    venv = BUILD_DIR / "baked-venvs" / f"{prefix}-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.parent / f"{venv.name}.lock"):
        marker = venv / ".complete"
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            _install_virtualenv(python, venv, requirements)
            marker.write_text("\n".join(requirements) + "\n", encoding="utf-8")
            if purpose:
                _remove_outdated(venv, prefix)
    return venv


def _install_virtualenv(python: str, venv: Path, requirements: Sequence[str]) -> None:
    """Make `venv` with `requirements`: with uv when the template's tools have it (seconds), else pip."""
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        run([uv, "venv", "-q", "--seed", "--python", python, venv])
        run([uv, "pip", "install", "-q", "--python", venv / "bin" / "python", *requirements])
    else:
        run([python, "-m", "venv", venv])
        pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
        run([*pip, "install", "-q", *requirements])


def _remove_outdated(venv: Path, prefix: str) -> None:
    # Same purpose and Python, an older requirement list: nothing will use it again.
    for sibling in venv.parent.glob(f"{prefix}-*"):
        if sibling.is_dir() and sibling != venv:
            shutil.rmtree(sibling, ignore_errors=True)
            (sibling.parent / f"{sibling.name}.lock").unlink(missing_ok=True)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def venv_env(venv: Path) -> dict[str, str]:
    """Environment for running a baked project's tools: the venv first on PATH, nothing inherited that
    would change what the project sees (another venv, PYTHONPATH, the app's own settings)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SECRET_KEY", "DATABASE_URL", "FLASK_APP"}
        and not key.startswith(("PYTEST_", "COV_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PRE_COMMIT_HOME"] = str(BUILD_DIR / "pre-commit-cache")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


# Jinja markers left by a variable or tag cookiecutter did not render. GitHub Actions' own `${{ ... }}`
# expressions are meant to be in the baked workflow, so `{{` right after `$` does not count; nor does the
# name of the answers file every bake records, `.cookiecutter.json`.
TEMPLATE_LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#|cookiecutter\.(?!json\b)")
APP_TEMPLATE_LEFTOVER = re.compile(r"cookiecutter\.(?!json\b)")


def leftovers(project: Path) -> list[str]:
    """`path:line: text` for every file name or line that still holds cookiecutter template text.

    The app's own Jinja templates (under a `templates/` folder) legitimately hold `{{` and `{%`, so only
    a `cookiecutter.` variable counts there.
    """
    found = [
        f"{path.relative_to(project)}: unrendered file name"
        for path in project.rglob("*")
        if TEMPLATE_LEFTOVER.search(str(path.relative_to(project)))
    ]
    for path in text_files(project):
        relative = path.relative_to(project)
        pattern = APP_TEMPLATE_LEFTOVER if "templates" in relative.parts else TEMPLATE_LEFTOVER
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def load_hook(name: str, answers: Mapping[str, object] | None = None) -> ModuleType:
    """Import `hooks/<name>.py` as a module, rendered with cookiecutter's Jinja when `answers` are given."""
    return load_template_module(f"hooks/{name}.py", answers)


def load_template_module(relative_path: str, answers: Mapping[str, object] | None = None) -> ModuleType:
    """Import a Python file of the template repository by path (rendered first when `answers` are given)."""
    path = TEMPLATE_DIR / relative_path
    source = path.read_text(encoding="utf-8")
    if answers is not None:
        context = {"cookiecutter": dict(answers)}
        source = StrictEnvironment(context=context).from_string(source).render(**context)
    module = ModuleType(path.stem)
    module.__file__ = str(path)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module
