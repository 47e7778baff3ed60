"""What an outside probe tried (issue 25), through the test client: numbers, times and ids out of every range,
NUL bytes and megabyte values in every dashboard field answer with a message, never a 500, and write nothing;
a forged X-Forwarded-Prefix moves no link; a CSRF token from before login is refused after it; schedules are
cancelled only through their own flag; admin pages are never cached; flashes stay few; the SQLite file is
private and may be replaced under the running app."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper_control.errors import OverrideError
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from {{ cookiecutter.package_name }}.gatekeeper_control.tables import VersionRow
from tests.conftest import PASSWORD
from tests.store_helpers import audit_log

FLAG = "NEW_CHECKOUT"
FLAG_PAGE = f"/gatekeeper/flags/{FLAG}"
HUGE_IDS = [str(2**63), str(2**64), "9" * 40]
# The last: Arabic-Indic digits, which int() and Decimal() read as 10.
NUMBERS = ["NaN", "sNaN", "-Infinity", "1e999999999", "1E+2", "-0", "0x10", "1_0", "\u0661\u0660"]
TIMES = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31",
    "+999999d",
    "2200-01-01T00:00Z",
]
# A megabyte is refused by Werkzeug (413, over its 500 KB form field limit); 100 KB reaches the app.
TEXTS = ["a\x00b", "x" * 100_000, "x" * 1_000_000]
HOSTILE = NUMBERS + TIMES + HUGE_IDS + TEXTS

# Every dashboard form: its URL and a valid form, each of whose fields the fuzz test replaces in turn.
FORMS = [
    (f"{FLAG_PAGE}/force", {"variant": "ON", "confirm": "1", "reason": "r"}),
    (f"{FLAG_PAGE}/unforce", {"confirm": "1", "reason": "r"}),
    (f"{FLAG_PAGE}/users", {"user": "1", "variant": "ON", "reason": "r"}),
    (f"{FLAG_PAGE}/users/remove", {"user_id": "42", "reason": "r"}),
    (f"{FLAG_PAGE}/rollout", {"weight-ON": "50", "weight-OFF": "50", "confirm_moves": "1", "reason": "r"}),
    (f"{FLAG_PAGE}/rollout/clear", {"reason": "r"}),
    (f"{FLAG_PAGE}/targets", {"group": "beta", "variant": "ON", "reason": "r"}),
    (f"{FLAG_PAGE}/targets/remove", {"group": "beta", "reason": "r"}),
    (
        f"{FLAG_PAGE}/schedules",
        {"when": "+1h", "action": "rollout", "arguments": "ON=5 OFF=95", "reason": "r"},
    ),
    (f"{FLAG_PAGE}/schedules/1/cancel", {"reason": "r"}),
    ("/gatekeeper/groups", {"name": "gamma", "description": "d", "reason": "r"}),
    ("/gatekeeper/groups/beta/describe", {"description": "d2", "reason": "r"}),
    ("/gatekeeper/groups/beta/members", {"users": "1", "reason": "r"}),
    ("/gatekeeper/groups/beta/members/remove", {"user_id": "42", "reason": "r"}),
    ("/gatekeeper/audit/1/undo", {"reason": "r", "flag": FLAG}),
]
# Fields where some of the values above are fine text (a reason "NaN", a group named "sNaN"): only those
# values of them may be written.
FREE_TEXT = {"reason", "description", "name", "confirm", "confirm_moves", "flag"}
URL_IDS = [FLAG_PAGE + "/schedules/ID/cancel", "/gatekeeper/audit/ID/undo"]


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


@pytest.fixture
def prepared(app, admin_client, user):
    """A group `beta` with user 42, a pending schedule #1 of NEW_CHECKOUT, and a change #1 to undo."""
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": "42"})
    admin_client.post(f"{FLAG_PAGE}/schedules", data={"when": "+2h", "action": "force", "arguments": "ON"})
    assert len(audit_log(app)) == 3
    return admin_client


def writes(app) -> int:
    """The store's change counter: every write moves it."""
    with app.app_context(), Session(db.engine) as session:
        return session.scalar(select(VersionRow.version).where(VersionRow.id == 1))


def acceptable(field: str, value: str) -> bool:
    return field in FREE_TEXT and "\x00" not in value and len(value) < 100


def test_no_hostile_value_in_any_dashboard_field_gives_a_5xx_or_a_write(app, prepared):
    """Each field of each form, in turn NaN, sNaN, an overflowing exponent, a far date with an offset, an id
    past 2**63, a NUL byte, 100 KB or a megabyte: the answer is a redirect with a message (or 404 for an
    unknown name, 413 past Werkzeug's form limit), never a 5xx; nothing is written unless the value is
    ordinary text for a free-text field; and no outage is reported."""
    for url, form in FORMS:
        for field in form:
            for value in HOSTILE:
                before = writes(app)
                response = prepared.post(url, data={**form, field: value})
                assert response.status_code < 500, (url, field, value[:40])
                if not acceptable(field, value):
                    assert writes(app) == before, (url, field, value[:40])
        assert "unavailable" not in prepared.get("/gatekeeper/").text, url


