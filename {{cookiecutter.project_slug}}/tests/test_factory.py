"""The application factory and database set-up."""

from sqlalchemy import inspect

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.models import User


def test_test_config_overrides_the_environment(tmp_path):
    """Whatever `create_app` is given wins over settings read from the environment."""
    url = f"sqlite:///{tmp_path / 'given.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "APP_NAME": "Given"})
    assert app.testing
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    assert app.config["APP_NAME"] == "Given"


def test_without_test_config_the_app_is_not_in_testing_mode():
    """The factory alone builds the production app: no testing mode."""
    assert not create_app().testing


def test_factory_registers_the_pages_login_and_dashboard(app):
    """Home page, login and the flag dashboard are all part of the app."""
    assert {"views", "auth", "gatekeeper"} <= set(app.blueprints)


def test_init_db_command_creates_the_app_and_flag_store_tables(tmp_path):
    """`flask init-db` on an empty database creates the users table and the gatekeeper store's tables."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'new.db'}"})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Database ready" in result.output
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
    assert {"users", "gatekeeper_forced_variants", "gatekeeper_audit_log"} <= tables


def test_init_db_again_keeps_existing_data(app, runner, admin):
    """Running `flask init-db` on a database in use drops nothing."""
    assert runner.invoke(args=["init-db"]).exit_code == 0
    with app.app_context():
        assert User.find(admin.email) is not None
