"""Check the answers before cookiecutter writes anything, and say what to type instead of a bad one.

Cookiecutter renders this file with Jinja, then runs it. The answers arrive as data: the whole answer set
is JSON, percent-encoded into a string literal, so no answer (quotes, backslashes, newlines) can ever
become code. The checks are plain functions so the template's tests import and call them directly.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from urllib.parse import unquote

# The percent-encoded JSON of every answer, filled in by cookiecutter when it renders this hook.
_ENCODED_ANSWERS = "{{ cookiecutter|tojson|urlencode }}"

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Top-level modules the generated app, its tests and its tools import: a package with one of these names
# would shadow the real module and break the app in confusing ways.
APP_MODULES = frozenset(
    {
        "alembic",
        "blinker",
        "click",
        "conftest",
        "coverage",
        "dotenv",
        "email_validator",
        "flask",
        "flask_limiter",
        "flask_login",
        "flask_migrate",
        "flask_sqlalchemy",
        "flask_wtf",
        "gatekeeper",
        "gunicorn",
        "hypothesis",
        "instance",
        "itsdangerous",
        "jinja2",
        "limits",
        "markupsafe",
        "openfeature",
        "pip",
        "pre_commit",
        "psycopg",
        "pytest",
        "redis",
        "ruff",
        "setuptools",
        "sqlalchemy",
        "test",
        "tests",
        "werkzeug",
        "wtforms",
    }
)
SHADOWED_MODULES = APP_MODULES | frozenset(getattr(sys, "stdlib_module_names", ()))


def read_answers(encoded: str = _ENCODED_ANSWERS) -> dict[str, object]:
    """Decode the answers cookiecutter rendered into this file."""
    return json.loads(unquote(encoded))


def suggest_identifier(name: str) -> str:
    """Turn any text into a name that passes `check_identifier`, to show the user what would work."""
    candidate = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not candidate:
        return "my_app"
    if not candidate[0].isalpha():
        candidate = "app_" + candidate
    if keyword.iskeyword(candidate) or candidate in SHADOWED_MODULES:
        candidate += "_app"
    return candidate


def check_identifier(field: str, value: str) -> str | None:
    """Return why `value` cannot be a folder or package name, with a working alternative; None if it can."""
    instead = f"Type a name like {suggest_identifier(value)!r} instead."
    if not _IDENTIFIER.fullmatch(value):
        return (
            f"{field} {value!r} is not a valid Python package name: use lowercase letters, digits and "
            f"underscores, starting with a letter. {instead}"
        )
    if keyword.iskeyword(value):
        return f"{field} {value!r} is a Python keyword, so it cannot be imported. {instead}"
    if value in SHADOWED_MODULES:
        return (
            f"{field} {value!r} would shadow the {value!r} module that Python or the app imports. {instead}"
        )
    return None


def check_text(field: str, value: str, *, required: bool) -> str | None:
    """Return why a free-text answer cannot be used (empty when required, or more than one line)."""
    if required and not value.strip():
        return f"{field} is empty: type a name, e.g. 'Gatekeeper App'."
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return f"{field} {value!r} holds a line break or control character: type it on one line."
    return None


def check_email(field: str, value: str) -> str | None:
    """Return why `value` does not look like an email address, or None if it does."""
    if not _EMAIL.fullmatch(value):
        return f"{field} {value!r} does not look like an email address: type one like 'you@example.com'."
    return None


def validate(answers: dict[str, object]) -> list[str]:
    """Every problem with the answers, one message per bad answer; an empty list means bake."""
    problems = [
        check_text("project_name", str(answers["project_name"]), required=True),
        check_text("description", str(answers["description"]), required=False),
        check_text("author_name", str(answers["author_name"]), required=False),
        check_email("author_email", str(answers["author_email"])),
        check_identifier("project_slug", str(answers["project_slug"])),
        check_identifier("package_name", str(answers["package_name"])),
    ]
    return [problem for problem in problems if problem]


def main() -> int:
    """Validate the rendered answers; print every problem and fail so cookiecutter writes nothing."""
    problems = validate(read_answers())
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
