"""Template updates: a baked project records its answers, and re-baking from them gives the same project."""

from __future__ import annotations

import json
from pathlib import Path

from bakery import CHOICES, cookiecutter_cli, leftovers

# Non-default answers for every question, so a replay that fell back to a default would show.
ANSWERS = {
    "project_name": "Corner Shop",
    "project_slug": "corner_shop",
    "package_name": "shop_app",
    "description": 'Sells "things" to O\'Brien',
    "author_name": "Zoë Example",
    "author_email": "zoe@example.org",
    "python_version": CHOICES["python_version"][-1],
    "ci": CHOICES["ci"][-1],
}


def project_files(project: Path) -> dict[str, bytes]:
    """Every file of a bake by relative path, but `.env` (each bake writes a fresh secret key)."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and path.name != ".env"
    }


def test_baked_project_records_its_answers_in_replay_form(tmp_path):
    """`.cookiecutter.json` holds `{"cookiecutter": {...}}` with every answer as given, the form
    `cookiecutter --replay-file` loads (and cruft's `.cruft.json` keeps under `context`)."""
    cookiecutter_cli(tmp_path, *(f"{key}={value}" for key, value in ANSWERS.items()))
    recorded = json.loads((tmp_path / "corner_shop" / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert list(recorded) == ["cookiecutter"]
    assert {key: recorded["cookiecutter"][key] for key in ANSWERS} == ANSWERS


def test_recorded_answers_hold_no_paths_of_the_machine_that_baked(tmp_path):
    """Only the answers and the template's address are kept: no output or checkout folder, which would
    differ between machines and change the file on every re-bake."""
    cookiecutter_cli(tmp_path, "project_slug=shop")
    recorded = json.loads((tmp_path / "shop" / ".cookiecutter.json").read_text(encoding="utf-8"))
    private = {key for key in recorded["cookiecutter"] if key.startswith("_")}
    assert private == {"_template"}


def test_re_baking_from_the_recorded_answers_gives_identical_files(tmp_path):
    """Bake with non-default answers through the `cookiecutter` command line, then bake again with
    `--replay-file` pointing at the project's `.cookiecutter.json`: nothing is asked (standard input is
    empty) and every file but `.env` comes out byte for byte the same."""
    first, second = tmp_path / "first", tmp_path / "second"
    cookiecutter_cli(first, *(f"{key}={value}" for key, value in ANSWERS.items()))
    replay_file = first / "corner_shop" / ".cookiecutter.json"
    completed = cookiecutter_cli(second, "--replay-file", str(replay_file), typed="")
    assert completed.returncode == 0
    original, replayed = project_files(first / "corner_shop"), project_files(second / "corner_shop")
    assert sorted(original) == sorted(replayed)
    assert [path for path in original if original[path] != replayed[path]] == []
    assert (second / "corner_shop" / ".env").is_file()


def test_leftover_scan_allows_the_answers_file_but_not_a_variable(tmp_path):
    """`.cookiecutter.json` (the file and its name in prose) is not unrendered template text; a
    `cookiecutter.` variable still is."""
    (tmp_path / ".cookiecutter.json").write_text('{"cookiecutter": {}}\n')
    readme = "Answers: `.cookiecutter.json`.\nName: {{ cookiecutter.project_name }}\n"
    (tmp_path / "README.md").write_text(readme)
    assert leftovers(tmp_path) == ["README.md:2: Name: {{ cookiecutter.project_name }}"]
