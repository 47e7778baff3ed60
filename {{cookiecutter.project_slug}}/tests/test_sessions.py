"""Revocable sessions: logout, a password change and `flask users revoke` end every copy of the cookies."""

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.models import User


def logged_in_as(client):
    """The email the header shows, or None when nobody is logged in."""
    page = client.get("/").text
    if 'id="whoami"' not in page:
        return None
    return page.split('id="whoami">', 1)[1].split("<", 1)[0]


def log_in_remembered(client, user, password):
    response = client.post("/auth/login", data={"email": user.email, "password": password, "remember": "y"})
    assert response.status_code == 302
    return {name: client.get_cookie(name).value for name in ("session", "remember_token")}


def replay(app, cookies):
    """A new browser that holds copies of these cookies."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def test_after_logout_a_copy_of_the_session_cookie_does_not_log_in(app, client, user, password):
    """Someone who copied the session cookie before the user logged out cannot use it afterwards."""
    cookies = log_in_remembered(client, user, password)
    client.post("/auth/logout")
    assert logged_in_as(replay(app, {"session": cookies["session"]})) is None


def test_after_logout_a_copy_of_the_remember_cookie_does_not_log_in(app, client, user, password):
    """The year-long remember-me cookie stops working at logout too."""
    cookies = log_in_remembered(client, user, password)
    assert logged_in_as(replay(app, {"remember_token": cookies["remember_token"]})) == user.email
    client.post("/auth/logout")
    assert logged_in_as(replay(app, {"remember_token": cookies["remember_token"]})) is None
    assert logged_in_as(replay(app, cookies)) is None


def test_each_login_after_a_logout_gets_a_new_remember_cookie(app, client, user, password):
    """The remember cookie is not derived from the user id alone: after a logout it is a new value."""
    first = log_in_remembered(client, user, password)["remember_token"]
    client.post("/auth/logout")
    second = log_in_remembered(client, user, password)["remember_token"]
    assert first != second
    assert str(user.id) not in second.split("|")[0]


def test_logout_ends_the_users_sessions_on_other_devices(app, user, login):
    """Logging out on one device logs the user out everywhere (the session token changed)."""
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user)
    login(phone, user)
    laptop.post("/auth/logout")
    assert logged_in_as(phone) is None


def test_flask_users_revoke_ends_every_session_of_that_user(app, runner, user, make_user, login):
    """`flask users revoke EMAIL` logs that user out everywhere, and nobody else."""
    other = make_user("other@example.com")
    victim, bystander = app.test_client(), app.test_client()
    login(victim, user)
    login(bystander, other)
    result = runner.invoke(args=["users", "revoke", user.email.upper()])
    assert result.exit_code == 0, result.output
    assert f"Ended every session of {user.email}" in result.output
    assert logged_in_as(victim) is None
    assert logged_in_as(bystander) == other.email


def test_flask_users_revoke_names_an_unknown_email(runner, user):
    """Revoking an email nobody has is an error that says so."""
    result = runner.invoke(args=["users", "revoke", "nobody@example.com"])
    assert result.exit_code == 1
    assert "no user has the email nobody@example.com" in result.output


def test_a_password_change_ends_the_old_sessions(app, client, user, login):
    """A new password (set through the model, as a password-change page would) ends the old sessions."""
    login(client, user)
    with app.app_context():
        stored = db.session.get(User, user.id)
        stored.set_password("a brand new password")
        db.session.commit()
    assert logged_in_as(client) is None


def test_demo_admin_reset_ends_the_old_demo_admins_sessions(app, runner, client, login, admin):
    """`flask users demo-admin` sets a new password, so whoever had the old one is logged out."""
    login(client, admin)
    assert runner.invoke(args=["users", "demo-admin"]).exit_code == 0
    assert logged_in_as(client) is None
