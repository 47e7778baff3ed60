"""The admin API (gatekeeper_control/api*.py) through the test client: tokens and scopes, every endpoint's
answer checked against the schema its operation documents, problem responses, and that a refused request
writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.gatekeeper_control import api, store, tokens
from {{ cookiecutter.package_name }}.gatekeeper_control.api_schemas import SCHEMAS
from {{ cookiecutter.package_name }}.gatekeeper_control.tables import TokenRow
from tests.conftest import add_user

API = "/gatekeeper/api/v1"


def make_token(app: Flask, scope: str, name: str | None = None, **kwargs: Any) -> str:
    with app.app_context():
        return tokens.create_token(name or f"{scope}-token", scope, actor="test", **kwargs)[1]


@pytest.fixture
def write_token(app: Flask) -> str:
    return make_token(app, "write")


@pytest.fixture
def read_token(app: Flask) -> str:
    return make_token(app, "read")


class Api:
    """The test client, with a token, checking every answer against the document's schema for it."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.client.open(API + path, method=method, json=json, headers=headers, **kwargs)
        schema_name = "Problem" if response.status_code >= 400 else _operation(method, path).response
        expected_type = "application/problem+json" if response.status_code >= 400 else "application/json"
        assert response.mimetype == expected_type, response.get_data(as_text=True)
        jsonschema.validate(
            response.get_json(),
            {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SCHEMAS}},
        )
        return response


def _operation(method: str, path: str) -> api.Operation:
    """The declared operation a concrete path belongs to."""
    bare = path.split("?")[0].strip("/").split("/")
    for op in api.OPERATIONS:
        pattern = op.path.strip("/").split("/")
        same_length = op.method == method and len(pattern) == len(bare)
        if same_length and all(p == b or p.startswith("{") for p, b in zip(pattern, bare, strict=True)):
            return op
    raise AssertionError(f"no operation for {method} {path}")


@pytest.fixture
def writer(client: FlaskClient, write_token: str) -> Api:
    return Api(client, write_token)


@pytest.fixture
def reader(client: FlaskClient, read_token: str) -> Api:
    return Api(client, read_token)


@pytest.fixture(scope="module")
def shared_writer(module_app: Flask) -> Api:
    """A write token on the module's app, for tests whose requests must change nothing."""
    return Api(module_app.test_client(), make_token(module_app, "write", "shared"))


def audit_count(app: Flask) -> int:
    with app.app_context():
        return store.store.audit_entries().total


# --- Who may call -------------------------------------------------------------------------------------------


def test_a_write_token_turns_a_flag_on_and_the_change_is_audited_as_the_token(app, writer):
    """One PUT forces the flag for everyone; the audit log names the token and keeps the reason."""
    response = writer("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON", "reason": "launch day"})
    assert response.status_code == 200
    assert response.get_json()["changed"] is True
    with app.app_context():
        assert store.store.snapshot(max_age=0).forced == {"NEW_CHECKOUT": "ON"}
        entry = store.store.audit_entries().entries[0]
    assert (entry.actor, entry.reason) == ("token:write-token", "launch day")


def test_the_same_change_twice_answers_unchanged_and_writes_nothing(app, writer):
    writer("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON"})
    before = audit_count(app)
    again = writer("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON"}).get_json()
    assert again["changed"] is False and again["change"] is None
    assert audit_count(app) == before


def test_no_token_is_a_401_with_a_bearer_challenge(module_app):
    response = Api(module_app.test_client(), None)("GET", "/flags")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_read_token_reads_but_cannot_change(app, reader):
    assert reader("GET", "/flags").status_code == 200
    response = reader("PUT", "/flags/NEW_CHECKOUT/off", {})
    assert response.status_code == 403
    assert "write" in response.get_json()["detail"]
    assert audit_count(app) == 1  # the token's own creation


def test_a_client_key_cannot_read_the_admin_api(app, client):
    key = make_token(app, "evaluate", "browser-key")
    assert Api(client, key)("GET", "/flags").status_code == 403


