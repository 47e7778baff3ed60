"""Finish the baked project: its own `.env`, a record of its answers, no files of options not chosen.

Cookiecutter renders this file with Jinja and runs it inside the new project folder. Answers arrive as
percent-encoded JSON in a string literal (never pasted into code). No network, no git: nothing here can
fail on a machine that is offline or has no git identity.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

# The percent-encoded JSON of every answer, filled in by cookiecutter when it renders this hook.
_ENCODED_ANSWERS = "{{ cookiecutter|tojson|urlencode }}"

# The answers as a replay file: `cookiecutter --replay-file .cookiecutter.json TEMPLATE` bakes it again.
ANSWERS_FILE = ".cookiecutter.json"

ENV_HEADER = "# Settings for this checkout only; never commit it (.gitignore lists it). See .env.example."

# Settings an answer puts in `.env`: {answer: {value: lines}}.
ENV_SETTINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "change_feed": {"redis": ("GATEKEEPER_CHANGE_FEED=redis://127.0.0.1:6379/0",)},
}

# Paths (relative to the project) that exist only for one value of a choice: {answer: {value: paths}}.
OPTIONAL_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "ci": {"github": (".github",)},
}


def read_answers(encoded: str = _ENCODED_ANSWERS) -> dict[str, object]:
    """Decode the answers cookiecutter rendered into this file."""
    return json.loads(unquote(encoded))


def env_settings(answers: dict[str, object]) -> list[str]:
    """The `.env` lines the chosen values ask for (e.g. the Redis change feed), after SECRET_KEY."""
    return [
        line
        for answer, lines_by_value in ENV_SETTINGS.items()
        for line in lines_by_value.get(str(answers.get(answer)), ())
    ]


def write_env_file(project_dir: Path, settings: list[str] | None = None) -> bool:
    """Write `.env` (mode 0600) with a fresh SECRET_KEY and `settings`; keep an existing one (re-baking with
    -f keeps it)."""
    env_file = project_dir / ".env"
    if env_file.exists():
        return False
    # Created readable by its owner only (0600): it holds the secret key, so no other account may read it.
    descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f"{ENV_HEADER}\nSECRET_KEY={secrets.token_hex(32)}\n")
        file.writelines(f"{line}\n" for line in settings or ())
    return True


def recorded_answers(answers: dict[str, object]) -> dict[str, dict[str, object]]:
    """The replay form of the answers: `{"cookiecutter": {...}}`, what `cookiecutter --replay-file` loads.

    Private keys are left out but `_template` (where the project came from): a replay takes the rest
    (`_extensions`, `_copy_without_render`) from the template it re-bakes with, so a newer template's
    settings apply, and cookiecutter sets `_output_dir`, `_repo_dir` and `_checkout` itself on every bake.
    """
    kept = {key: value for key, value in answers.items() if not key.startswith("_") or key == "_template"}
    return {"cookiecutter": dict(sorted(kept.items()))}


def write_answers_file(project_dir: Path, answers: dict[str, object]) -> None:
    """Write `.cookiecutter.json`: the answers this project was baked with, for re-baking it later."""
    text = json.dumps(recorded_answers(answers), indent=2, ensure_ascii=False)
    (project_dir / ANSWERS_FILE).write_text(text + "\n", encoding="utf-8")


def paths_not_chosen(answers: dict[str, object]) -> list[str]:
    """The optional paths that belong to a value the user did not pick."""
    return [
        path
        for answer, paths_by_value in OPTIONAL_PATHS.items()
        for value, paths in paths_by_value.items()
        if answers.get(answer) != value
        for path in paths
    ]


def remove_paths(project_dir: Path, paths: list[str]) -> None:
    """Delete the given files or folders under the project, if present."""
    for relative in paths:
        target = project_dir / relative
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def main() -> int:
    """Run inside the freshly baked project folder."""
    project_dir = Path.cwd()
    answers = read_answers()
    write_env_file(project_dir, env_settings(answers))
    write_answers_file(project_dir, answers)
    remove_paths(project_dir, paths_not_chosen(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
