"""`flask users create` and `flask users demo-admin`: accounts from a terminal."""

import re

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.models import User


def create(runner, *args, **kwargs):
    """Run `flask users create ARGS`."""
    return runner.invoke(args=["users", "create", *args], **kwargs)


def find(app, email):
    with app.app_context():
        return User.find(email)


def test_create_makes_a_user_who_can_log_in(app, runner, client):
    """`flask users create EMAIL --password P` adds a non-admin who logs in with P."""
    result = create(runner, "ann@example.com", "--password", "s3cret-pass")
    assert result.exit_code == 0, result.output
    assert "Created user ann@example.com" in result.output
    assert find(app, "ann@example.com").is_admin is False
    response = client.post("/auth/login", data={"email": "ann@example.com", "password": "s3cret-pass"})
    assert response.status_code == 302


def test_create_with_admin_flag_makes_an_admin(app, runner):
    """`--admin` gives the user the right to open the flag dashboard."""
    result = create(runner, "boss@example.com", "--admin", "--password", "s3cret-pass")
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.com" in result.output
    assert find(app, "boss@example.com").is_admin is True


def test_create_asks_for_the_password_twice(app, runner):
    """Without --password the password is prompted for, hidden, and confirmed."""
    result = create(runner, "ann@example.com", input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert "s3cret-pass" not in result.output
    assert find(app, "ann@example.com").check_password("s3cret-pass")


def test_create_refuses_passwords_that_do_not_match(app, runner):
    """Two different passwords at the prompt create nothing and exit with an error."""
    result = create(runner, "ann@example.com", input="s3cret-pass\nother-pass\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert find(app, "ann@example.com") is None


def test_create_refuses_a_short_password(app, runner):
    """A password under 8 characters is refused with the rule to follow."""
    result = create(runner, "ann@example.com", "--password", "short")
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
    assert find(app, "ann@example.com") is None


def test_create_refuses_something_that_is_not_an_email(app, runner):
    """A mistyped email is refused with an example of what to type."""
    result = create(runner, "ann.example.com", "--password", "s3cret-pass")
    assert result.exit_code != 0
    assert "is not an email address" in result.output


def test_create_refuses_a_duplicate_email(app, runner, user):
    """An email that already has an account (in any letter case) is an error; the account is untouched."""
    result = create(runner, user.email.upper(), "--admin", "--password", "s3cret-pass")
    assert result.exit_code == 1
    assert f"a user with email {user.email} already exists" in result.output
    existing = find(app, user.email)
    assert existing.is_admin is False
    assert not existing.check_password("s3cret-pass")


def test_create_before_init_db_says_how_to_set_up(tmp_path):
    """On a database without tables the command says to run `flask init-db`."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}"})
    result = create(app.test_cli_runner(), "ann@example.com", "--password", "s3cret-pass")
    assert result.exit_code == 1
    assert "Run: flask init-db" in result.output


def demo_credentials(output):
    """The login URL, email and password that `flask users demo-admin` printed."""
    url = re.search(r"(http://\S+)", output).group(1)
    email = re.search(r"email:\s+(\S+)", output).group(1)
    password = re.search(r"password:\s+(\S+)", output).group(1)
    return url, email, password


def test_demo_admin_prints_credentials_that_log_in(app, runner, client):
    """`flask users demo-admin` prints the login URL, email and password, and they work."""
    result = runner.invoke(args=["users", "demo-admin"])
    assert result.exit_code == 0, result.output
    url, email, password = demo_credentials(result.output)
    assert url == "http://127.0.0.1:5000/auth/login"
    assert email == "admin@example.com"
    assert client.post("/auth/login", data={"email": email, "password": password}).status_code == 302
    assert find(app, email).is_admin is True


def test_demo_admin_prints_the_url_it_is_given(runner):
    """`--url` names where the app is served (the Makefile passes its HOST and PORT)."""
    result = runner.invoke(args=["users", "demo-admin", "--url", "http://127.0.0.1:8123"])
    assert demo_credentials(result.output)[0] == "http://127.0.0.1:8123/auth/login"


def test_demo_admin_refuses_an_address_that_is_not_a_url(app, runner):
    """`--url` without http(s)://, a host or a real port is refused with an example; no admin is made."""
    for url in ("127.0.0.1:5000", "ftp://127.0.0.1", "http://127.0.0.1:99999", "http://"):
        result = runner.invoke(args=["users", "demo-admin", "--url", url])
        assert result.exit_code == 2, url
        assert "type one like http://127.0.0.1:5000" in result.output
    assert find(app, "admin@example.com") is None


def test_demo_admin_again_resets_the_password(app, runner, client):
    """Each run gives the same admin a new password; the old one stops working."""
    _, email, old_password = demo_credentials(runner.invoke(args=["users", "demo-admin"]).output)
    _, _, new_password = demo_credentials(runner.invoke(args=["users", "demo-admin"]).output)
    assert new_password != old_password
    assert client.post("/auth/login", data={"email": email, "password": old_password}).status_code == 200
    assert client.post("/auth/login", data={"email": email, "password": new_password}).status_code == 302


def test_demo_admin_also_makes_demo_users_whose_password_it_prints(app, runner, client):
    """Three users who are not admins, with one printed password that logs each of them in, so that a group
    can be filled and a user looked up on a new project without a shell."""
    result = runner.invoke(args=["users", "demo-admin"])
    emails = re.search(r"Demo users \(not admins\), [^:]+: (.+)", result.output).group(1).split(", ")
    password = re.search(r"their password: (\S+)", result.output).group(1)
    assert emails == ["ann@example.com", "bob@example.com", "carol@example.com"]
    for email in emails:
        assert find(app, email).is_admin is False
        response = client.post("/auth/login", data={"email": email, "password": password})
        assert response.status_code == 302, email
        client.post("/auth/logout")


def test_demo_admin_makes_an_existing_user_an_admin(app, runner, make_user):
    """If admin@example.com exists as a plain user, demo-admin makes it an admin (one account, not two)."""
    make_user("admin@example.com")
    assert runner.invoke(args=["users", "demo-admin"]).exit_code == 0
    assert find(app, "admin@example.com").is_admin is True