def test_a_revoked_token_is_refused_at_once(app, client, write_token):
    writer = Api(client, write_token)
    assert writer("GET", "/flags").status_code == 200
    with app.app_context():
        tokens.revoke_token("write-token", actor="test")
    assert writer("GET", "/flags").status_code == 401


def test_an_expired_token_is_refused(app, client):
    raw = make_token(app, "write", "short", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    with app.app_context():
        row_id = tokens.list_tokens()[0].id
        with store.current_state().engine.begin() as connection:
            past = datetime.now(UTC) - timedelta(minutes=1)
            connection.execute(update(TokenRow).where(TokenRow.id == row_id).values(expires_at=past))
    assert Api(client, raw)("GET", "/flags").status_code == 401


def test_an_unknown_token_is_refused(module_app):
    assert Api(module_app.test_client(), "gk_not-a-real-token")("GET", "/flags").status_code == 401


def test_a_dashboard_session_never_authenticates_the_api(app, client, admin, login):
    """An admin signed in to the dashboard still needs a token: the API reads no cookie."""
    login(client, admin)
    assert client.get("/gatekeeper/").status_code == 200
    response = client.put(f"{API}/flags/NEW_CHECKOUT/off", json={})
    assert response.status_code == 401
    with app.app_context():
        assert store.store.snapshot(max_age=0).disabled == frozenset()


def test_a_token_never_opens_the_dashboard(client, write_token):
    response = client.get("/gatekeeper/", headers={"Authorization": f"Bearer {write_token}"})
    assert response.status_code in (302, 401)
    assert "/auth/login" in response.headers.get("Location", "/auth/login")


def test_the_api_needs_no_csrf_token_in_an_app_that_checks_csrf(csrf_app):
    """CSRF protects cookie-authenticated forms; the API is exempt because it reads no cookie."""
    token = make_token(csrf_app, "write")
    response = csrf_app.test_client().put(
        f"{API}/flags/NEW_CHECKOUT/off", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_last_use_is_recorded(app, reader):
    reader("GET", "/flags")
    with app.app_context():
        assert tokens.list_tokens()[0].last_used_at is not None


def test_the_rate_limit_is_read_from_the_environment():
    environ = {"SECRET_KEY": "x", "GATEKEEPER_API_RATE_LIMIT": "10 per second"}
    assert Settings.from_env("/srv/instance", environ).GATEKEEPER_API_RATE_LIMIT == "10 per second"
    default = Settings.from_env("/srv/instance", {"SECRET_KEY": "x"})
    assert default.GATEKEEPER_API_RATE_LIMIT == "600 per minute"


def test_calls_are_rate_limited_per_token(make_app):
    """Past GATEKEEPER_API_RATE_LIMIT a token gets 429 problems; another token is unaffected."""
    limited = make_app(GATEKEEPER_API_RATE_LIMIT="3 per minute", RATELIMIT_ENABLED=True)
    first, second = make_token(limited, "read", "first"), make_token(limited, "read", "second")
    client = limited.test_client()
    statuses = [Api(client, first)("GET", "/flags").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert Api(client, second)("GET", "/flags").status_code == 200


# Concrete values for each path parameter, so that every declared operation can be called.
PATH_VALUES = {
    "flag": "NEW_CHECKOUT",
    "variant": "ON",
    "user": "someone@example.com",
    "group": "beta",
    "segment": "corp",
    "required": "MY_NEW_FEATURE",
    "schedule_id": "1",
    "number": "1",
    "entry_id": "1",
}


def test_every_endpoint_refuses_no_token_a_revoked_or_expired_one_a_session_and_the_wrong_scope(
    module_app, login
):
    """For each operation the document lists: 401 without a token, with a revoked or an expired token and
    with only a signed-in admin's session; 403 for a read token on a change; and nothing is written."""
    admin = add_user(module_app, "every-endpoint-admin@example.com", is_admin=True)
    read = make_token(module_app, "read", "every-endpoint-read")
    revoked = make_token(module_app, "write", "every-endpoint-revoked")
    expired = make_token(
        module_app, "write", "every-endpoint-expired", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    with module_app.app_context():
        tokens.revoke_token("every-endpoint-revoked", actor="test")
        with store.current_state().engine.begin() as connection:
            past = datetime.now(UTC) - timedelta(minutes=1)
            connection.execute(
                update(TokenRow).where(TokenRow.name == "every-endpoint-expired").values(expires_at=past)
            )
    before = audit_count(module_app)
    session = module_app.test_client()
    login(session, admin)
    for op in api.OPERATIONS:
        if op.scope is None:
            continue
        path = op.path.format(**PATH_VALUES)
        body = {} if op.body else None
        for client, token in (
            (module_app.test_client(), None),
            (session, None),
            (session, revoked),
            (session, expired),
        ):
            assert Api(client, token)(op.method, path, body).status_code == 401, (op.method, path, token)
        status = Api(module_app.test_client(), read)(op.method, path, body).status_code
        assert (status == 403) == (op.scope == "write"), (op.method, path, status)
    assert audit_count(module_app) == before


# --- Reading ------------------------------------------------------------------------------------------------


def test_one_flag_shows_everything_stored_for_it(app, writer, make_user):
    make_user("pinned@example.com")
    writer("PUT", "/flags/NEW_CHECKOUT/weights", {"weights": {"ON": 30, "OFF": 70}})
    writer("PUT", "/flags/NEW_CHECKOUT/overrides/pinned@example.com", {"variant": "ON"})
    writer("POST", "/groups", {"name": "beta"})
    writer("PUT", "/flags/NEW_CHECKOUT/targets/beta", {"split": {"ON": 50, "OFF": 50}})
    writer("PUT", "/flags/NEW_CHECKOUT/prerequisites/MY_NEW_FEATURE", {"variant": "VISIBLE"})
    writer("POST", "/flags/NEW_CHECKOUT/schedules", {"when": "+1d", "action": "off"})
    flag = writer("GET", "/flags/NEW_CHECKOUT").get_json()
    assert flag["weights"] == {"ON": 30, "OFF": 70}
    assert [o["label"] for o in flag["overrides"]] == ["pinned@example.com"]
    assert flag["targets"] == [
        {"group": "beta", "variant": "ON=50 OFF=50", "split": {"ON": 50.0, "OFF": 50.0}}
    ]
    assert {(p["flag"], p["source"]) for p in flag["prerequisites"]} >= {("MY_NEW_FEATURE", "stored")}
    assert [s["action"] for s in flag["schedules"]] == ["off"]


def test_the_flag_list_gives_each_flags_state(writer):
    writer("PUT", "/flags/NEW_CHECKOUT/off", {})
    flags = {flag["name"]: flag for flag in writer("GET", "/flags").get_json()["flags"]}
    assert flags["NEW_CHECKOUT"]["off"] is True and flags["MY_NEW_FEATURE"]["off"] is False


def test_an_unknown_flag_is_a_404_problem(shared_writer):
    response = shared_writer("GET", "/flags/NO_SUCH_FLAG")
    assert response.status_code == 404 and "NO_SUCH_FLAG" in response.get_json()["detail"]


def test_an_unknown_endpoint_is_a_404_problem_not_the_apps_page(shared_writer):
    assert shared_writer("GET", "/nothing/here").status_code == 404


def test_the_audit_log_is_paged_and_filtered(writer):
    for variant in ("ON", "OFF", "ON"):
        writer("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": variant})
    page = writer("GET", "/audit?flag=NEW_CHECKOUT&per_page=2").get_json()
    assert (page["total"], page["pages"], len(page["entries"])) == (3, 2, 2)
    assert writer("GET", "/audit?actor=token:write-token&action=force").get_json()["total"] == 3


def test_a_user_look_up_says_what_each_flag_gives_them(writer, make_user):
    make_user("looked@example.com")
    writer("PUT", "/flags/NEW_CHECKOUT/overrides/looked@example.com", {"variant": "ON"})
    found = writer("GET", "/users/looked@example.com").get_json()
    rows = {row["flag"]: row for row in found["flags"]}
    assert (rows["NEW_CHECKOUT"]["variant"], rows["NEW_CHECKOUT"]["reason"]) == ("ON", "user_override")
    assert writer("GET", "/users/nobody@example.com").status_code == 404


def test_groups_segments_schedules_and_exposures_read_back(writer):
    writer("POST", "/groups", {"name": "staff", "description": "Our people"})
    writer("POST", "/segments", {"name": "corp", "description": "Company emails"})
    writer(
        "POST",
        "/segments/corp/conditions",
        {"attribute": "email", "operator": "ends_with", "value": "@corp.test"},
    )
    groups = {g["name"]: g["source"] for g in writer("GET", "/groups").get_json()["groups"]}
    assert groups == {"admins": "code", "staff": "stored"}
    assert writer("GET", "/groups/staff").get_json()["members"] == []
    segment = writer("GET", "/segments/corp").get_json()
    assert segment["conditions"] == [{"attribute": "email", "operator": "ends_with", "value": "@corp.test"}]
    assert writer("GET", "/schedules").get_json() == {"schedules": []}
    assert writer("GET", "/flags/HOMEPAGE_EXPERIMENT/exposures").get_json()["flag"] == "HOMEPAGE_EXPERIMENT"


# --- Refused changes write nothing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "MAYBE"}, 422),
        ("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON", "extra": 1}, 422),
        ("PUT", "/flags/NEW_CHECKOUT/forced", {}, 422),
        ("PUT", "/flags/NO_SUCH/forced", {"variant": "ON"}, 404),
        ("PUT", "/flags/NEW_CHECKOUT/weights", {"weights": {"ON": 50, "OFF": 40}}, 422),
        ("PUT", "/flags/NEW_CHECKOUT/overrides/nobody@example.com", {"variant": "ON"}, 404),
        ("PUT", "/flags/NEW_CHECKOUT/targets/no-group", {"variant": "ON"}, 404),
        ("PUT", "/flags/WELCOME_MESSAGE/values/SALE", {"value": 42}, 422),
        ("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON", "reason": "x" * 501}, 422),
        ("POST", "/flags/NEW_CHECKOUT/schedules", {"when": "yesterday", "action": "off"}, 422),
        ("POST", "/audit/999/undo", {}, 404),
    ],
)
def test_a_refused_change_is_a_problem_and_writes_nothing(
    module_app, shared_writer, method, path, body, status
):
    before = audit_count(module_app)
    response = shared_writer(method, path, body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["detail"]
    assert audit_count(module_app) == before


def test_a_body_that_is_not_json_is_a_400_problem(shared_writer):
    response = shared_writer.client.put(
        f"{API}/flags/NEW_CHECKOUT/forced",
        data="{not json",
        headers={"Authorization": f"Bearer {shared_writer.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.mimetype == "application/problem+json"


def test_a_prerequisite_circle_is_a_409(writer):
    writer("PUT", "/flags/NEW_CHECKOUT/prerequisites/MY_NEW_FEATURE", {"variant": "VISIBLE"})
    response = writer("PUT", "/flags/MY_NEW_FEATURE/prerequisites/NEW_CHECKOUT", {"variant": "ON"})
    assert response.status_code == 409


def test_creating_a_group_twice_is_a_409(writer):
    writer("POST", "/groups", {"name": "beta"})
    assert writer("POST", "/groups", {"name": "beta"}).status_code == 409


def test_deleting_a_group_that_has_members_is_a_409_and_keeps_it(app, writer, make_user):
    make_user("member@example.com")
    writer("POST", "/groups", {"name": "beta"})
    writer("POST", "/groups/beta/members", {"users": ["member@example.com"]})
    response = writer("DELETE", "/groups/beta")
    assert response.status_code == 409
    assert "remove them first" in response.get_json()["detail"]
    with app.app_context():
        assert "beta" in store.store.snapshot(max_age=0).groups


# --- Every other change -------------------------------------------------------------------------------------


def test_every_change_and_its_removal_goes_through(app, writer, make_user):
    """Each write endpoint changes what the dashboard would, and its DELETE puts it back."""
    make_user("member@example.com")
    steps: list[tuple[str, str, Any]] = [
        ("PUT", "/flags/NEW_CHECKOUT/off", {"reason": "incident"}),
        ("DELETE", "/flags/NEW_CHECKOUT/off?reason=fixed", None),
        ("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "OFF"}),
        ("DELETE", "/flags/NEW_CHECKOUT/forced", None),
        ("PUT", "/flags/NEW_CHECKOUT/weights", {"weights": {"ON": 25, "OFF": 75}}),
        ("DELETE", "/flags/NEW_CHECKOUT/weights", None),
        ("PUT", "/flags/WELCOME_MESSAGE/values/SALE", {"value": "Half price!"}),
        ("DELETE", "/flags/WELCOME_MESSAGE/values/SALE", None),
        ("PUT", "/flags/NEW_CHECKOUT/overrides/member@example.com", {"variant": "ON"}),
        ("DELETE", "/flags/NEW_CHECKOUT/overrides/member@example.com", None),
        ("POST", "/groups", {"name": "beta"}),
        ("PATCH", "/groups/beta", {"description": "Early birds"}),
        ("POST", "/groups/beta/members", {"users": ["member@example.com"]}),
        ("PUT", "/flags/NEW_CHECKOUT/targets/beta", {"variant": "ON"}),
        ("DELETE", "/flags/NEW_CHECKOUT/targets/beta", None),
        ("DELETE", "/groups/beta/members/member@example.com", None),
        ("PUT", "/flags/NEW_CHECKOUT/prerequisites/MY_NEW_FEATURE", {"variant": "VISIBLE"}),
        ("DELETE", "/flags/NEW_CHECKOUT/prerequisites/MY_NEW_FEATURE", None),
        ("POST", "/segments", {"name": "corp"}),
        (
            "POST",
            "/segments/corp/conditions",
            {"attribute": "email", "operator": "ends_with", "value": "@c.test"},
        ),
        ("DELETE", "/segments/corp/conditions/1", None),
        ("DELETE", "/segments/corp", None),
        ("POST", "/groups", {"name": "gone"}),
        ("DELETE", "/groups/gone?reason=unused", None),
    ]
    for method, path, body in steps:
        response = writer(method, path, body)
        assert response.status_code in (200, 201), (path, response.get_json())
        assert response.get_json()["changed"] is True, (method, path)
    with app.app_context():
        snapshot = store.store.snapshot(max_age=0)
        assert not (snapshot.disabled or snapshot.forced or snapshot.weights or snapshot.values)
        assert not (snapshot.user_overrides or snapshot.group_targets or snapshot.prerequisites)
        assert snapshot.groups == {"beta": "Early birds"} and not snapshot.segments


def test_a_scheduled_change_can_be_cancelled(writer):
    made = writer(
        "POST", "/flags/NEW_CHECKOUT/schedules", {"when": "+2h", "action": "force", "arguments": ["ON"]}
    )
    assert made.status_code == 201
    schedule_id = writer("GET", "/schedules?flag=NEW_CHECKOUT").get_json()["schedules"][0]["id"]
    assert writer("DELETE", f"/flags/NEW_CHECKOUT/schedules/{schedule_id}").get_json()["changed"] is True


def test_a_change_can_be_undone(app, writer):
    entry = writer("PUT", "/flags/NEW_CHECKOUT/forced", {"variant": "ON"}).get_json()["change"]
    undone = writer("POST", f"/audit/{entry['id']}/undo", {"reason": "too early"}).get_json()
    assert undone["change"]["action"] == "unforce"
    with app.app_context():
        assert store.store.snapshot(max_age=0).forced == {}


# --- The document -------------------------------------------------------------------------------------------


def test_the_openapi_document_lists_every_operation_with_its_schemas(module_app):
    document = module_app.test_client().get(f"{API}/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert listed == {(op.method, op.path) for op in api.OPERATIONS}
    assert document["paths"]["/flags/{flag}/forced"]["put"]["requestBody"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/VariantBody"}
    jsonschema.Draft202012Validator.check_schema({"components": document["components"]})