def test_an_id_past_the_database_range_in_a_url_changes_nothing(app, prepared):
    """Undo and cancel with ids >= 2**63 (which SQLite cannot even bind) say there is no such change; a page
    number past any range, or a NUL in a filter, gives a page of the log, and no outage is reported."""
    before = writes(app)
    for template in URL_IDS:
        for entry_id in HUGE_IDS:
            response = prepared.post(
                template.replace("ID", entry_id), data={"reason": "r"}, follow_redirects=True
            )
            assert response.status_code == 200
    assert writes(app) == before
    for query in ["page=" + "9" * 30, "actor=a%00b", "flag=a%00b", "action=" + "x" * 100_000]:
        response = prepared.get(f"/gatekeeper/audit?{query}")
        assert response.status_code == 200
        assert "unavailable" not in response.text


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"weight-ON": "sNaN", "weight-OFF": "50"}, "is not a percentage for ON"),
        ({"weight-ON": "1e999999999", "weight-OFF": "0"}, "must be a percentage, 0 to 100"),
    ],
)
def test_weights_that_are_no_percentage_are_refused_with_a_message(app, admin_client, weights, message):
    """The rollout form refuses weights Decimal could not multiply (sNaN, 1e999999999) like any other
    non-percentage, with a message and nothing written."""
    page = admin_client.post(f"{FLAG_PAGE}/rollout", data={**weights, "confirm_moves": "1"})
    assert page.status_code == 422
    assert message in page.text
    assert audit_log(app) == []


def test_a_schedule_time_past_the_calendar_is_refused_with_a_message(app, admin_client):
    """A time whose offset moves it past year 9999 or before year 1, or one centuries ahead, is refused."""
    for when in TIMES[:3]:
        data = {"when": when, "action": "force", "arguments": "ON"}
        page = admin_client.post(f"{FLAG_PAGE}/schedules", data=data)
        assert page.status_code == 422
        assert "is not a time" in page.text or "years ahead: schedule a nearer time" in page.text
    assert audit_log(app) == []


def test_a_nul_in_a_description_is_refused_and_the_store_stays_available(app, admin_client):
    """A NUL byte (which PostgreSQL refuses, and SQLite would store) is the admin's input at fault: refused
    with a message, nothing written, and no outage banner."""
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    page = admin_client.post(
        "/gatekeeper/groups/beta/describe", data={"description": "a\x00b"}, follow_redirects=True
    ).text
    assert "NUL" in page
    assert "unavailable" not in page
    assert [entry.action for entry in audit_log(app)] == ["create_group"]


def test_the_database_refusing_an_input_is_told_apart_from_an_outage(app):
    """A write the database refuses for its data (PostgreSQL: a value too long, a NUL) is the input's fault:
    an OverrideError saying so, and the store stays available (no outage banner on every page)."""

    def refused(session):
        raise DataError("UPDATE", {}, Exception("value too long for type character varying(100)"))

    with app.app_context():
        with pytest.raises(OverrideError, match="The database refused this change"):
            store._write(refused)  # the one write path every change goes through
        assert store.available


def test_a_schedule_is_cancelled_only_through_its_own_flag(app, admin_client):
    """Cancelling #1 through another flag's URL cancels nothing; through its own flag's URL it does."""
    admin_client.post(f"{FLAG_PAGE}/schedules", data={"when": "+1h", "action": "force", "arguments": "ON"})
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/schedules/1/cancel")
    assert [entry.action for entry in audit_log(app)] == ["schedule"]
    admin_client.post(f"{FLAG_PAGE}/schedules/1/cancel")
    assert [entry.action for entry in audit_log(app)] == ["cancel_schedule", "schedule"]


def test_admin_pages_are_never_cached(admin_client):
    """Every dashboard page says `Cache-Control: no-store`: no browser history or shared cache keeps it."""
    for path in ["/gatekeeper/", FLAG_PAGE, "/gatekeeper/audit", "/gatekeeper/groups", "/gatekeeper/users"]:
        assert admin_client.get(path).headers["Cache-Control"] == "no-store", path


