"""The user hook takes what apps have (objects, rows, mappings, plain ids) and is loud about anything else."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import flask_login
import pytest
from flask import Flask, g, request, session

from {{ cookiecutter.package_name }} import gatekeeper, gatekeeper_config, gatekeeper_control
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from tests.bare_app import flags

PACKAGE_DIR = Path(gatekeeper.__file__).parent


def sqlite_row(**columns: object) -> sqlite3.Row:
    """A row as an app on raw sqlite3 (Flask's tutorial) keeps its logged-in user in `g.user`."""
    connection = sqlite3.connect(":memory:")
    connection.row_factory = sqlite3.Row
    names = ", ".join(f"? AS {name}" for name in columns)
    return connection.execute(f"SELECT {names}", tuple(columns.values())).fetchone()


def make_app(user_loader=lambda: None, *, testing: bool = True, debug: bool = False, **options) -> Flask:
    """A bare app with the engine's test flags and this user hook; `/explain/FLAG` shows what it gives."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="user-hook", TESTING=testing)
    app.debug = debug
    gatekeeper.init_app(app, flags(), user_loader=user_loader, **options)
    app.add_url_rule("/explain/<flag>", "explain", lambda flag: " ".join(request.gk.explain(flag)[1:3]))
    return app


def variant_for(hook_result: object, **app_options: object) -> str:
    """The variant of ON_OFF (on for user 7 only) a request gets when the user hook returns `hook_result`."""
    app = make_app(lambda: hook_result, **app_options)
    return app.test_client().get("/explain/ON_OFF").text.split()[0]


@dataclass
class Member:
    id: int


@pytest.mark.parametrize(
    "user",
    [Member(7), {"id": 7}, sqlite_row(id=7, username="ann"), 7, SimpleNamespace(id=7, is_authenticated=True)],
    ids=["object", "mapping", "sqlite3.Row", "plain id", "Flask-Login user"],
)
def test_the_hook_may_return_an_object_a_mapping_a_row_or_a_plain_id(user):
    """Each of them names user 7, who gets ON; none is silently taken for an anonymous visitor."""
    assert variant_for(user) == "ON"


class PropertyId:
    """A user whose `id` is a property, with a different value left in its __dict__ under the same name."""

    def __init__(self) -> None:
        self.__dict__["id"] = 1

    @property
    def id(self) -> int:
        return 7


def test_an_id_property_is_asked_not_read_from_the_objects_dict():
    """The id is what `user.id` gives, even where the object's __dict__ holds something else as "id"."""
    assert variant_for(PropertyId()) == "ON"


def test_a_plain_attribute_id_set_after_the_first_request_is_read():
    """The same user class, first without an id (anonymous), then with one: each request reads it anew."""
    user = SimpleNamespace(is_authenticated=True)
    app = make_app(lambda: user)
    app.config["TESTING"] = False  # (no id) is then a warning, served as anonymous
    assert app.test_client().get("/explain/ON_OFF").text.split()[0] == "OFF"
    user.id = 7
    assert app.test_client().get("/explain/ON_OFF").text.split()[0] == "ON"


def test_a_plain_string_id_is_the_id():
    """A string id is the id, as it is (a session often holds the id as text)."""
    app = make_app(lambda: "7")
    with app.test_request_context():
        assert gatekeeper.current_gatekeeper().user_id == "7"


@pytest.mark.parametrize(
    "anonymous",
    [None, SimpleNamespace(is_authenticated=False), {"id": None}],
    ids=["None", "Flask-Login's anonymous user", "a row with no id yet"],
)
def test_the_hook_says_anonymous_with_none(anonymous):
    """None (or an unauthenticated user object) is an anonymous visitor."""
    app = make_app(lambda: anonymous)
    with app.test_request_context():
        assert gatekeeper.current_gatekeeper().user_id is None


def test_flask_logins_user_that_is_not_active_is_anonymous_to_the_default_hook():
    """A `UserMixin` user whose `is_active` is false is not authenticated (Flask-Login's rule), even when
    signed in with `force=True`; one that keeps the mixin's properties is user 7."""

    class Member(flask_login.UserMixin):
        def __init__(self, active: bool) -> None:
            self.id = 7
            self.active = active

        @property
        def is_active(self) -> bool:
            return self.active

    class PlainMember(flask_login.UserMixin):
        id = 7

    app = make_app(user_loader=None)
    flask_login.LoginManager(app).user_loader(lambda user_id: None)
    for user, expected in ((Member(active=False), None), (Member(active=True), 7), (PlainMember(), 7)):
        with app.test_request_context():
            flask_login.login_user(user, force=True)
            assert gatekeeper.current_gatekeeper().user_id == expected


@pytest.mark.parametrize(
    "bad", [SimpleNamespace(name="ann"), {"name": "ann"}, sqlite_row(username="ann"), 7.0, True]
)
def test_a_user_with_no_readable_id_raises_in_testing(bad):
    """A hook result the engine cannot read an id from is a bug in the app: it says so, and how to fix it."""
    with pytest.raises(TypeError, match=r"user_loader.* no id: return an object with `id`"):
        variant_for(bad)


def test_a_user_with_no_readable_id_raises_in_debug():
    """Debug mode is as loud as testing."""
    with pytest.raises(TypeError, match="no id"):
        variant_for({"name": "ann"}, testing=False, debug=True)


def test_a_user_with_no_readable_id_warns_once_in_production(caplog):
    """In production the page still renders, as for an anonymous visitor, and the log says why, once."""
    app = make_app(lambda: {"name": "ann"}, testing=False)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger=gatekeeper.__name__):
        answers = [client.get("/explain/ON_OFF").text for _ in range(3)]
    assert answers == ["OFF rule"] * 3
    warnings = [record for record in caplog.records if "no id" in record.getMessage()]
    assert len(warnings) == 1
    assert "serving the visitor as anonymous" in warnings[0].getMessage()


