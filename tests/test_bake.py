"""Baking the template: each option value bakes a clean project, odd names survive, bad answers stop early."""

from __future__ import annotations

import ast
import re
import tomllib

import pytest
import yaml
from bakery import CHOICES, TRICKY_ANSWERS, cookiecutter_cli, leftovers, option_bakes, run

OPTION_BAKES = option_bakes()

# (answers, text the pre-gen hook's message must hold): one case per rule the hook enforces.
BAD_ANSWERS = {
    "slug-not-identifier": (["project_slug=my-shop"], "Type a name like 'my_shop' instead."),
    "slug-keyword": (["project_slug=class"], "project_slug 'class' is a Python keyword"),
    "slug-shadows-flask": (["project_slug=flask"], "would shadow the 'flask' module"),
    "slug-shadows-stdlib": (["project_slug=email"], "would shadow the 'email' module"),
    "package-shadows-gatekeeper": (["package_name=gatekeeper"], "package_name 'gatekeeper' would shadow"),
    "package-shadows-tests": (["package_name=tests"], "package_name 'tests' would shadow"),
    "package-starts-with-digit": (["package_name=2shop"], "Type a name like 'app_2shop' instead."),
    "name-gives-digit-slug": (["project_name=3D Shop"], "Type a name like 'app_3d_shop' instead."),
    "empty-project-name": (["project_name=", "project_slug=shop"], "project_name is empty"),
    "bad-email": (["author_email=not-an-email"], "author_email 'not-an-email' does not look like an email"),
}


@pytest.fixture(scope="module", params=OPTION_BAKES.values(), ids=OPTION_BAKES.keys())
def option_project(request, bake):
    """The project baked for one option value (or the defaults)."""
    return bake(**request.param)


def test_defaults_bake_a_project_with_pytest_cookies(cookies):
    """`--no-input` bakes `gatekeeper_app` with the package, its tests and a pyproject naming it."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "gatekeeper_app"
    assert (project / "gatekeeper_app" / "__init__.py").is_file()
    assert (project / "tests").is_dir()
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"] == "gatekeeper_app"


def test_cookiecutter_command_line_bakes_the_defaults(tmp_path):
    """The real `cookiecutter --no-input` command bakes the same project, `.env` included."""
    cookiecutter_cli(tmp_path)
    project = tmp_path / "gatekeeper_app"
    assert (project / "gatekeeper_app" / "__init__.py").is_file()
    assert (project / ".env").is_file()


def test_prompts_ask_each_question_and_bake_the_typed_answers(tmp_path):
    """Answering the prompts (Enter keeps a default, a number picks a choice) bakes those answers."""
    typed = "My Shop\n\n\nSells things.\n\n\n2\n2\n2\n2\n"  # 3.12, no ci, postgresql, redis
    completed = cookiecutter_cli(tmp_path, typed=typed)
    for question in (
        "Project name",
        "Python package name",
        "Lowest Python version",
        "Continuous integration",
        "Database",
        "How a flag change reaches the other processes",
    ):
        assert question in completed.stdout
    project = tmp_path / "my_shop"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert (pyproject["name"], pyproject["description"]) == ("my_shop", "Sells things.")
    assert pyproject["requires-python"] == ">=3.12"
    assert any(dependency.startswith("psycopg") for dependency in pyproject["dependencies"])
    assert any(dependency.startswith("redis") for dependency in pyproject["dependencies"])
    assert "GATEKEEPER_CHANGE_FEED=redis://127.0.0.1:6379/0" in (project / ".env").read_text()
    assert (project / "my_shop" / "__init__.py").is_file()
    assert not (project / ".github").exists()


def test_command_line_answers_name_the_folder_and_package(tmp_path):
    """`project_slug` names the folder and `package_name` the importable package."""
    cookiecutter_cli(tmp_path, "project_name=Shop", "project_slug=shop", "package_name=shop_app")
    project = tmp_path / "shop"
    assert (project / "shop_app" / "__init__.py").is_file()
    assert not (project / "gatekeeper_app").exists()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "shop"


def test_project_name_without_letters_still_gets_a_valid_folder_name(tmp_path):
    """A name slugify cannot use (only punctuation) falls back to `my_app` instead of an empty folder name."""
    cookiecutter_cli(tmp_path, "project_name=!!!")
    assert (tmp_path / "my_app" / "my_app" / "__init__.py").is_file()


def test_no_template_text_is_left_in_any_file(option_project):
    """No `{{`, `{%` or `cookiecutter.` survives the bake, in file names or contents (the app's own
    Jinja templates may hold `{{`, but never a cookiecutter variable)."""
    assert leftovers(option_project) == []


def test_leftover_scan_finds_unrendered_text(tmp_path):
    """The scan itself catches a forgotten variable, a raw tag and an unrendered file name."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text("{{ title }}\n{{ cookiecutter.project_name }}\n")
    (tmp_path / "app.py").write_text("NAME = '{{ name }}'\n# {% if x %}\nURL = '${{ github.ref }}'\n")
    (tmp_path / "{{cookiecutter.slug}}.txt").write_text("")
    assert leftovers(tmp_path) == [
        "{{cookiecutter.slug}}.txt: unrendered file name",
        "app.py:1: NAME = '{{ name }}'",
        "app.py:2: # {% if x %}",
        "templates/page.html:2: {{ cookiecutter.project_name }}",
    ]