def test_flashes_stay_few_for_a_client_that_never_follows_redirects(admin_client):
    """POSTs whose redirects are never followed leave a session cookie of bounded size (in the probe it
    grew with every POST until gunicorn answered 431, after ~2,240 of them)."""
    sizes = []
    for _ in range(60):
        response = admin_client.post(f"{FLAG_PAGE}/force", data={"variant": "ON"})  # no confirm: a message
        sizes.append(len(response.headers.get("Set-Cookie", "")))
    assert max(sizes[10:]) <= max(sizes[:10])
    assert max(sizes) < 4093


def test_a_csrf_token_from_before_login_is_refused_after_it(csrf_client, csrf_user):
    """Logging in starts a new session: the token of the login form (which an attacker planting a session
    could know) no longer validates any form."""
    login_page = csrf_client.get("/auth/login").text
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = csrf_client.post(
        "/auth/login", data={"email": csrf_user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert csrf_client.post("/auth/logout", data={"csrf_token": token}).status_code == 400


def test_x_forwarded_prefix_is_ignored_unless_the_setting_trusts_it(make_app):
    """With a proxy in front (PROXY_COUNT=1) but PROXY_PREFIX off, X-Forwarded-Prefix moves no URL: the
    login redirect and the login form stay on this site, at the root."""
    client = make_app(PROXY_COUNT=1).test_client()
    for prefix in ["//evil.example", "/\\evil.example", "/app"]:
        response = client.get("/gatekeeper/", headers={"X-Forwarded-Prefix": prefix})
        assert response.headers["Location"].startswith("/auth/login"), prefix
        login_page = client.get("/auth/login", headers={"X-Forwarded-Prefix": prefix}).text
        assert 'action="/auth/login"' in login_page, prefix
        assert "evil.example" not in login_page


def test_a_trusted_prefix_moves_urls_but_never_off_site(make_app):
    """With PROXY_PREFIX on, a plain path prefix is honoured and a `//host` one is dropped."""
    client = make_app(PROXY_COUNT=1, PROXY_PREFIX=True).test_client()
    moved = client.get("/gatekeeper/", headers={"X-Forwarded-Prefix": "/app"})
    assert moved.headers["Location"].startswith("/app/auth/login")
    forged = client.get("/gatekeeper/", headers={"X-Forwarded-Prefix": "//evil.example"})
    assert forged.headers["Location"].startswith("/auth/login")


def test_a_new_sqlite_file_is_private(make_app, tmp_path):
    """`flask init-db` creates the database (password hashes) readable by its owner only, like `.env`."""
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'private' / 'app.db'}")
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "private" / "app.db").st_mode) == 0o600


def sqlite_path(app) -> Path:
    return Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))


def replace_with_backup(path: Path) -> None:
    """What a restore does: the file is deleted, and a copy made before takes its place (a new inode)."""
    backup = path.with_suffix(".backup")
    shutil.copy(path, backup)
    path.unlink()
    os.replace(backup, path)


def test_a_revoke_in_a_restored_sqlite_file_is_seen_at_once(app, admin_client, admin):
    """After the file is replaced under the running app, a revoke written to the new file (by another
    process) ends the session on the next request: no pooled connection still reads the old file."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        pytest.skip("a SQLite file")
    assert admin_client.get("/gatekeeper/").status_code == 200
    path = sqlite_path(app)
    replace_with_backup(path)
    with sqlite3.connect(path) as other_process:
        other_process.execute("UPDATE users SET session_token = 'revoked' WHERE id = ?", (admin.id,))
    assert admin_client.get("/gatekeeper/").status_code == 302


def test_dashboard_writes_go_to_a_restored_sqlite_file(app, admin_client):
    """A change made after the file was replaced lands in the new file, not in the deleted one."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        pytest.skip("a SQLite file")
    admin_client.get("/gatekeeper/")
    replace_with_backup(sqlite_path(app))
    admin_client.post(f"{FLAG_PAGE}/force", data={"variant": "ON", "confirm": "1"})
    with sqlite3.connect(sqlite_path(app)) as reader:
        assert reader.execute("SELECT variant FROM gatekeeper_forced_variants").fetchall() == [("ON",)]


def test_a_dropped_connection_at_the_end_of_a_request_is_no_500(admin_client, monkeypatch):
    """Flask-SQLAlchemy's teardown rolls back the request's session; when the server has just dropped the
    connection (PostgreSQL shutting down: `AdminShutdown`) that raises after the page was made, and the
    client got a bare 500. The page is served, and the next request gets a new session."""
    registry = db.session.registry

    def remove_on_a_dropped_connection():
        if registry.has():  # the connection went with the server; Session.close() raises, the registry stays
            registry().close()
            raise OperationalError(
                "ROLLBACK", {}, Exception("terminating connection due to administrator command")
            )

    monkeypatch.setattr(db.session, "remove", remove_on_a_dropped_connection)
    assert admin_client.get("/").status_code == 200
