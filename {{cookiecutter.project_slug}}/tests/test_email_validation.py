"""Emails are checked as emails (email-validator), in `flask users create` and on the login form."""

import pytest

from {{ cookiecutter.package_name }}.models import User

NOT_EMAILS = [
    "<svg/onload=alert(1)>@x.io",
    "ann@",
    "@example.com",
    "ann@example",
    "ann@@example.com",
    "ann smith@example.com",
    "ann@exa mple.com",
    '"ann"<ann@example.com>',
    "ann@example.com\x00",
    "ann@" + "a" * 250 + ".com",
]


@pytest.mark.parametrize("email", NOT_EMAILS)
def test_create_refuses_text_that_is_not_an_email(app, runner, email):
    """Markup, missing parts, spaces, display names, NUL and over-long domains are refused, saying so."""
    result = runner.invoke(args=["users", "create", email, "--password", "s3cret-pass"])
    assert result.exit_code == 2
    assert "is not an email address" in result.output
    with app.app_context():
        assert User.find(email.strip()) is None


@pytest.mark.parametrize("email", ["ann@example.com", "Ann.Smith+flags@Sub.Example.ORG", "zoë@exämple.com"])
def test_create_accepts_real_addresses_and_stores_them_lower_case(app, runner, email):
    """Ordinary and international addresses are accepted and stored lower-case."""
    result = runner.invoke(args=["users", "create", email, "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert User.find(email).email == User.find(email).email.lower()


@pytest.mark.parametrize("email", NOT_EMAILS[:3])
def test_login_form_refuses_text_that_is_not_an_email(client, user, email, password):
    """The login form says the email is not valid, before any account lookup."""
    response = client.post("/auth/login", data={"email": email, "password": password})
    assert response.status_code == 200
    assert "Invalid email address." in response.text
    assert "<svg" not in response.text
