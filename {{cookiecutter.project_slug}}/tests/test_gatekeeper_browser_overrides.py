"""Browser overrides: a signed cookie, honoured only for users allowed to override, ignored when bad."""

import secrets

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import OVERRIDE_COOKIE
from tests.bare_app import ADMIN, MEMBER, cookies_set, log_in, make_app, override_cookie


@pytest.fixture
def app():
    return make_app()


def seen_by(client, flag="ON_OFF"):
    return client.get(f"/explain/{flag}").text


def test_an_admin_sees_their_signed_override(app):
    """An admin's signed cookie changes what that admin sees, with the reason."""
    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert seen_by(client) == "ON browser_override"


def test_a_non_admin_cannot_use_an_override_cookie(app):
    """A valid cookie copied to a user who may not override changes nothing."""
    client = app.test_client()
    log_in(client, MEMBER)
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert seen_by(client) == "OFF rule"


def test_anonymous_visitors_cannot_use_an_override_cookie(app):
    """Logged-out visitors are not allowed to override."""
    client = app.test_client()
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert seen_by(client) == "OFF rule"


def test_everyone_may_override_while_the_app_is_in_debug_mode():
    """In debug mode (local development) overrides work for anyone."""
    app = make_app(debug=True)
    client = app.test_client()
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert seen_by(client) == "ON browser_override"


def test_who_may_override_is_configurable():
    """`can_override(user)` replaces the admins-only policy."""
    app = make_app(can_override=lambda user: user is not None and user.id == MEMBER.id)
    client = app.test_client()
    log_in(client, MEMBER)
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert seen_by(client) == "ON browser_override"
    log_in(client, ADMIN)
    assert seen_by(client) == "OFF rule"


def test_a_cookie_signed_with_another_secret_is_ignored(app):
    """A cookie forged with a different key never changes a variant, even for an admin."""
    other = make_app()
    other.config["SECRET_KEY"] = "someone-else"
    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(other, {"ON_OFF": "ON"}))
    assert seen_by(client) == "OFF rule"


@pytest.mark.parametrize(
    "value",
    [
        '{"ON_OFF": "ON"}',
        "not-even-json",
        "eyJPTl9PRkYiOiJPTiJ9.forged-signature",
        "",
        "." * 5000,
        "%FF%FE",
    ],
)
def test_malformed_or_forged_cookies_are_ignored(app, value):
    """Plain JSON (the seed's format), garbage, bad signatures and oversized cookies are ignored."""
    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(OVERRIDE_COOKIE, value)
    response = client.get("/explain/ON_OFF")
    assert (response.status_code, response.text) == (200, "OFF rule")


def test_oversized_but_signed_cookie_is_ignored(app):
    """A signed cookie longer than the limit is not even parsed."""
    client = app.test_client()
    log_in(client, ADMIN)
    huge = {secrets.token_hex(16): secrets.token_hex(16) for _ in range(100)} | {"ON_OFF": "ON"}
    value = override_cookie(app, huge)
    assert len(value) > gatekeeper.OVERRIDE_COOKIE_MAX_LENGTH
    client.set_cookie(OVERRIDE_COOKIE, value)
    assert seen_by(client) == "OFF rule"


def test_unknown_flags_and_variants_in_a_signed_cookie_are_dropped(app):
    """Entries for flags or variants that no longer exist are skipped; valid ones still apply."""
    client = app.test_client()
    log_in(client, ADMIN)
    value = override_cookie(app, {"GONE": "ON", "ON_OFF": "ON", "HALF": "MAYBE"})
    client.set_cookie(OVERRIDE_COOKIE, value)
    assert seen_by(client) == "ON browser_override"
    assert seen_by(client, "HALF").endswith("rule")


def test_a_signed_cookie_that_is_not_a_mapping_is_ignored(app):
    """A correctly signed list or string is still not an override."""
    with app.test_request_context():
        value = gatekeeper._signer(app).dumps(["ON_OFF", "ON"])
    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(OVERRIDE_COOKIE, value)
    assert seen_by(client) == "OFF rule"


def test_override_cookie_is_httponly_and_samesite_lax(app):
    """The cookie cannot be read by scripts and is not sent on cross-site POSTs."""
    with app.test_request_context():
        response = gatekeeper.write_browser_overrides(app.response_class(), {"ON_OFF": "ON"})
    cookie = cookies_set(response)[OVERRIDE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["secure"]


def test_override_cookie_is_secure_over_https(app):
    """Served over https, the cookie is marked Secure."""
    with app.test_request_context(base_url="https://example.com"):
        response = gatekeeper.write_browser_overrides(app.response_class(), {"ON_OFF": "ON"})
    assert cookies_set(response)[OVERRIDE_COOKIE]["secure"]


def test_clearing_every_override_deletes_the_cookie(app):
    """Writing no overrides removes the cookie rather than storing an empty one."""
    with app.test_request_context():
        response = gatekeeper.write_browser_overrides(app.response_class(), {})
    assert cookies_set(response)[OVERRIDE_COOKIE]["expires"]


def test_get_browser_override_variants_lists_what_applies(app):
    """The request's Gatekeeper reports the valid, allowed overrides in force."""

    @app.get("/mine")
    def mine():
        from flask import request

        return request.gk.get_browser_override_variants()

    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON", "GONE": "X"}))
    assert client.get("/mine").json == {"ON_OFF": "ON"}