def test_the_hook_is_asked_once_per_request():
    """The user is looked up and normalised once, however many flags the request checks."""
    calls = []
    app = make_app(lambda: calls.append(1) or {"id": 7})
    app.add_url_rule("/many", "many", lambda: str([request.gk.ff("ON_OFF", "ON") for _ in range(5)]))
    app.add_url_rule("/two", "two", lambda: str([request.gk.ff("ON_OFF", "ON"), request.gk.ff("HALF", "IN")]))
    client = app.test_client()
    client.get("/many")
    client.get("/two")
    assert len(calls) == 2


def test_gatekeeper_user_is_what_the_hook_returned():
    """`request.gk.user` is the hook's own result (a row here), `request.gk.user_id` its id."""
    row = sqlite_row(id=7, username="ann")
    app = make_app(lambda: row)
    with app.test_request_context():
        gk = gatekeeper.current_gatekeeper()
        assert gk.user is row
        assert gk.user_id == 7


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        (SimpleNamespace(id=1, is_admin=True), True),
        (SimpleNamespace(id=2, is_admin=False), False),
        (sqlite_row(id=1, is_admin=1), True),
        (sqlite_row(id=2, is_admin=0), False),
        ({"id": 3}, False),
        (3, False),
    ],
    ids=["admin object", "other object", "admin row", "other row", "mapping without is_admin", "plain id"],
)
def test_can_manage_defaults_to_is_admin_as_attribute_or_column(user, allowed):
    """Without `can_manage=`, the dashboard is for users whose `is_admin` is true, object or row alike."""
    app = make_app()
    assert gatekeeper.get_state(app).can_manage(user) is allowed


