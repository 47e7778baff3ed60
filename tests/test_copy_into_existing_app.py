"""The README's "Add gatekeeper to an existing Flask app" works, step by step, in an app we did not make."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, ensure_virtualenv, run, venv_env

SECTION = "## Add gatekeeper to an existing Flask app"
ENGINE_FILES = ("gatekeeper.py", "gatekeeper_config.py")
# Level 2: the folder, copied whole (its templates and static files are inside it).
DASHBOARD_FILES = ("gatekeeper_control/",)
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
            "{% if ff('MY_NEW_FEATURE', 'VISIBLE') %}new{% else %}old{% endif %} "
            "{{ gk.ff_variant('HOMEPAGE_EXPERIMENT') }}"
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


def make_shop(
    root: Path, baked_project: Path, files: tuple[str, ...], app_code: str, wiring: str, tests: str
) -> None:
    """Somebody's app in `root`: a `shop` package holding `files` copied from the bake (folders end in
    "/") and `app_code` with the README's `wiring` in place of {wiring}, and `tests` beside it."""
    package = root / "shop"
    copy_baked_files(baked_project, package, files)
    indented = textwrap.indent(wiring.strip(), "    ").lstrip()
    (package / "__init__.py").write_text(app_code.replace("{wiring}", indented), encoding="utf-8")
    (root / "test_shop.py").write_text(tests, encoding="utf-8")


def copy_baked_files(baked_project: Path, package: Path, files: tuple[str, ...]) -> None:
    """Copy `files` (folders end in "/") from the bake's package into `package`, as the README says."""
    baked_package = baked_project / baked_project.name
    for name in files:
        source, target = baked_package / name, package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)


