"""Each baked project passes its own checks: its test suite, ruff, and pre-commit on a fresh git repository.

One bake per option value, each run with the Python it names as its lowest supported version, from a
virtualenv built once per session (see `baked_venv` in conftest.py). A whole suite runs only where the bake's
code can behave differently: the defaults, and each Python version. `ci=none` leaves out the workflow and
changes nothing else (a test here compares the files), so the defaults' suite and ruff stand for it; the
`database=postgresql` bake runs its whole suite on a real server in test_postgresql_bake.py, so here it runs
the tests of what that answer changes, on SQLite, as a user without a server would. The lowest Python runs the
whole suite (and the PostgreSQL bake runs it again on 3.11 against a real server); the newer versions run the
tests of the code that leans on the language.
"""

from __future__ import annotations

import os
import zipfile

import pytest
from bakery import DEFAULT_PYTHON, TRICKY_ANSWERS, option_bakes, python_version_of, run, text_files
from pgserver import postgres_bin

pytestmark = pytest.mark.slow

OPTION_BAKES = option_bakes()
# The baked tests of what an answer changes, when the bake's whole suite runs elsewhere.
SUITE_SUBSETS = {
    "database=postgresql,change_feed=redis": [
        "tests/test_config.py",
        "tests/test_factory.py",
        "tests/test_redis_feed.py",
    ],
    # The other Python versions run the engine's tests and OpenFeature's suites (the code that leans on the
    # language: enums, descriptors, context variables, forks); the lowest (the defaults) runs everything.
    **{
        f"python_version={version}": [
            "tests/test_gatekeeper_*.py",
            "tests/openfeature_spec",
            "tests/test_processes.py",
        ]
        for version in ("3.12", "3.13")
    },
}
SAME_CODE_AS_DEFAULTS = {"ci=none"}  # bakes whose files are the defaults' but for the workflow


def option_params(*leave_out: str, quick: bool = False) -> list:
    """The option bakes as pytest params; with `quick`, the defaults' is part of `make test-quick`."""
    return [
        pytest.param(answers, id=name, marks=[pytest.mark.quick] if quick and name == "defaults" else [])
        for name, answers in OPTION_BAKES.items()
        if name not in leave_out
    ]


@pytest.fixture
def option(request, bake, baked_env, project_copy):
    """A private copy of one option value's bake, and the environment of its Python's virtualenv."""
    answers = request.param
    # A postgresql bake depends on psycopg, which the defaults bake lists as its `postgres` extra.
    extras = ("dev", "postgres") if answers.get("database") == "postgresql" else ("dev",)
    env = baked_env(python_version_of(answers), extras)
    return project_copy(bake(**answers)), env


@pytest.mark.parametrize("option", option_params(*SAME_CODE_AS_DEFAULTS, quick=True), indirect=True)
def test_baked_test_suite_passes(option, request):
    """The project's own pytest suite passes on the Python it declares as its lowest."""
    project, env = option
    name = request.node.callspec.id
    # Without a PostgreSQL server the PostgreSQL bake's whole suite runs here, on SQLite.
    server = postgres_bin() is not None or not name.startswith("database")
    subset = SUITE_SUBSETS.get(name) if server else None
    paths = sorted(str(p.relative_to(project)) for pattern in subset or () for p in project.glob(pattern))
    assert paths or not subset, f"{name}: its subset names no file"
    # `make test-quick` gives the defaults' suite two processes of its own (the other template tests are
    # few there); `make test` keeps each baked suite in one, its two workers being busy with the rest.
    workers = os.environ.get("BAKED_SUITE_WORKERS", "")
    parallel = ["-n", workers] if workers.isdigit() else []
    run(
        ["python", "-m", "pytest", "-q", "--tb=short", "-rfE", "-p", "no:cacheprovider", *parallel, *paths],
        cwd=project,
        env=env,
    )


def test_every_suite_subset_names_an_option_bake():
    """A subset keyed by a name no bake has would be ignored, and that bake would run its whole suite again
    (as the PostgreSQL bake did once its name gained `change_feed=redis`)."""
    assert set(SUITE_SUBSETS) <= set(OPTION_BAKES)


