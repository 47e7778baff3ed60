"""The README's "Add gatekeeper to an existing Flask app" works, step by step, in an app we did not make."""

from __future__ import annotations

import ast
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, ensure_virtualenv, run, venv_env

SECTION = "## Add gatekeeper to an existing Flask app"
ENGINE_FILES = ("gatekeeper.py", "gatekeeper_config.py")
# What the engine may import: the standard library, Flask and the packages Flask itself depends on.
ALLOWED_THIRD_PARTY = {"flask", "werkzeug", "jinja2", "itsdangerous", "click", "blinker", "markupsafe"}

EXISTING_APP = '''
"""Somebody's shop: a Flask app with its own factory, no Flask-Login, no database."""

from flask import Flask, render_template_string, request


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "shop-secret"

    {wiring}

    @app.get("/")
    def home():
        new = "new" if request.gk.ff("MY_NEW_FEATURE", "VISIBLE") else "old"
        return new + " " + render_template_string(
            "{{% if ff('MY_NEW_FEATURE', 'VISIBLE') %}}new{{% else %}}old{{% endif %}} "
            "{{{{ gk.ff_variant('HOMEPAGE_EXPERIMENT') }}}}"
        )

    return app
'''

EXISTING_APP_TESTS = """
from shop import create_app


def test_flags_answer_in_views_and_templates():
    client = create_app().test_client()
    words = client.get("/").text.split()
    assert words[:2] == ["old", "old"]
    assert words[2] in {"VARIANT_A", "VARIANT_B", "CONTROL"}


def test_anonymous_visitors_keep_their_experiment_variant():
    client = create_app().test_client()
    first = client.get("/").text
    assert all(client.get("/").text == first for _ in range(5))


def test_gk_cli_lists_the_flags():
    result = create_app().test_cli_runner().invoke(args=["gk", "list"])
    assert "MY_NEW_FEATURE" in result.output and "HOMEPAGE_EXPERIMENT" in result.output
"""


def readme_section() -> str:
    text = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def wiring_code() -> str:
    """The first Python block of the README section: the lines a user adds to their factory."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section(), flags=re.DOTALL)
    assert blocks, "the README section shows no ```python block of wiring"
    return blocks[0]


def test_readme_names_the_files_to_copy():
    """The section tells the reader which files to copy."""
    section = readme_section()
    for name in ENGINE_FILES:
        assert name in section


def test_the_engine_imports_nothing_but_flask_and_the_standard_library(baked_project):
    """gatekeeper.py is a drop-in: no import of the generated app, nothing outside Flask's own stack."""
    package = baked_project / baked_project.name
    tree = ast.parse((package / "gatekeeper.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in gatekeeper.py: {ast.unparse(node)}"
            imported.add(node.module.split(".")[0])
    optional = {"flask_login"}  # used only when the app has a LoginManager
    outside = imported - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY - optional
    assert not outside, f"gatekeeper.py imports {outside}"


@pytest.fixture(scope="module")
def flask_only_venv() -> Path:
    """A virtualenv with Flask and nothing else: no Flask-Login, no SQLAlchemy, no Flask-WTF."""
    return ensure_virtualenv(sys.executable, ["Flask>=3.1", "pytest>=8"])


def test_copied_files_work_in_an_app_we_did_not_generate(baked_project, flask_only_venv, tmp_path):
    """Copy the two files, add the README's wiring to a plain Flask factory, and the flags work."""
    package = tmp_path / "shop"
    package.mkdir()
    for name in ENGINE_FILES:
        shutil.copy(baked_project / baked_project.name / name, package / name)
    wiring = textwrap.indent(wiring_code().strip(), "    ").lstrip()
    (package / "__init__.py").write_text(EXISTING_APP.format(wiring=wiring), encoding="utf-8")
    (tmp_path / "test_shop.py").write_text(EXISTING_APP_TESTS, encoding="utf-8")
    result = run(
        [flask_only_venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=venv_env(flask_only_venv),
    )
    assert "3 passed" in result.stdout
