"""Logging in and out through the real forms, and the `next` redirect that must never leave the site."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.auth import lookup_user
from {{ cookiecutter.package_name }}.gatekeeper_control.snapshot import UserRef


def logged_in_as(client):
    """The email the header shows, or None when nobody is logged in."""
    page = client.get("/").text
    if 'id="whoami"' not in page:
        return None
    return page.split('id="whoami">', 1)[1].split("<", 1)[0]


def test_login_page_shows_the_form(client):
    """GET /auth/login answers a form asking for email and password."""
    page = client.get("/auth/login").text
    assert 'name="email"' in page
    assert 'name="password"' in page
    assert 'name="remember"' in page


def test_right_password_logs_in_and_goes_home(client, user, password):
    """Email and password of a user log them in and redirect to the home page."""
    response = client.post("/auth/login", data={"email": user.email, "password": password})
    assert response.status_code == 302
    assert response.location == "/"
    assert logged_in_as(client) == user.email


def test_email_is_not_case_sensitive(client, user, password):
    """Typing the email in capitals still finds the account."""
    response = client.post("/auth/login", data={"email": user.email.upper(), "password": password})
    assert response.status_code == 302
    assert logged_in_as(client) == user.email


def test_wrong_password_is_refused_with_a_generic_message(client, user):
    """A wrong password keeps the visitor logged out and says only that email or password is wrong."""
    response = client.post("/auth/login", data={"email": user.email, "password": "wrong"})
    assert response.status_code == 200
    assert "Wrong email or password." in response.text
    assert logged_in_as(client) is None


def test_unknown_email_gets_the_same_message_as_a_wrong_password(client, user):
    """The form does not reveal which emails have accounts."""
    response = client.post("/auth/login", data={"email": "nobody@example.com", "password": "wrong"})
    assert "Wrong email or password." in response.text
    assert logged_in_as(client) is None


def test_empty_form_asks_for_the_fields(client):
    """Posting nothing re-shows the form with what is missing, not an error page."""
    response = client.post("/auth/login", data={})
    assert response.status_code == 200
    assert "This field is required." in response.text


def test_login_follows_a_next_path_on_this_site(client, user, password):
    """After logging in the visitor lands where they were headed."""
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": password, "next": "/some/page?x=1"},
    )
    assert response.location == "/some/page?x=1"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "///evil.com",
        "https://evil.com",
        "http:evil.com",
        "https:/evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        " //evil.com",
        "javascript:alert(1)",
        "evil.com",
    ],
)
def test_login_refuses_a_next_that_leaves_the_site(client, user, target, password):
    """A `next` pointing anywhere but a path on this site sends the visitor home instead."""
    response = client.post("/auth/login", data={"email": user.email, "password": password, "next": target})
    assert response.status_code == 302
    assert response.location == "/"


# Prefixes that open-redirect attacks start with, followed by anything.
NEXT_VALUES = st.text(max_size=40) | st.builds(
    str.__add__,
    st.sampled_from(["/", "//", "/\\", "\\", "/\t/", " /", "http:", "https://", "javascript:", "/%2F"]),
    st.text(max_size=30),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(target=NEXT_VALUES)
def test_no_next_value_can_redirect_off_the_site(client, user, password, target):
    """Whatever `next` holds, the redirect after login stays on this site, as a browser would read it."""
    response = client.post("/auth/login", data={"email": user.email, "password": password, "next": target})
    assert response.status_code == 302
    # Browsers drop tabs and newlines and read backslashes as slashes: check what they would follow.
    as_read = re.sub(r"[\t\n\r]", "", response.location).replace("\\", "/")
    parts = urlsplit(as_read)
    assert as_read.startswith("/")
    assert not as_read.startswith("//")
    assert not parts.scheme
    assert not parts.netloc


# Fewer examples: each unknown email costs a real password-hash check (see auth.authenticate).
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(email=st.text(max_size=300), password=st.text(max_size=300), remember=st.text(max_size=5))
def test_any_login_form_input_gives_an_answer_not_an_error(client, user, email, password, remember):
    """Random form input is refused or accepted, never a server error."""
    data = {"email": email, "password": password, "remember": remember}
    assert client.post("/auth/login", data=data).status_code in {200, 302}


def test_login_form_carries_next_from_the_query_string(client):
    """The `next` in the login URL is kept in the form, so a POST still knows where to go."""
    page = client.get("/auth/login?next=/gatekeeper/").text
    assert 'name="next" type="hidden" value="/gatekeeper/"' in page


def test_anonymous_visitor_is_sent_to_login_and_back(client, admin, password):
    """A page that needs a login redirects to the login form, which returns there afterwards."""
    response = client.get("/gatekeeper/")
    assert response.status_code == 302
    login_url = urlsplit(response.location)
    assert login_url.path == "/auth/login"
    [target] = parse_qs(login_url.query)["next"]
    response = client.post("/auth/login", data={"email": admin.email, "password": password, "next": target})
    assert response.location == "/gatekeeper/"


def test_logged_in_visitor_skips_the_login_form(client, user, login):
    """Opening the login page while logged in goes straight to the home page."""
    login(client, user)
    response = client.get("/auth/login")
    assert response.status_code == 302
    assert response.location == "/"


def test_remember_me_sets_a_lasting_cookie(client, user, password):
    """Ticking "keep me logged in" sets Flask-Login's remember cookie."""
    client.post("/auth/login", data={"email": user.email, "password": password, "remember": "y"})
    assert client.get_cookie("remember_token") is not None


def test_without_remember_me_no_lasting_cookie(client, user, login):
    """By default the login lasts for the browser session only."""
    login(client, user)
    assert client.get_cookie("remember_token") is None


def test_logout_logs_out(client, user, login):
    """POST /auth/logout ends the session and goes home."""
    login(client, user)
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert logged_in_as(client) is None


def test_logout_by_get_is_not_allowed(client, user, login):
    """A GET (a link, an image on another site) cannot log anyone out."""
    login(client, user)
    assert client.get("/auth/logout").status_code == 405
    assert logged_in_as(client) == user.email


def test_header_offers_login_to_visitors_and_logout_to_users(client, user, login):
    """The header links to the login page for visitors and has a logout button for users."""
    assert 'href="/auth/login"' in client.get("/").text
    login(client, user)
    page = client.get("/").text
    assert 'action="/auth/logout"' in page
    assert 'href="/auth/login"' not in page


def test_lookup_user_finds_by_email_or_id(app, user):
    """The flag store resolves an email or an id to the user's id and email."""
    with app.app_context():
        assert lookup_user(user.email) == UserRef(id="42", label=user.email)
        assert lookup_user("42") == UserRef(id="42", label=user.email)


@pytest.mark.parametrize("text", ["nobody@example.com", "7", "99999999999999999999999", "²", "", "   ", "%"])
def test_lookup_user_answers_nobody_for_no_such_user(app, user, text):
    """Unknown emails, unknown or absurd ids, blank text and a LIKE wildcard are simply not users."""
    with app.app_context():
        assert lookup_user(text) == []


def test_lookup_user_answers_every_user_a_part_of_an_email_matches(app, user, make_user):
    """A text that is only part of emails ("EXAMPLE.com", any case) gives those users, by email; a `_` is a
    character, not a wildcard."""
    make_user("bob@example.com")
    make_user("carol@other.org")
    with app.app_context():
        assert [ref.label for ref in lookup_user("EXAMPLE.com")] == ["bob@example.com", user.email]
        assert lookup_user("b_b") == []