@pytest.mark.parametrize("version", CHOICES["python_version"])
def test_python_version_sets_requires_python_and_ruff_target(bake, version):
    """The chosen lowest Python is what pyproject.toml requires and what ruff targets."""
    pyproject = tomllib.loads((bake(python_version=version) / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")


def test_ci_none_bakes_no_github_folder(bake):
    """Without CI the project has no `.github` folder at all."""
    assert not (bake(ci="none") / ".github").exists()


def test_ci_github_bakes_a_workflow_that_runs_the_tests(baked_project):
    """With GitHub Actions there is a valid workflow, triggered on push, with a step that runs the tests."""
    workflow = yaml.safe_load((baked_project / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on:` key as True
    assert "push" in triggers
    commands = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("pytest" in command or "make test" in command for command in commands)


def test_change_feed_redis_makes_redis_a_dependency_and_sets_its_url(bake):
    """The Redis change feed bakes redis-py into the dependencies and its URL into `.env` and `.env.example`;
    the default keeps redis-py an extra and leaves the setting empty (automatic)."""
    line = "GATEKEEPER_CHANGE_FEED=redis://127.0.0.1:6379/0"
    for project, chosen in ((bake(), False), (bake(change_feed="redis"), True)):
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        assert any(dependency.startswith("redis") for dependency in pyproject["dependencies"]) is chosen
        assert ("redis" in pyproject["optional-dependencies"]) is not chosen
        assert (line in (project / ".env").read_text().splitlines()) is chosen
        example = (project / ".env.example").read_text().splitlines()
        assert (line if chosen else "GATEKEEPER_CHANGE_FEED=") in example


def test_each_bake_gets_its_own_secret_key(cookies):
    """Two bakes write `.env` files with different SECRET_KEYs."""
    keys = []
    for _ in range(2):
        result = cookies.bake()
        assert result.exit_code == 0, result.exception
        env = (result.project_path / ".env").read_text()
        keys.append(re.search(r"^SECRET_KEY=(\S+)$", env, re.MULTILINE).group(1))
    assert len(keys[0]) >= 32
    assert keys[0] != keys[1]


def test_env_file_is_ignored_by_git(baked_project, project_copy):
    """The baked `.gitignore` keeps `.env` (and its secret) out of git."""
    project = project_copy(baked_project)
    run(["git", "init", "-q"], cwd=project)
    assert run(["git", "check-ignore", "-q", ".env"], cwd=project, check=False).returncode == 0


@pytest.mark.parametrize("answers", TRICKY_ANSWERS.values(), ids=TRICKY_ANSWERS.keys())
def test_tricky_names_give_valid_toml(bake, answers):
    """Quotes, apostrophes, backslashes and unicode in names land in pyproject.toml exactly as typed."""
    pyproject = tomllib.loads((bake(**answers) / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert pyproject["description"] == answers["description"]
    assert pyproject["authors"][0]["name"] == answers["author_name"]


@pytest.mark.parametrize("answers", TRICKY_ANSWERS.values(), ids=TRICKY_ANSWERS.keys())
def test_tricky_names_give_python_that_compiles(bake, answers):
    """Every baked Python file still parses when the names hold quotes, backslashes and unicode."""
    project = bake(**answers)
    for path in project.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("answers", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_bad_answer_stops_in_the_pre_gen_hook_with_its_message(tmp_path, answers):
    """A bad answer fails before anything is written, and the message says what was wrong."""
    args, message = answers
    completed = cookiecutter_cli(tmp_path, *args, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "pre_gen_project hook script didn't exit successfully" in output
    assert "ERROR: " in completed.stderr
    assert message in output
    assert list(tmp_path.iterdir()) == []
