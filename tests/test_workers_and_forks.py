"""Same answers everywhere Python runs, on a real PostgreSQL: gunicorn `--preload` workers forked from a
master that had already checked a flag (and listened), a child forked by `multiprocessing` from such a
process, and a worker process that serves no request all see a change made elsewhere (the CLI) within the
push bound, with a TTL far longer, so what they see was pushed to them.

The processes run the ten-flag test app of scale_out_app plus two test-only scripts (processes_app), copied
into a bake here and never shipped. The baked suite's tests/test_processes.py covers the same on SQLite (the
TTL) with forked children in-process, and `async def` views.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from bakery import copy_project, flask_cli, gunicorn, run
from test_postgres import database_url  # noqa: F401  (the throwaway PostgreSQL server fixture)
from test_scale_out import FIXTURE_APP, Instance, discover_workers, time_until_every_worker_serves

pytestmark = pytest.mark.slow

TTL = 60  # seconds: far longer than the bound, so a change seen within it was pushed
BOUND = 10.0  # seconds each process gets to see a change; pushed, it takes milliseconds
PROCESSES_APP = Path(__file__).parent / "processes_app"


@dataclass
class Project:
    path: Path
    env: dict[str, str]

    def force(self, flag: str, variant: str) -> None:
        """Force `variant` of `flag` from the CLI: another process than any of those watching."""
        command = ["python", "-m", "flask", "--app", "loadtest_app", "gk", "force", flag, variant]
        run(command, self.path, self.env)


@pytest.fixture(scope="module")
def project(baked_project, baked_env, database_url, tmp_path_factory) -> Project:  # noqa: F811
    """The defaults bake on PostgreSQL (LISTEN/NOTIFY), with the test apps beside its package."""
    path = copy_project(baked_project, tmp_path_factory.mktemp("workers_and_forks"))
    for source in [*FIXTURE_APP.glob("*.py"), *PROCESSES_APP.glob("*.py")]:
        shutil.copy(source, path)
    env = {
        **baked_env(extras=("dev", "postgres")),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "workers-and-forks-secret",
        "GATEKEEPER_STORE_TTL": str(TTL),
        "BAKED_PACKAGE": path.name,
    }
    flask_cli(path, env, "init-db")
    return Project(path, env)


class Watcher:
    """`watch.py` running: the lines it printed so far, read as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.process.stdout.readline, ""):
            self.lines.append(line.strip())

    def wait_for(self, predicate, timeout: float = BOUND) -> str | None:
        """The first line printed that `predicate` accepts, waiting up to `timeout` seconds; else None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if predicate(line)), None)
            if found is not None:
                return found
            if self.process.poll() is not None and not self._reader.is_alive():
                return None
            time.sleep(0.02)
        return None


@contextmanager
def watching(project: Project, flag: str, *options: str) -> Iterator[Watcher]:
    process = subprocess.Popen(
        ["python", "watch.py", flag, str(3 * BOUND + 20), *options],
        cwd=project.path,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Watcher(process)
    finally:
        process.kill()
        process.wait(timeout=20)


def test_one_change_reaches_preloaded_workers_a_job_and_a_forked_child_within_the_push_bound(project):
    """One change, made from the CLI, is served within the bound (the TTL is far longer) by:
    - both workers of gunicorn --preload, forked from a master that had checked a flag and was listening;
    - a job process that serves no request (an app context, a Gatekeeper per task);
    - a child forked by multiprocessing from a process that had checked a flag and was listening.
    All of them start together (each pays Python's start-up once), and the other flags stay as they were."""
    with (
        gunicorn(project.path, project.env, "--preload", "--workers", "2", app="preload_app:app") as url,
        watching(project, "LOAD_3") as job,
        watching(project, "LOAD_3", "--fork") as forked,
    ):
        gunicorn_workers = Instance(url)
        gunicorn_workers.pids = discover_workers(gunicorn_workers)
        assert job.wait_for(lambda line: line.endswith(" A"), timeout=60), f"job: {job.lines}"
        parent = forked.wait_for(lambda line: line.startswith("parent "), timeout=60)
        assert parent is not None and parent.endswith(" A"), f"fork: {forked.lines}"
        parent_pid = parent.split()[1]
        child = forked.wait_for(lambda line: not line.startswith(("parent ", parent_pid)), timeout=30)
        assert child is not None and child.endswith(" A"), f"fork: {forked.lines}"
        child_pid = child.split()[0]

        project.force("LOAD_3", "B")
        forced_at = time.monotonic()
        assert time_until_every_worker_serves(gunicorn_workers, "LOAD_3", "B", BOUND) is not None
        assert job.wait_for(lambda line: line.endswith(" B")), f"job: {job.lines}"
        assert forked.wait_for(lambda line: line == f"{child_pid} B"), f"fork: {forked.lines}"
        print(f"\nall of them served the change {time.monotonic() - forced_at:.2f} s after the CLI returned")
        _, variants = gunicorn_workers.flags()
        assert all(answers == ["A"] for flag, answers in variants.items() if flag != "LOAD_3")


def test_preloaded_workers_on_sqlite_serve_a_change_within_the_ttl(baked_project, baked_env, tmp_path):
    """On SQLite (no push: the TTL alone), both workers of gunicorn --preload, forked from a master that had
    loaded its snapshot, serve a change made from the CLI within the TTL (plus the time to ask them)."""
    path = copy_project(baked_project, tmp_path)
    for source in [*FIXTURE_APP.glob("*.py"), *PROCESSES_APP.glob("*.py")]:
        shutil.copy(source, path)
    env = {
        **baked_env(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SECRET_KEY": "workers-and-forks-secret",
        "GATEKEEPER_STORE_TTL": "1",
        "BAKED_PACKAGE": path.name,
    }
    flask_cli(path, env, "init-db")
    sqlite = Project(path, env)
    with gunicorn(path, env, "--preload", "--workers", "2", app="preload_app:app") as url:
        workers = Instance(url)
        workers.pids = discover_workers(workers)
        sqlite.force("LOAD_3", "B")
        assert time_until_every_worker_serves(workers, "LOAD_3", "B", 1 + BOUND) is not None
