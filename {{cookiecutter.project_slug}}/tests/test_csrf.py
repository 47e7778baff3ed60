"""With CSRF protection on (as in production), a POST without the form's token changes nothing."""

import re

import pytest


def csrf_token(client, path="/auth/login"):
    """The CSRF token the page at `path` put in its form."""
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text).group(1)


def is_logged_in(client):
    return 'id="whoami"' in client.get("/").text


@pytest.fixture
def logged_in_client(csrf_client, csrf_user, password):
    token = csrf_token(csrf_client)
    response = csrf_client.post(
        "/auth/login", data={"email": csrf_user.email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302
    return csrf_client


def test_login_without_token_is_rejected(csrf_client, csrf_user, password):
    """A login POST without a CSRF token answers 400 and logs nobody in."""
    response = csrf_client.post("/auth/login", data={"email": csrf_user.email, "password": password})
    assert response.status_code == 400
    assert not is_logged_in(csrf_client)


def test_login_with_a_forged_token_is_rejected(csrf_client, csrf_user, password):
    """A token the app did not sign is as good as none."""
    data = {"email": csrf_user.email, "password": password, "csrf_token": "forged"}
    assert csrf_client.post("/auth/login", data=data).status_code == 400


def test_login_with_the_forms_token_works(logged_in_client):
    """The token the login form carries is accepted."""
    assert is_logged_in(logged_in_client)


def test_logout_without_token_is_rejected(logged_in_client):
    """A logout POST without a token (e.g. from another site) answers 400 and the user stays logged in."""
    assert logged_in_client.post("/auth/logout").status_code == 400
    assert is_logged_in(logged_in_client)


def test_logout_with_the_headers_token_works(logged_in_client):
    """The logout button in the header carries a token that logs out."""
    token = csrf_token(logged_in_client, "/")
    response = logged_in_client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert not is_logged_in(logged_in_client)


def test_rejected_form_gets_a_page_that_says_what_to_do(csrf_client):
    """The 400 page explains that nothing changed and how to retry."""
    response = csrf_client.post("/auth/logout")
    assert "nothing was changed" in response.text
    assert "reload the page" in response.text
