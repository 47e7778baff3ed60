"""Fixtures shared by every template test: bakes of the template, and virtualenvs that can run them.

Session-scoped (one per pytest-xdist worker; bakes are cheap, virtualenvs are shared on disk):

- `bake(**answers) -> Path`: bake the template through pytest-cookies with `--no-input` and these answers
  (the rest are defaults) and return the project folder. The same answers bake once per session, so treat
  the folder as read-only: copy it (`copy_project`) before running anything that writes into it.
- `baked_project -> Path`: the defaults bake (`gatekeeper_app`).
- `baked_venv(python_version) -> Path`: for a Python version (e.g. "3.12"), a virtualenv under
  `build/baked-venvs/` holding the baked project's runtime and `dev` dependencies, read from the defaults
  bake's pyproject.toml. It holds dependencies only, not the project: a baked project runs from its own folder
  (`python -m pytest` there, since the baked pyproject sets `pythonpath = ["."]`). Built once and reused
  while the dependency list is unchanged; the test is skipped, naming the version, when no such Python is
  found (`python3.X` on PATH or pyenv's `~/.pyenv/versions/3.X.*`).
- `baked_env(python_version) -> dict`: environment variables for running tools from that virtualenv
  (its `bin` first on PATH, a shared pre-commit cache under build/).

Function-scoped:

- `project_copy(project) -> Path`: a private copy of a bake in this test's tmp_path.

Plain helpers (`run`, `cookiecutter_cli`, `leftovers`, `option_bakes`, ...) live in `bakery.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bakery import (
    CHOICES,
    DEFAULT_PYTHON,
    TEMPLATE_DIR,
    baked_dependencies,
    copy_project,
    ensure_virtualenv,
    find_python,
    venv_env,
)


@pytest.fixture(scope="session")
def bake(cookies_session) -> Callable[..., Path]:
    """Bake the template with these answers (once per session) and return the project folder."""
    bakes: dict[tuple[tuple[str, str], ...], Path] = {}

    def _bake(**answers: str) -> Path:
        # An answer that is its choice's default bakes the same project as leaving it out.
        key = tuple(sorted((k, v) for k, v in answers.items() if CHOICES.get(k, [None])[0] != v))
        if key not in bakes:
            result = cookies_session.bake(extra_context=answers, template=str(TEMPLATE_DIR))
            assert result.exit_code == 0, f"bake with {answers} failed: {result.exception!r}"
            bakes[key] = result.project_path
        return bakes[key]

    return _bake


@pytest.fixture(scope="session")
def baked_project(bake) -> Path:
    """The project the defaults bake (what `cookiecutter --no-input` gives)."""
    return bake()


@pytest.fixture(scope="session")
def baked_venv(baked_project) -> Callable[..., Path]:
    """A virtualenv per Python version with the baked project's dependencies and the optional ones of
    `extras` (default: `dev`); skips if no such Python is found."""
    venvs: dict[tuple[str, tuple[str, ...]], Path] = {}

    def _venv(python_version: str = DEFAULT_PYTHON, extras: tuple[str, ...] = ("dev",)) -> Path:
        key = (python_version, extras)
        if key not in venvs:
            python = find_python(python_version)
            if python is None:
                pytest.skip(f"Python {python_version} not found (python{python_version} on PATH or pyenv)")
            purpose = "baked" if extras == ("dev",) else "-".join(extras)
            venvs[key] = ensure_virtualenv(python, baked_dependencies(baked_project, extras), purpose)
        return venvs[key]

    return _venv


@pytest.fixture(scope="session")
def baked_env(baked_venv) -> Callable[..., dict[str, str]]:
    """Environment variables that run a baked project's tools from one of those virtualenvs."""
    return lambda python_version=DEFAULT_PYTHON, extras=("dev",): venv_env(baked_venv(python_version, extras))


@pytest.fixture
def project_copy(tmp_path) -> Callable[[Path], Path]:
    """Copy a bake into this test's tmp_path, so the test may write into it."""
    return lambda project: copy_project(project, tmp_path)
