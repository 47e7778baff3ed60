"""Every cookie's Secure flag is decided one way: the request came over https, or SECURE_COOKIES is on."""

import pytest

from tests.bare_app import cookies_set
from tests.conftest import PASSWORD, add_user

HTTPS = "https://localhost"
ALL_COOKIES = {"session", "remember_token", "gk_anon", "gatekeeper"}


def every_cookie(app, **request):
    """{name: morsel} of every cookie the app sets: a visitor's anonymous id, then an admin's login with
    remember-me and a browser override."""
    admin = add_user(app, "boss@example.com", user_id=1, is_admin=True)
    responses = [app.test_client().get("/", **request)]
    client = app.test_client()
    login = {"email": admin.email, "password": PASSWORD, "remember": "y"}
    responses.append(client.post("/auth/login", data=login, **request))
    override = {"variant": "VARIANT_A"}
    responses.append(
        client.post("/gatekeeper/flags/HOMEPAGE_EXPERIMENT/browser-override", data=override, **request)
    )
    cookies = {}
    for response in responses:
        cookies.update(cookies_set(response))
    assert set(cookies) >= ALL_COOKIES, f"missing: {ALL_COOKIES - set(cookies)}"
    return cookies


def secure_ones(cookies):
    return {name for name in ALL_COOKIES if cookies[name]["secure"]}


def test_over_https_every_cookie_is_secure(make_app):
    """Served over https, the session, remember-me, anonymous-id and override cookies are all Secure."""
    assert secure_ones(every_cookie(make_app(), base_url=HTTPS)) == ALL_COOKIES


def test_with_secure_cookies_on_every_cookie_is_secure_even_over_http(make_app):
    """SECURE_COOKIES=1 (SESSION_COOKIE_SECURE) makes the gatekeeper's cookies Secure, not only Flask's."""
    app = make_app(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    assert secure_ones(every_cookie(app)) == ALL_COOKIES


def test_over_plain_http_without_the_setting_no_cookie_is_secure(make_app):
    """In development (http, SECURE_COOKIES off) cookies must work over http, so none is Secure."""
    assert secure_ones(every_cookie(make_app())) == set()


@pytest.mark.parametrize(("proxies", "secure"), [(0, False), (1, True)])
def test_x_forwarded_proto_counts_only_with_a_trusted_proxy(make_app, proxies, secure):
    """`X-Forwarded-Proto: https` makes cookies Secure only when PROXY_COUNT says a proxy sets it."""
    app = make_app(PROXY_COUNT=proxies)
    response = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert bool(cookies_set(response)["gk_anon"]["secure"]) is secure
