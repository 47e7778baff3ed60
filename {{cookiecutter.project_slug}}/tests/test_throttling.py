"""Login throttling (Flask-Limiter): failed attempts per account and per client address, answered with 429
before any password is hashed; the right password works again once the window has passed."""

import time

import pytest

from {{ cookiecutter.package_name }} import auth
from {{ cookiecutter.package_name }}.config import ConfigError, Settings
from tests.conftest import PASSWORD, add_user

# Seconds. The counting tests' window is long enough that every attempt lands in it however slowly a busy
# machine hashes the wrong passwords; only the test that waits for the window to pass uses a short one.
WINDOW = 60
SHORT_WINDOW = 2


def make_throttled_app(make_app, window):
    app = make_app(
        RATELIMIT_ENABLED=True,
        LOGIN_LIMIT_PER_ACCOUNT=f"3 per {window} seconds",
        LOGIN_LIMIT_PER_ADDRESS=f"6 per {window} seconds",
    )
    add_user(app, "ann@example.com")
    add_user(app, "bob@example.com")
    return app


@pytest.fixture
def throttled_app(make_app):
    return make_throttled_app(make_app, WINDOW)


def attempt(client, email="ann@example.com", password="wrong password", address="192.0.2.1"):
    return client.post(
        "/auth/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_after_three_wrong_passwords_the_account_is_throttled(throttled_app):
    """Three failures for one account, then 429, even with the right password, and from another address."""
    client = throttled_app.test_client()
    assert [attempt(client).status_code for _ in range(3)] == [200, 200, 200]
    assert attempt(client).status_code == 429
    assert attempt(client, password=PASSWORD, address="198.51.100.7").status_code == 429


def test_the_429_page_says_how_long_to_wait_in_the_apps_layout(throttled_app):
    """The refusal is a page of the app (its header, a message) with a Retry-After header in seconds."""
    client = throttled_app.test_client()
    for _ in range(3):
        attempt(client)
    response = attempt(client)
    assert response.status_code == 429
    assert "Too many login attempts" in response.text
    assert 'class="site-header"' in response.text
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


def test_one_address_is_throttled_across_accounts(throttled_app):
    """Spraying many accounts from one address hits the per-address limit (6), whatever the emails."""
    client = throttled_app.test_client()
    codes = [attempt(client, email=f"user{n}@example.com").status_code for n in range(8)]
    assert codes == [200] * 6 + [429] * 2


def test_other_accounts_and_addresses_are_not_affected(throttled_app):
    """While ann's account is throttled, bob logs in from elsewhere as usual."""
    client = throttled_app.test_client()
    for _ in range(4):
        attempt(client)
    response = attempt(
        throttled_app.test_client(), email="bob@example.com", password=PASSWORD, address="203.0.113.9"
    )
    assert response.status_code == 302


def test_successful_logins_are_not_counted(throttled_app):
    """Logging in with the right password, again and again, never throttles the user."""
    codes = [attempt(throttled_app.test_client(), password=PASSWORD).status_code for _ in range(10)]
    assert codes == [302] * 10


def test_throttled_attempts_never_reach_password_hashing(throttled_app, monkeypatch):
    """Once throttled, an attempt is refused before `authenticate` runs: no hash is computed."""
    client = throttled_app.test_client()
    for _ in range(3):
        attempt(client)
    checks = []
    monkeypatch.setattr(auth, "authenticate", lambda *args: checks.append(args))
    assert [attempt(client).status_code for _ in range(20)] == [429] * 20
    assert checks == []


def test_the_right_password_works_once_the_window_has_passed(make_app):
    """After the attacker's window the real user logs in with the right password."""
    client = make_throttled_app(make_app, SHORT_WINDOW).test_client()
    for _ in range(4):
        attempt(client)
    assert attempt(client, password=PASSWORD).status_code == 429
    time.sleep(SHORT_WINDOW + 0.2)
    assert attempt(client, password=PASSWORD).status_code == 302


def test_the_login_page_itself_is_never_throttled(throttled_app):
    """GET /auth/login (the form) is not counted: only attempts are."""
    client = throttled_app.test_client()
    for _ in range(4):
        attempt(client)
    assert client.get("/auth/login", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200


def test_limits_and_storage_come_from_the_environment():
    """LOGIN_LIMIT_PER_ACCOUNT / _PER_ADDRESS and RATELIMIT_STORAGE_URI are read from the environment."""
    settings = Settings.from_env(
        "/srv/instance",
        {
            "LOGIN_LIMIT_PER_ACCOUNT": "10 per hour",
            "LOGIN_LIMIT_PER_ADDRESS": "100/day",
            "RATELIMIT_STORAGE_URI": "redis://localhost:6379",
        },
    )
    assert settings.LOGIN_LIMIT_PER_ACCOUNT == "10 per hour"
    assert settings.LOGIN_LIMIT_PER_ADDRESS == "100/day"
    assert settings.RATELIMIT_STORAGE_URI == "redis://localhost:6379"
    assert Settings.from_env("/srv/instance", {}).RATELIMIT_STORAGE_URI == "memory://"


@pytest.mark.parametrize("value", ["often", "5 per fortnight", "-3 per minute"])
def test_a_bad_limit_is_a_clear_error(value):
    """A limit that is not Flask-Limiter's notation stops the app, naming the variable and an example."""
    with pytest.raises(ConfigError, match=r"LOGIN_LIMIT_PER_ACCOUNT=.*e\.g\."):
        Settings.from_env("/srv/instance", {"LOGIN_LIMIT_PER_ACCOUNT": value})