def shop_tests(root: Path, venv: Path, **env: str) -> str:
    """Run the shop's tests with the virtualenv's pytest; their output."""
    command = [venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return run(command, cwd=root, env={**venv_env(venv), **env}).stdout


def readme_section() -> str:
    text = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


# The first lines of the README's wiring blocks: which app each is for.
ENGINE_ONLY = "# Engine only: for an app with Flask-Login, or with no logins"
ENGINE_ONLY_OWN_LOGIN = "# Engine only: for an app that keeps its logged-in user in g.user"
WITH_DASHBOARD = "# Engine, store and dashboard: for an app with Flask-Login and users with is_admin"
WITH_DASHBOARD_OWN_LOGIN = "# Engine, store and dashboard: for an app on raw sqlite3"


def wiring_code(first_line: str) -> str:
    """The ```python block of the README section that starts with `first_line` (the comment that says which
    app it is for): the lines a user adds to their factory."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section(), flags=re.DOTALL)
    matching = [block for block in blocks if block.startswith(first_line)]
    assert len(matching) == 1, f"the README section has no ```python block starting {first_line!r}"
    return matching[0]


def pip_requirements(level: int) -> list[str]:
    """The packages of the README's `pip install` line for level 1, 2 or 3 (one line per level, in order)."""
    lines = re.findall(r"^pip install (.+)$", readme_section(), flags=re.MULTILINE)
    assert len(lines) == 3, "the README section should show one `pip install` line per level"
    return shlex.split(lines[level - 1])


def test_readme_names_the_files_to_copy():
    """The section tells the reader which files to copy, for the engine and for the dashboard."""
    section = readme_section()
    for name in (*ENGINE_FILES, *DASHBOARD_FILES):
        assert name in section


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """The top-level packages a module imports, and the sibling modules it imports relatively."""
    packages, siblings = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            siblings |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            packages.add(node.module.split(".")[0])
    return packages - set(sys.stdlib_module_names), siblings


def test_the_engine_imports_nothing_but_flask_and_the_standard_library(baked_project):
    """gatekeeper.py is a drop-in: no import of the generated app, nothing outside Flask's own stack."""
    packages, siblings = imports_of(baked_project / baked_project.name / "gatekeeper.py")
    assert not siblings, f"gatekeeper.py imports the app's {siblings}"
    optional = {"flask_login"}  # used only when the app has a LoginManager
    newer_stdlib = {"_sha2"}  # CPython's own SHA-256 from 3.12 on (`_sha256` before it)
    assert packages <= ALLOWED_THIRD_PARTY | optional | newer_stdlib


def folder_modules(baked_project: Path) -> list[Path]:
    return sorted((baked_project / baked_project.name / "gatekeeper_control").glob("*.py"))


def test_the_folder_imports_only_the_engine_its_own_modules_and_their_libraries(baked_project):
    """Each module of gatekeeper_control/ imports the engine beside the folder, the folder's own modules,
    SQLAlchemy and optional libraries only: copying the folder is all it takes (the baked project's
    import-linter contracts check that it never imports the app)."""
    modules = folder_modules(baked_project)
    assert len(modules) > 10
    own = {path.stem for path in modules} | {"gatekeeper"}  # `from .. import gatekeeper`: the engine
    optional = {"flask_login", "flask_wtf", "wtforms"}  # Flask-WTF's CSRF tokens, when the app has it
    optional |= {"flask_limiter"}  # OFREP's rate limit (ofrep.py), when Flask-Limiter is installed
    feeds = {"psycopg", "redis"}  # imported in push.py's threads, for the feed in use
    # optional, each for one feature, refused on save with its name when missing: VALUE_SCHEMA, a segment's
    # `matches` (RE2: no catastrophic backtracking) and its version comparisons
    features = {"jsonschema", "re2", "packaging"}
    # engine.py's fallback for the flat layout, openfeature.py's SDK (the `openfeature` extra) and
    # telemetry.py's OpenTelemetry API (used when installed)
    flat_and_extras = {"gatekeeper", "openfeature", "opentelemetry"}
    for module in modules:
        packages, siblings = imports_of(module)
        assert siblings <= own, f"{module.name} imports {siblings - own} from outside the folder"
        allowed = ALLOWED_THIRD_PARTY | optional | feeds | features | flat_and_extras | {"sqlalchemy"}
        assert packages <= allowed, f"{module.name} imports {packages - allowed}"


def lowest(requirements: list[str]) -> list[str]:
    """The README's `pip install` requirements at the lowest versions they allow ("Flask>=3.0" -> ==3.0),
    which is what the copied files are tested on."""
    return [requirement.replace(">=", "==") for requirement in requirements]


@pytest.fixture(scope="module")
def flask_only_venv() -> Path:
    """A virtualenv with the README's level-1 line at its lowest versions and nothing else: no Flask-Login,
    no SQLAlchemy, no Flask-WTF."""
    return ensure_virtualenv(sys.executable, [*lowest(pip_requirements(1)), "pytest>=8"])


def test_copied_files_work_in_an_app_we_did_not_generate(baked_project, flask_only_venv, tmp_path):
    """Copy the two files, add the README's wiring to a plain Flask factory, and the flags work."""
    wiring = wiring_code(ENGINE_ONLY)
    make_shop(tmp_path, baked_project, ENGINE_FILES, EXISTING_APP, wiring, EXISTING_APP_TESTS)
    assert "3 passed" in shop_tests(tmp_path, flask_only_venv)


EXISTING_APP_WITH_LOGINS = '''
"""Somebody's shop with logins and a database: Flask-Login, Flask-WTF, SQLAlchemy without Flask-SQLAlchemy."""

import os

from flask import Flask, request
from flask_login import LoginManager, UserMixin, login_user
from flask_wtf import CSRFProtect
from sqlalchemy import create_engine


class Shopper(UserMixin):
    def __init__(self, id, is_admin):
        self.id, self.is_admin = id, is_admin


SHOPPERS = {"1": Shopper("1", True), "2": Shopper("2", False)}


def create_app(test_config=None):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "shop-secret"
    app.config.update(test_config or {})
    LoginManager(app).user_loader(SHOPPERS.get)
    CSRFProtect(app)
    engine = create_engine("sqlite:///" + os.environ["SHOP_DB"])

    {wiring}

    @app.get("/login/<shopper>")
    def login(shopper):
        login_user(SHOPPERS[shopper])
        return "ok"

    @app.get("/")
    def home():
        return "new" if request.gk.ff("MY_NEW_FEATURE", "VISIBLE") else "old"

    return app
'''

EXISTING_APP_WITH_LOGINS_TESTS = """
from shop import create_app


def app_and_client(**config):
    app = create_app(config)
    return app, app.test_client()


def test_an_admin_sees_the_flag_list():
    app, client = app_and_client()
    client.get("/login/1")
    page = client.get("/gatekeeper/").text
    assert "MY_NEW_FEATURE" in page and "HOMEPAGE_EXPERIMENT" in page


def test_other_shoppers_get_403():
    app, client = app_and_client()
    client.get("/login/2")
    assert client.get("/gatekeeper/").status_code == 403


def test_forms_carry_a_csrf_token():
    app, client = app_and_client()
    client.get("/login/1")
    assert 'name="csrf_token"' in client.get("/gatekeeper/flags/MY_NEW_FEATURE").text


def test_forcing_a_variant_reaches_everyone_and_is_audited():
    app, client = app_and_client(WTF_CSRF_ENABLED=False)
    assert app.test_client().get("/").text == "old"
    client.get("/login/1")
    response = client.post(
        "/gatekeeper/flags/MY_NEW_FEATURE/force", data={"variant": "VISIBLE", "confirm": "yes"}
    )
    assert response.status_code == 302
    assert app.test_client().get("/").text == "new"
    audit = app.test_cli_runner().invoke(args=["gk", "audit"]).output
    assert "MY_NEW_FEATURE" in audit
"""


@pytest.fixture(scope="module")
def logins_venv() -> Path:
    """The README's level-2 line at its lowest versions, and the app's own Flask-Login and Flask-WTF."""
    requirements = [*lowest(pip_requirements(2)), "Flask-Login>=0.6.3", "Flask-WTF>=1.2", "pytest>=8"]
    return ensure_virtualenv(sys.executable, requirements)


def test_copied_dashboard_works_in_an_app_we_did_not_generate(baked_project, logins_venv, tmp_path):
    """Copy the engine, the store, the dashboard and its templates and assets, add the README's second
    wiring to a Flask app with its own logins, and the dashboard, the store and the CLI work."""
    app_code, tests = EXISTING_APP_WITH_LOGINS, EXISTING_APP_WITH_LOGINS_TESTS
    files, wiring = (*ENGINE_FILES, *DASHBOARD_FILES), wiring_code(WITH_DASHBOARD)
    make_shop(tmp_path, baked_project, files, app_code, wiring, tests)
    assert "4 passed" in shop_tests(tmp_path, logins_venv, SHOP_DB=str(tmp_path / "shop.db"))


# --- An app on Flask-SQLAlchemy and Flask-Migrate whose own tests build tables with db.create_all() --------

WITH_FLASK_SQLALCHEMY = "# Engine, store and dashboard: for an app on Flask-SQLAlchemy with a User model"
ENV_PY_RECIPE = "from myapp.gatekeeper_control import metadata as gatekeeper_metadata"
TEST_TABLES_RECIPE = "gatekeeper_control.create_tables()"

MIGRATE_APP = '''
"""Somebody's shop on Flask-SQLAlchemy, Flask-Migrate and Flask-Login, with a User model."""

import os

from flask import Flask, request
from flask_login import LoginManager, login_user
from flask_migrate import Migrate

from . import models


def create_app(test_config=None):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "shop-secret"
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.environ["SHOP_DB"]
    app.config.update(test_config or {})
    models.db.init_app(app)
    Migrate(app, models.db)
    LoginManager(app).user_loader(lambda user_id: models.db.session.get(models.User, int(user_id)))

    {wiring}

    @app.get("/login/<int:user_id>")
    def login(user_id):
        login_user(models.db.session.get(models.User, user_id))
        return "ok"

    @app.get("/")
    def home():
        return "new" if request.gk.ff("MY_NEW_FEATURE", "VISIBLE") else "old"

    return app
'''

MIGRATE_APP_MODELS = """
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class User(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(200), unique=True, nullable=False)
    is_admin = db.Column(db.Boolean, default=False, nullable=False)
"""

# The shop's own tests: a fresh in-memory database per test, built with db.create_all() plus the README's
# one line for gatekeeper's tables ({tables}).
MIGRATE_APP_TESTS = """
import pytest

from shop import create_app
from shop.models import User, db
from shop import gatekeeper_control


@pytest.fixture
def app():
    app = create_app({{"SQLALCHEMY_DATABASE_URI": "sqlite://", "WTF_CSRF_ENABLED": False}})
    with app.app_context():
        db.create_all()
        {tables}
        db.session.add(User(id=1, email="ann@example.com", is_admin=True))
        db.session.add(User(id=2, email="bob@example.com"))
        db.session.commit()
    return app


def test_an_admin_opens_the_dashboard_and_others_get_403(app):
    admin, other = app.test_client(), app.test_client()
    admin.get("/login/1")
    other.get("/login/2")
    assert "MY_NEW_FEATURE" in admin.get("/gatekeeper/").text
    assert other.get("/gatekeeper/").status_code == 403


def test_an_override_names_a_user_by_email_through_the_lookup(app):
    admin = app.test_client()
    admin.get("/login/1")
    bob_gets_it = {{"user": "bob@example.com", "variant": "VISIBLE"}}
    admin.post("/gatekeeper/flags/MY_NEW_FEATURE/users", data=bob_gets_it)
    bob = app.test_client()
    bob.get("/login/2")
    assert bob.get("/").text == "new"
    refused = admin.post(
        "/gatekeeper/flags/MY_NEW_FEATURE/users", data={{"user": "nobody@example.com", "variant": "VISIBLE"}}
    )
    assert refused.status_code == 422
    assert "No user matches" in refused.text


def test_the_users_page_finds_users_by_part_of_an_email(app):
    admin = app.test_client()
    admin.get("/login/1")
    page = admin.get("/gatekeeper/users?q=EXAMPLE.COM").text
    assert "2 users match" in page and "ann@example.com" in page and "bob@example.com" in page


def test_explain_finds_the_user_by_email(app):
    command = ["gk", "explain", "MY_NEW_FEATURE", "--user", "ann@example.com"]
    output = app.test_cli_runner().invoke(args=command).output
    assert "MY_NEW_FEATURE = " in output and "unchecked" not in output
"""


@pytest.fixture(scope="module")
def migrate_venv() -> Path:
    """The README's level-2 line at its lowest Flask, and the app's own Flask-SQLAlchemy, Flask-Migrate and
    Flask-Login (Flask-SQLAlchemy needs a newer SQLAlchemy than gatekeeper's lowest, so it picks that)."""
    flask = [requirement for requirement in lowest(pip_requirements(2)) if requirement.startswith("Flask")]
    requirements = [*flask, "Flask-SQLAlchemy>=3.1", "Flask-Migrate>=4.0", "Flask-Login>=0.6.3", "pytest>=8"]
    return ensure_virtualenv(sys.executable, requirements)


def readme_block(first_line: str) -> str:
    """The fenced block of the README section (any language) that starts with `first_line`."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", readme_section(), flags=re.DOTALL | re.MULTILINE)
    matching = [block for block in blocks if block.startswith(first_line)]
    assert len(matching) == 1, f"the README section has no block starting {first_line!r}"
    return matching[0]


def test_the_readme_states_the_real_number_of_tables_and_indexes(baked_project, migrate_venv, tmp_path):
    """The count the tables' recipe gives is the count of gatekeeper_control.metadata (the files copied as
    the flat layout has them, so nothing of the app is imported)."""
    copy_baked_files(baked_project, tmp_path, (*ENGINE_FILES, *DASHBOARD_FILES))
    script = (
        "from gatekeeper_control import metadata as m; "
        "print(len(m.tables), sum(len(t.indexes) for t in m.tables.values()))"
    )
    env = venv_env(migrate_venv)
    tables, indexes = run(["python", "-c", script], cwd=tmp_path, env=env).stdout.split()
    assert f"**{tables} tables**" in readme_section() and f"**{indexes} indexes**" in readme_section()


def test_copied_folder_works_with_flask_migrate_and_tests_that_use_create_all(
    baked_project, migrate_venv, tmp_path
):
    """Copy the two files and the folder into an app on Flask-SQLAlchemy and Flask-Migrate, add the README's
    wiring (with its Flask-SQLAlchemy user_lookup), edit Flask-Migrate's generated env.py as the README
    says: `flask db migrate` writes one revision with every gatekeeper table and `flask db upgrade` applies it
    on a fresh database; the app's own tests, on db.create_all() plus the README's one line, pass."""
    files = (*ENGINE_FILES, *DASHBOARD_FILES)
    tests = MIGRATE_APP_TESTS.format(tables=readme_block(TEST_TABLES_RECIPE).strip())
    make_shop(tmp_path, baked_project, files, MIGRATE_APP, wiring_code(WITH_FLASK_SQLALCHEMY), tests)
    (tmp_path / "shop" / "models.py").write_text(MIGRATE_APP_MODELS, encoding="utf-8")
    env = {**venv_env(migrate_venv), "SHOP_DB": str(tmp_path / "shop.db"), "FLASK_APP": "shop"}
    flask = [migrate_venv / "bin" / "python", "-m", "flask"]
    run([*flask, "db", "init"], cwd=tmp_path, env=env)
    env_py = tmp_path / "migrations" / "env.py"
    generated = env_py.read_text(encoding="utf-8")
    recipe = readme_block(ENV_PY_RECIPE).replace("myapp", "shop")
    function = re.search(r"\ndef get_metadata\(\):\n(?:    .*\n)+", generated)
    assert function, "Flask-Migrate's env.py has no get_metadata() to replace"
    env_py.write_text(generated.replace(function.group(0), "\n" + recipe), encoding="utf-8")
    run([*flask, "db", "migrate", "-m", "users and gatekeeper tables"], cwd=tmp_path, env=env)
    (revision,) = (tmp_path / "migrations" / "versions").glob("*.py")
    created = set(
        re.findall(r"op\.create_table\(\s*['\"](gatekeeper_\w+)", revision.read_text(encoding="utf-8"))
    )
    assert len(created) == int(re.search(r"\*\*(\d+) tables\*\*", readme_section()).group(1))
    run([*flask, "db", "upgrade"], cwd=tmp_path, env=env)
    count = "SELECT count(*) FROM sqlite_master WHERE type='table' AND name LIKE 'gatekeeper_%'"
    with sqlite3.connect(env["SHOP_DB"]) as connection:
        tables = connection.execute(count).fetchone()[0]
    assert int(tables) == len(created)
    assert "4 passed" in shop_tests(tmp_path, migrate_venv, SHOP_DB=env["SHOP_DB"])