def test_can_manage_is_the_apps_callable():
    """`init_app(..., can_manage=...)` replaces the default and is kept on the state."""
    app = make_app(can_manage=lambda user: user["username"] == "ann")
    assert gatekeeper.get_state(app).can_manage(sqlite_row(id=9, username="ann")) is True
    assert gatekeeper.get_state(app).can_manage(sqlite_row(id=1, username="bob", is_admin=1)) is False


# --- The dashboard with the app's own login -----------------------------------------------------------------

ROWS = {
    1: sqlite_row(id=1, username="ann", email="ann@example.com"),
    2: sqlite_row(id=2, username="bob", email=None),
}


def dashboard_app(tmp_path: Path, **config: object) -> Flask:
    """An app with its own session login (`g.user`, a row), the store on a database URL, and the dashboard."""
    # The dashboard's templates and assets, copied into the app's folders as the README says.
    app = Flask(__name__, template_folder=PACKAGE_DIR / "templates", static_folder=PACKAGE_DIR / "static")
    app.config.update(SECRET_KEY="own-login", TESTING=True, **config)

    @app.before_request
    def load_logged_in_user() -> None:
        g.user = ROWS.get(session.get("user_id"))

    app.add_url_rule("/login", "login", lambda: "the login page")
    overrides = gatekeeper_control.init_app(app, f"sqlite:///{tmp_path / 'flags.db'}")
    gatekeeper.init_app(
        app,
        FF_CONFIG_MAP,
        store=overrides,
        user_loader=lambda: g.user,
        can_manage=lambda user: user["username"] == "ann",
    )
    with app.app_context():
        gatekeeper_control.create_tables()
    return app


def logged_in(app: Flask, user_id: int):
    client = app.test_client()
    with client.session_transaction() as data:
        data["user_id"] = user_id
    return client


FLAG_PAGE = "/gatekeeper/flags/MY_NEW_FEATURE"


def post_form(client, action: str, **data: str):
    """Post to one of the flag page's forms with the CSRF token the page gave, as a browser would."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(FLAG_PAGE).text).group(1)
    return client.post(f"{FLAG_PAGE}/{action}", data={**data, "csrf_token": token}, follow_redirects=True)


def test_the_dashboard_opens_for_whom_can_manage_allows(tmp_path):
    """The app's own login and `can_manage` decide: no Flask-Login involved."""
    assert logged_in(dashboard_app(tmp_path), 1).get("/gatekeeper/").status_code == 200


def test_the_dashboard_refuses_a_signed_in_user_can_manage_refuses(tmp_path):
    assert logged_in(dashboard_app(tmp_path), 2).get("/gatekeeper/").status_code == 403


def test_anonymous_visitors_get_401_without_a_login_view(tmp_path):
    """Without Flask-Login or GATEKEEPER_LOGIN_VIEW there is no login page to send them to."""
    assert dashboard_app(tmp_path).test_client().get("/gatekeeper/").status_code == 401


def test_anonymous_visitors_go_to_gatekeeper_login_view_with_next(tmp_path):
    """GATEKEEPER_LOGIN_VIEW names the app's login endpoint; `next` brings them back."""
    response = dashboard_app(tmp_path, GATEKEEPER_LOGIN_VIEW="login").test_client().get("/gatekeeper/audit")
    assert response.status_code == 302
    assert response.location == "/login?next=/gatekeeper/audit"


def test_the_audit_log_names_the_admin_from_the_hooks_user(tmp_path):
    """`_actor()` reads the hook's user: its email here."""
    app = dashboard_app(tmp_path)
    client = logged_in(app, 1)
    post_form(client, "force", variant="VISIBLE", confirm="yes")
    assert "ann@example.com" in app.test_cli_runner().invoke(args=["gk", "audit"]).output


def test_without_user_lookup_the_override_says_the_id_was_not_checked(tmp_path):
    """The user field asks for an id, and the saved override says plainly that nobody checked it."""
    client = logged_in(dashboard_app(tmp_path), 1)
    assert "user id (not checked)" in client.get(FLAG_PAGE).text
    page = post_form(client, "users", user="dave", variant="VISIBLE").text
    assert "The id &#39;dave&#39; was not checked" in page


