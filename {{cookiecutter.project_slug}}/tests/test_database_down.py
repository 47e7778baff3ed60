"""With the database missing or unreachable: a 503 page for pages that need it, the rest keeps working,
and the app recovers by itself once the database is back. SQLite never creates an empty file in its place."""

import pytest

from {{ cookiecutter.package_name }} import create_app
from tests.databases import TEST_DATABASE_URL

SITE_HEADER = 'class="site-header"'


@pytest.fixture
def db_file(tmp_path):
    """The file `make_app` gives the first app of a test (a missing file is SQLite's own case)."""
    if TEST_DATABASE_URL:
        pytest.skip("the suite runs on PostgreSQL (TEST_DATABASE_URL): no SQLite file to take away")
    return tmp_path / "app0.db"


@pytest.fixture
def cookies(app, client, user, login):
    """The cookies of a logged-in user, taken before the database file goes away."""
    login(client, user)
    return {"session": client.get_cookie("session").value}


def worker(db_file, **config):
    """A freshly started process of the app on `db_file`, as gunicorn would start one (no init-db)."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}",
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            **config,
        }
    )


def client_with(app, cookies):
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


@pytest.fixture
def moved_away(db_file, cookies):
    """The database file is gone (say, a volume not mounted) while the user's cookies are still valid."""
    backup = db_file.with_suffix(".bak")
    db_file.rename(backup)
    yield backup
    if backup.exists():
        backup.rename(db_file)


@pytest.mark.parametrize("path", ["/", "/gatekeeper/", "/auth/login"])
def test_a_logged_in_visitor_gets_the_503_page_in_the_apps_layout(db_file, cookies, moved_away, path):
    """Every page a logged-in visitor opens answers 503 with the app's own layout, not a bare 500."""
    response = client_with(worker(db_file), cookies).get(path)
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.text
    assert SITE_HEADER in response.text
    assert response.headers["Retry-After"].isdigit()


def test_anonymous_pages_and_flag_checks_keep_working(db_file, cookies, moved_away):
    """A visitor who is not logged in still gets the home page with its flags evaluated."""
    response = worker(db_file).test_client().get("/")
    assert response.status_code == 200
    assert 'data-flag="HOMEPAGE_EXPERIMENT"' in response.text


def test_logging_in_while_the_database_is_gone_gets_503(db_file, user, cookies, moved_away, password):
    """A login attempt cannot check the password: 503, with nothing logged in."""
    client = worker(db_file).test_client()
    response = client.post("/auth/login", data={"email": user.email, "password": password})
    assert response.status_code == 503
    assert client.get_cookie("session") is None or 'id="whoami"' not in client.get("/").text


def test_sqlite_never_creates_an_empty_database_in_place_of_a_missing_one(db_file, cookies, moved_away):
    """Requests on a missing file leave it missing (no empty database that would hide the mistake)."""
    client_with(worker(db_file), cookies).get("/")
    assert not db_file.exists()


def test_the_log_says_where_the_database_was_looked_for(db_file, cookies, moved_away, caplog):
    """The error in the log names the missing file and how to create it."""
    client_with(worker(db_file), cookies).get("/")
    assert str(db_file) in caplog.text
    assert "flask init-db" in caplog.text


def test_the_cli_says_where_the_database_was_looked_for(db_file, cookies, moved_away):
    """`flask users create` on a missing file names the file and the command that creates it."""
    result = (
        worker(db_file)
        .test_cli_runner()
        .invoke(args=["users", "create", "x@example.com", "--password", "password1"])
    )
    assert result.exit_code == 1
    assert str(db_file) in result.output
    assert not db_file.exists()


def test_the_app_recovers_once_the_file_is_back_without_restart_or_init_db(
    db_file, cookies, moved_away, user
):
    """The same process serves the user again as soon as the file is restored."""
    client = client_with(worker(db_file), cookies)
    assert client.get("/").status_code == 503
    moved_away.rename(db_file)
    response = client.get("/")
    assert response.status_code == 200
    assert user.email in response.text


def test_init_db_creates_a_missing_sqlite_file(tmp_path):
    """`flask init-db` is the one command that creates the database file (and its folder)."""
    db_file = tmp_path / "new" / "folder" / "app.db"
    result = worker(db_file).test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert db_file.exists()


def test_an_unreachable_postgresql_gets_the_same_503(cookies, tmp_path):
    """A server database that refuses connections gives the logged-in visitor the 503 page too."""
    pytest.importorskip("psycopg")
    app = worker(
        tmp_path / "unused.db", SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    response = client_with(app, cookies).get("/")
    assert response.status_code == 503
    assert SITE_HEADER in response.text
