"""Settings come from environment variables, with safe defaults and clear errors for bad values."""

import logging
{%- if cookiecutter.database == "sqlite" %}
from pathlib import Path
{%- endif %}

import pytest

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import ConfigError, Settings


def settings(**environ):
    return Settings.from_env("/srv/instance", environ)


def test_database_url_sets_the_database():
    """DATABASE_URL is the database the app uses."""
    url = settings(DATABASE_URL="postgresql+psycopg://app@db.internal/app").SQLALCHEMY_DATABASE_URI
    assert url == "postgresql+psycopg://app@db.internal/app"

{%- if cookiecutter.database == "postgresql" %}


def test_database_defaults_to_the_local_postgresql_server():
    """Without DATABASE_URL the app uses the database named like the project on the local server's socket."""
    database = settings().SQLALCHEMY_DATABASE_URI
    assert database == "postgresql+psycopg:///{{ cookiecutter.project_slug }}"
{%- else %}


def test_database_defaults_to_sqlite_in_the_instance_folder():
    """Without DATABASE_URL the app keeps a SQLite file in its instance folder."""
    database = settings().SQLALCHEMY_DATABASE_URI
    assert database == "sqlite:///" + str(Path("/srv/instance") / "app.db")
{%- endif %}


def test_store_push_is_on_by_default_and_can_be_turned_off():
    """GATEKEEPER_STORE_PUSH defaults to listening; 0 turns it off; the listener URL defaults to empty."""
    assert settings().GATEKEEPER_STORE_PUSH is True
    assert settings(GATEKEEPER_STORE_PUSH="0").GATEKEEPER_STORE_PUSH is False
    assert settings().GATEKEEPER_STORE_LISTEN_URL == ""


def test_change_feed_is_automatic_unless_set():
    """GATEKEEPER_CHANGE_FEED is empty (automatic) by default; none and a Redis URL are taken as given."""
    assert settings().GATEKEEPER_CHANGE_FEED == ""
    assert settings(GATEKEEPER_CHANGE_FEED=" None ").GATEKEEPER_CHANGE_FEED == "none"
    for url in ("redis://:secret@cache.internal:6380/2", "rediss://cache.internal"):
        chosen = settings(GATEKEEPER_CHANGE_FEED=url)
        assert url == chosen.GATEKEEPER_CHANGE_FEED


def test_change_feed_postgresql_is_taken_with_a_postgresql_database():
    """GATEKEEPER_CHANGE_FEED=postgresql forces LISTEN/NOTIFY, which needs PostgreSQL under it."""
    chosen = settings(DATABASE_URL="postgresql+psycopg://app@db/app", GATEKEEPER_CHANGE_FEED="postgresql")
    assert chosen.GATEKEEPER_CHANGE_FEED == "postgresql"
    with pytest.raises(ConfigError, match=r"=postgresql needs a PostgreSQL DATABASE_URL"):
        settings(DATABASE_URL="sqlite:///app.db", GATEKEEPER_CHANGE_FEED="postgresql")


@pytest.mark.parametrize(
    "value", ["redis", "redis://", "redis://cache:port/0", "amqp://broker", "listen", "http://cache:6379"]
)
def test_a_change_feed_that_is_none_of_those_is_refused_with_what_to_type(value):
    """Anything else stops start-up with the values that work, a Redis URL among them."""
    with pytest.raises(ConfigError, match=r"GATEKEEPER_CHANGE_FEED=.* is not a change feed.*redis://127"):
        settings(GATEKEEPER_CHANGE_FEED=value)


def test_secret_key_comes_from_the_environment():
    """SECRET_KEY is used as given."""
    assert settings(SECRET_KEY="from-env").SECRET_KEY == "from-env"


def test_missing_secret_key_gets_a_random_one_and_a_warning(caplog):
    """Without SECRET_KEY each process gets its own random key, and the log says why sessions will reset."""
    with caplog.at_level(logging.WARNING):
        first, second = settings().SECRET_KEY, settings().SECRET_KEY
    assert len(first) == 64
    assert first != second
    assert "SECRET_KEY is not set" in caplog.text


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_bad_store_ttl_is_a_clear_error(value):
    """A GATEKEEPER_STORE_TTL that is not a number of seconds stops start-up with what to set instead."""
    with pytest.raises(ConfigError, match=r"GATEKEEPER_STORE_TTL=.* is not a number of seconds.*=5"):
        settings(GATEKEEPER_STORE_TTL=value)


def test_store_ttl_reads_seconds():
    """GATEKEEPER_STORE_TTL accepts fractions of a second, and defaults to 5."""
    assert settings(GATEKEEPER_STORE_TTL="0.5").GATEKEEPER_STORE_TTL == 0.5
    assert settings().GATEKEEPER_STORE_TTL == 5.0


def test_dashboard_prefix_defaults_to_gatekeeper_without_a_trailing_slash():
    """The dashboard lives at /gatekeeper unless GATEKEEPER_URL_PREFIX says otherwise."""
    assert settings().GATEKEEPER_URL_PREFIX == "/gatekeeper"
    assert settings(GATEKEEPER_URL_PREFIX="/admin/flags/").GATEKEEPER_URL_PREFIX == "/admin/flags"


@pytest.mark.parametrize("value", ["flags", "/", "https://example.com/flags"])
def test_dashboard_prefix_must_be_a_path_below_the_root(value):
    """A GATEKEEPER_URL_PREFIX without a leading slash, or the site root itself, is refused."""
    with pytest.raises(ConfigError, match="GATEKEEPER_URL_PREFIX"):
        settings(GATEKEEPER_URL_PREFIX=value)


def test_secure_cookies_turns_on_both_secure_cookie_settings():
    """SECURE_COOKIES=1 makes the session and remember-me cookies HTTPS-only; they are not by default."""
    assert settings(SECURE_COOKIES="1").SESSION_COOKIE_SECURE is True
    assert settings(SECURE_COOKIES="1").REMEMBER_COOKIE_SECURE is True
    assert settings().SESSION_COOKIE_SECURE is False


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False), ("no", False)])
def test_is_dev_reads_common_spellings(value, expected):
    """IS_DEV understands 1/0, true/false, yes/no."""
    assert settings(IS_DEV=value).IS_DEV is expected


def test_app_name_defaults_to_the_project_name():
    """APP_NAME overrides the project's name, which is the default."""
    assert settings().APP_NAME == {{ cookiecutter.project_name|py_string }}
    assert settings(APP_NAME="Shop").APP_NAME == "Shop"


def test_create_app_reads_the_process_environment(monkeypatch, tmp_path):
    """The app factory takes its settings from the real environment variables."""
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "env-secret")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    assert app.config["SECRET_KEY"] == "env-secret"


def test_create_app_refuses_a_bad_store_ttl(monkeypatch):
    """A bad value in the environment stops the app at start-up, naming the variable."""
    monkeypatch.setenv("GATEKEEPER_STORE_TTL", "five")
    with pytest.raises(ConfigError, match="GATEKEEPER_STORE_TTL"):
        create_app()