def test_without_user_lookup_the_cli_says_the_id_was_not_checked(tmp_path):
    """`flask gk override` stores the id as typed, and says so."""
    runner = dashboard_app(tmp_path).test_cli_runner()
    output = runner.invoke(args=["gk", "override", "MY_NEW_FEATURE", "VISIBLE", "--user", "dave"]).output
    assert "dave now gets VISIBLE" in output
    assert "The id 'dave' was not checked" in output


def test_a_post_without_the_dashboards_csrf_token_is_refused(tmp_path):
    """With no CSRFProtect in the app, the dashboard checks its own forms: 400, and nothing changed."""
    app = dashboard_app(tmp_path)
    client = logged_in(app, 1)
    response = client.post(f"{FLAG_PAGE}/force", data={"variant": "VISIBLE", "confirm": "1"})
    assert response.status_code == 400
    assert "CSRF token is missing" in response.text
    assert "forced" not in app.test_cli_runner().invoke(args=["gk", "explain", "MY_NEW_FEATURE"]).output


def test_a_post_with_the_forms_csrf_token_is_accepted(tmp_path):
    """The token the page's form carries is the one the dashboard accepts."""
    app = dashboard_app(tmp_path)
    response = post_form(logged_in(app, 1), "force", variant="VISIBLE", confirm="1")
    assert response.status_code == 200
    assert "forced" in app.test_cli_runner().invoke(args=["gk", "explain", "MY_NEW_FEATURE"]).output


# --- `flask gk explain` without --user ----------------------------------------------------------------------


def test_explain_without_a_user_answers_for_an_anonymous_visitor(runner, caplog):
    """A rollout flag asked about with no --user buckets a new anonymous id: no traceback, and it says so."""
    with caplog.at_level(logging.ERROR):
        result = runner.invoke(args=["gk", "explain", "HOMEPAGE_EXPERIMENT"])
    assert result.exit_code == 0, result.output
    assert "because: rule" in result.output
    assert "anonymous visitor" in result.output
    assert "Traceback" not in result.output
    assert caplog.records == []


# --- The blog post's layout ---------------------------------------------------------------------------------


def test_without_init_app_gatekeeper_falls_back_on_gatekeeper_config(tmp_path):
    """As in the post: a Gatekeeper in an app that never called init_app uses gatekeeper_config's flags."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "seed"
    with app.test_request_context():
        gk = gatekeeper.initialize_gatekeeper(app=app)
        assert gk.config_map is gatekeeper_config.FF_CONFIG_MAP
        assert gk.ff("MY_NEW_FEATURE", "NOT_VISIBLE") is True
        assert gatekeeper.Gatekeeper(user_id=2, app=app).ff("MY_NEW_FEATURE", "VISIBLE") is True


FLAT_APP = """
from flask import Flask, request

app = Flask(__name__)
app.config["SECRET_KEY"] = "flat"


@app.before_request
def register_gatekeeper():
    from flask import request

    import gatekeeper

    request.gk = gatekeeper.initialize_gatekeeper(app=app)


@app.get("/")
def home():
    return "new" if request.gk.ff("MY_NEW_FEATURE", "VISIBLE") else "old"


print(app.test_client().get("/").text)
app.config["IS_DEV"] = True
print(app.test_client().get("/").text)
"""


def test_the_engine_and_config_work_in_the_blog_posts_flat_layout(tmp_path):
    """gatekeeper.py and gatekeeper_config.py beside a single-module app.py: `import gatekeeper` works."""
    for name in ("gatekeeper.py", "gatekeeper_config.py"):
        shutil.copy(PACKAGE_DIR / name, tmp_path / name)
    (tmp_path / "app.py").write_text(FLAT_APP, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["old", "new"]