def test_ci_none_changes_nothing_but_the_workflow(bake):
    """`ci=none` bakes the defaults' files, less `.github/`: the defaults' suite and ruff stand for it."""
    defaults, without_ci = bake(), bake(ci="none")

    def files(project):
        # Each bake draws its own secret key (.env) and records its own answers (.cookiecutter.json).
        return {
            path.relative_to(project).as_posix(): path.read_text(encoding="utf-8")
            for path in text_files(project)
            if path.name not in {".env", ".cookiecutter.json"}
        }

    expected = {name: text for name, text in files(defaults).items() if not name.startswith(".github/")}
    assert expected.keys() < files(defaults).keys(), "the defaults bake has no workflow to leave out"
    assert files(without_ci) == expected


@pytest.mark.parametrize("option", option_params(*SAME_CODE_AS_DEFAULTS), indirect=True)
def test_baked_project_passes_ruff_check(option):
    """`ruff check` finds nothing, under the project's own settings."""
    project, env = option
    run(["ruff", "check", "--no-cache", "."], cwd=project, env=env)


@pytest.mark.parametrize("option", option_params(*SAME_CODE_AS_DEFAULTS), indirect=True)
def test_baked_project_passes_ruff_format_check(option):
    """`ruff format --check` would change nothing."""
    project, env = option
    run(["ruff", "format", "--check", "--no-cache", "."], cwd=project, env=env)


@pytest.mark.parametrize("option", option_params(), indirect=True)
def test_baked_project_passes_pre_commit_in_a_new_git_repository(option):
    """`git init`, `git add -A`, `pre-commit run --all-files`: every hook passes on the fresh project."""
    project, env = option
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["pre-commit", "run", "--all-files", "--show-diff-on-failure"], cwd=project, env=env)


@pytest.mark.parametrize("answers", TRICKY_ANSWERS.values(), ids=TRICKY_ANSWERS.keys())
def test_tricky_project_name_imports_and_reaches_the_app_unchanged(bake, baked_env, project_copy, answers):
    """With quotes, backslashes and unicode in its name the package imports, and the app shows the name
    exactly as typed."""
    project = project_copy(bake(**answers))
    script = (
        "import sys; from gatekeeper_app import create_app; "
        "app = create_app({'TESTING': True, 'SQLALCHEMY_DATABASE_URI': 'sqlite://'}); "
        "sys.stdout.buffer.write(app.config['APP_NAME'].encode('utf-8'))"
    ).replace("gatekeeper_app", project.name)
    env = {**baked_env(DEFAULT_PYTHON), "PYTHONUTF8": "1"}
    completed = run(["python", "-c", script], cwd=project, env=env)
    assert completed.stdout == answers["project_name"]


@pytest.mark.parametrize("answers", TRICKY_ANSWERS.values(), ids=TRICKY_ANSWERS.keys())
def test_tricky_project_name_keeps_the_project_ruff_clean(bake, baked_env, project_copy, answers):
    """Quotes in the answers are rendered the way ruff formats them, so the project stays lint-clean."""
    project = project_copy(bake(**answers))
    env = baked_env(DEFAULT_PYTHON)
    run(["ruff", "check", "--no-cache", "."], cwd=project, env=env)
    run(["ruff", "format", "--check", "--no-cache", "."], cwd=project, env=env)


def test_baked_project_builds_a_wheel_with_its_templates_and_static_files(
    baked_project, baked_env, project_copy, tmp_path
):
    """`pip wheel .` packages the app with every template and static file it needs at run time."""
    project = project_copy(baked_project)
    wheels = tmp_path / "wheels"
    run(["python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, "."], cwd=project, env=baked_env())
    (wheel,) = wheels.glob("*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    needed = {
        path.relative_to(project).as_posix()
        for folder in ("templates", "static")
        for path in (project / "gatekeeper_app" / folder).rglob("*")
        if path.is_file()
    }
    assert needed, "the package has no templates or static files to check"
    assert needed <= packaged
    assert "gatekeeper_app/__init__.py" in packaged
