"""Flag hygiene in a baked project: `flask gk check` passes on a fresh bake and catches planted typos, from
the command line and from the project's pre-commit hook."""

from __future__ import annotations

import pytest
from bakery import flask_cli, run

pytestmark = pytest.mark.slow


def plant_typos(project) -> tuple[int, int]:
    """Misspell a flag in the views module and a variant in the home page template of a project copy;
    returns the line of each typo."""
    views = project / project.name / "views.py"
    text = (
        views.read_text(encoding="utf-8")
        + '\n\ndef _misspelled(gk):\n    return gk.ff("MY_NEW_FEATUR", "VISIBLE")\n'
    )
    views.write_text(text, encoding="utf-8")
    home = project / project.name / "templates" / "home.html"
    lines = home.read_text(encoding="utf-8").splitlines(keepends=True)
    home_line = next(number for number, line in enumerate(lines, start=1) if "'VARIANT_B'" in line)
    lines[home_line - 1] = lines[home_line - 1].replace("'VARIANT_B'", "'VARIANT_BB'")
    home.write_text("".join(lines), encoding="utf-8")
    return len(text.splitlines()), home_line


def test_fresh_bake_passes_flask_gk_check(baked_project, baked_env):
    """The project as baked references only flags and variants it declares."""
    output = flask_cli(baked_project, baked_env(), "gk", "check")
    assert "0 errors" in output


def test_planted_typos_fail_flask_gk_check_with_file_line_and_suggestion(
    baked_project, baked_env, project_copy
):
    """A misspelled flag in Python and a misspelled variant in a template each give an error naming the
    file, the line and the name meant, and the command exits non-zero."""
    project = project_copy(baked_project)
    views_line, home_line = plant_typos(project)
    command = ["python", "-m", "flask", "--app", project.name, "gk", "check"]
    completed = run(command, cwd=project, env=baked_env(), check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert f"gatekeeper_app/views.py:{views_line}: error: unknown flag 'MY_NEW_FEATUR'" in output
    assert "(did you mean 'MY_NEW_FEATURE'?)" in output
    home = f"gatekeeper_app/templates/home.html:{home_line}"
    assert f"{home}: error: HOMEPAGE_EXPERIMENT has no variant 'VARIANT_BB'" in output
    assert "2 errors" in output


def test_planted_typo_fails_the_pre_commit_hook(baked_project, baked_env, project_copy):
    """The baked pre-commit config runs the check: a commit with a misspelled flag is refused."""
    project = project_copy(baked_project)
    plant_typos(project)
    env = baked_env()
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    completed = run(
        ["pre-commit", "run", "gatekeeper-check", "--all-files"], cwd=project, env=env, check=False
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "unknown flag 'MY_NEW_FEATUR'" in completed.stdout
