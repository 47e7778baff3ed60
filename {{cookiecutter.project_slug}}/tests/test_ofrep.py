"""The OFREP server (gatekeeper_control/ofrep.py) through the test client: answers as the in-process
OpenFeature provider gives them, the protocol's error codes and statuses, ETag and 304, client keys, the
session's own user, CORS and the rate limit. Every answer to a POST is validated against the protocol's
OpenAPI document (tests/ofrep_validation.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from {{ cookiecutter.package_name }}.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, flag_evaluated
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control import tokens
from {{ cookiecutter.package_name }}.gatekeeper_control.exposures import exposures
from {{ cookiecutter.package_name }}.gatekeeper_control.openfeature import GatekeeperProvider
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from {{ cookiecutter.package_name }}.models import User
from tests.conftest import add_user
from tests.ofrep_validation import validate

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}


class PriceFFConfig(FeatureFlagConfig):
    FLAG_NAME = "PRICE"
    VARIANTS_ENUM_STR = "LOW HIGH"
    DEFAULT_VARIANT = "LOW"
    VALUES = {"LOW": 1.5, "HIGH": 2.25}  # noqa: RUF012 (read only)


class SeatsFFConfig(FeatureFlagConfig):
    FLAG_NAME = "SEATS"
    VARIANTS_ENUM_STR = "FEW MANY"
    DEFAULT_VARIANT = "FEW"
    VALUES = {"FEW": 3, "MANY": 30}  # noqa: RUF012
    METADATA = {"team": "core", "rank": 2}  # noqa: RUF012


class ThemeFFConfig(FeatureFlagConfig):
    FLAG_NAME = "THEME"
    VARIANTS_ENUM_STR = "LIGHT DARK"
    DEFAULT_VARIANT = "LIGHT"
    VALUES = {"LIGHT": {"color": "white"}, "DARK": {"color": "black"}}  # noqa: RUF012


class ByEmailFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BY_EMAIL"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
        return "ON" if str(context.get("email", "")).endswith("@example.com") else "OFF"


class NoMatchFFConfig(FeatureFlagConfig):
    FLAG_NAME = "NO_MATCH"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return None


class BrokenRuleFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BROKEN_RULE"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        raise RuntimeError("boom")


EXTRA_FLAGS = (PriceFFConfig, SeatsFFConfig, ThemeFFConfig, ByEmailFFConfig, NoMatchFFConfig)


@pytest.fixture
def flags(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """`flags(Config, ...)`: the app also has these flags until the test ends."""

    def add(*configs: type[FeatureFlagConfig]) -> None:
        for config in configs:
            monkeypatch.setitem(FF_CONFIG_MAP, config.FLAG_NAME, config())

    return add


# Most tests share one app (an app per test costs more than the test): each makes its own key, and those
# that change what a flag serves make their own app.


@pytest.fixture(scope="module")
def people(module_app: Flask) -> dict[str, User]:
    return {
        "admin": add_user(module_app, "admin@example.com", user_id=1, is_admin=True),
        "user": add_user(module_app, "user@example.com", user_id=42),
    }


@pytest.fixture
def app(module_app: Flask) -> Flask:
    return module_app


@pytest.fixture
def user(people: dict[str, User]) -> User:
    return people["user"]


@pytest.fixture
def admin(people: dict[str, User]) -> User:
    return people["admin"]


def make_key(app: Flask, name: str | None = None, scope: str = "evaluate") -> str:
    with app.app_context():
        return tokens.create_token(name or f"key-{uuid.uuid4().hex[:12]}", scope, actor="test")[1]


@pytest.fixture
def key(app: Flask) -> str:
    return make_key(app)


def post(
    client: FlaskClient,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    prefix: str = "/ofrep",
) -> Any:
    """POST `body` (JSON) to an OFREP `path`, with `key` as a bearer token; the answer is validated against
    the protocol's document (`path` is the document's: /ofrep/v1/...)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body)
    url = prefix + path.removeprefix("/ofrep")
    response = client.post(url, data=data, headers=sent, content_type="application/json")
    validate(path, body, response, sent)
    return response


def context(key: str | None = "7", **attributes: Any) -> dict[str, Any]:
    return {"context": {**({"targetingKey": key} if key is not None else {}), **attributes}}


# -- answers, exactly as the in-process provider gives them ------------------------------------------------


@pytest.fixture
def in_process(app: Flask) -> Iterator[Callable[..., dict[str, Any]]]:
    """`in_process(flag, kind, default, targeting_key, **attributes)`: what the in-process provider answers,
    in OFREP's words."""
    api.set_provider(GatekeeperProvider(app), domain="ofrep-tests")
    client = api.get_client("ofrep-tests")

    def ask(flag: str, kind: str, default: Any, key: str, **attributes: Any) -> dict[str, Any]:
        method = getattr(client, f"get_{kind}_details")
        with app.app_context():
            details = method(flag, default, EvaluationContext(key, attributes))
        return {"key": flag, "value": details.value, "variant": details.variant, "reason": details.reason}

    yield ask
    api.clear_providers()


@pytest.mark.parametrize(
    ("flag", "kind", "default"),
    [
        ("MY_NEW_FEATURE", "boolean", True),
        ("WELCOME_MESSAGE", "string", ""),
        ("SEATS", "integer", 0),
        ("PRICE", "float", 0.0),
        ("THEME", "object", {}),
        ("HOMEPAGE_EXPERIMENT", "string", ""),
    ],
)
def test_each_type_answers_what_the_in_process_provider_gives(
    client, key, flags, in_process, flag, kind, default
):
    """For a key and a context, value, variant and reason are the in-process provider's, for every type."""
    flags(*EXTRA_FLAGS)
    answer = post(client, SINGLE.format(flag), context("7"), key=key)
    assert answer.status_code == 200
    got = {name: answer.json.get(name) for name in ("key", "value", "variant", "reason")}
    assert got == in_process(flag, kind, default, "7")


def test_targeting_reads_the_contexts_attributes(client, key, flags, in_process):
    """Attributes other than targetingKey are the evaluation context that rules and segments see."""
    flags(ByEmailFFConfig)
    ann = post(client, SINGLE.format("BY_EMAIL"), context("7", email="ann@example.com"), key=key).json
    bob = post(client, SINGLE.format("BY_EMAIL"), context("8", email="bob@elsewhere.org"), key=key).json
    assert (ann["value"], bob["value"]) == (True, False)
    assert ann["variant"] == in_process("BY_EMAIL", "boolean", False, "7", email="ann@example.com")["variant"]


def test_a_rule_that_matches_nobody_is_unknown_the_one_reason_ofrep_lacks(client, key, flags, in_process):
    """In-process DEFAULT (a rule matched nobody) is UNKNOWN over OFREP, whose reasons have no DEFAULT; the
    value and variant are the same."""
    flags(NoMatchFFConfig)
    answer = post(client, SINGLE.format("NO_MATCH"), context("7"), key=key).json
    expected = in_process("NO_MATCH", "boolean", True, "7")
    assert expected["reason"] == "DEFAULT"
    assert (answer["value"], answer["variant"], answer["reason"]) == (expected["value"], "OFF", "UNKNOWN")


def test_a_switched_off_flag_is_disabled_and_defers_to_the_callers_default(make_app):
    """Off at runtime: reason DISABLED and no value, so the client uses its own default (codeDefaultFlag)."""
    app = make_app()
    client, key = app.test_client(), make_key(app)
    with app.app_context():
        store.switch_off("MY_NEW_FEATURE", "test")
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), context("1"), key=key).json
    assert answer == {"key": "MY_NEW_FEATURE", "reason": "DISABLED", "variant": "NOT_VISIBLE"}


def test_flag_metadata_is_the_flags_metadata(client, key, flags):
    flags(SeatsFFConfig)
    answer = post(client, SINGLE.format("SEATS"), context("7"), key=key).json
    assert answer["metadata"] == {"team": "core", "rank": 2}


# -- errors: the protocol's codes and statuses ---------------------------------------------------------------


def test_an_unknown_flag_is_404_flag_not_found(client, key):
    answer = post(client, SINGLE.format("NO_SUCH_FLAG"), context("7"), key=key)
    assert answer.status_code == 404
    assert (answer.json["key"], answer.json["errorCode"]) == ("NO_SUCH_FLAG", "FLAG_NOT_FOUND")


def test_a_body_that_is_not_json_is_400_parse_error(client, key):
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), raw=b"{not json", key=key)
    assert (answer.status_code, answer.json["errorCode"]) == (400, "PARSE_ERROR")


def test_a_body_over_64_kb_is_400_parse_error(client, key):
    body = context("7", padding="x" * 70_000)
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), body, key=key)
    assert (answer.status_code, answer.json["errorCode"]) == (400, "PARSE_ERROR")


@pytest.mark.parametrize("body", [[1, 2], {"context": "7"}, {"context": {"targetingKey": 7}}])
def test_a_context_that_is_not_an_object_with_a_text_key_is_400_invalid_context(client, key, body):
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), body, key=key)
    assert (answer.status_code, answer.json["errorCode"]) == (400, "INVALID_CONTEXT")


def test_a_key_without_a_targeting_key_is_400_targeting_key_missing(client, key):
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), context(None, email="a@example.com"), key=key)
    assert (answer.status_code, answer.json["errorCode"]) == (400, "TARGETING_KEY_MISSING")


def test_a_failing_rule_is_400_general_and_a_failed_item_in_bulk(client, key, flags, caplog):
    flags(BrokenRuleFFConfig)
    single = post(client, SINGLE.format("BROKEN_RULE"), context("7"), key=key)
    assert (single.status_code, single.json["errorCode"]) == (400, "GENERAL")
    items = {item["key"]: item for item in post(client, BULK, context("7"), key=key).json["flags"]}
    assert items["BROKEN_RULE"]["errorCode"] == "GENERAL"
    assert items["MY_NEW_FEATURE"]["variant"] == "NOT_VISIBLE"  # the others still answer


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not utf-8",
        b"[" * 5000 + b"]" * 5000,
        json.dumps(context("9" * 40)).encode(),  # an id past any integer column
        json.dumps(context("\u0663\u0664")).encode(),  # digits, but not ASCII ones
        json.dumps(context("x" * 500, email=["not", "text"], nested={"a": [{"b": None}]})).encode(),
        json.dumps(context("7", targetingKey2=1e308, big=10**300)).encode(),
    ],
)
def test_hostile_bodies_never_get_a_500(client, key, flags, raw):
    """Odd bodies get a protocol error or an answer; never a server error."""
    flags(ByEmailFFConfig)
    for path in (BULK, SINGLE.format("BY_EMAIL")):
        answer = post(client, path, raw=raw, key=key)
        assert answer.status_code in (200, 400), answer.get_data(as_text=True)


# -- who may ask ---------------------------------------------------------------------------------------------


def test_no_key_and_no_same_origin_browser_is_401(client):
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), context("7"))
    assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers


def test_credentials_are_checked_before_the_body(client):
    """Without a key or a same-origin session, even a malformed body gets 401, not a parse error."""
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), raw=b"{not json", key="gk_not-a-key")
    assert answer.status_code == 401
    assert post(client, BULK, raw=b"{not json").status_code == 401


def test_the_key_may_come_in_x_api_key(client, key):
    answer = post(client, SINGLE.format("MY_NEW_FEATURE"), context("1"), headers={"X-API-Key": key})
    assert (answer.status_code, answer.json["variant"]) == (200, "VISIBLE")


def test_a_revoked_key_is_refused_at_once(app, client):
    key = make_key(app, "to-revoke")
    assert post(client, BULK, context("7"), key=key).status_code == 200
    with app.app_context():
        tokens.revoke_token("to-revoke", actor="test")
    assert post(client, BULK, context("7"), key=key).status_code == 401


def test_an_admin_api_token_is_not_a_client_key(app, client):
    """Tokens of scope read or write are for the admin API: OFREP wants scope evaluate."""
    token = make_key(app, scope="write")
    assert post(client, BULK, context("7"), key=token).status_code == 401


def test_the_app_wide_csrf_check_does_not_apply(make_app):
    """With CSRFProtect on (as in production), a client with a key needs no CSRF token."""
    app = make_app(WTF_CSRF_ENABLED=True)
    answer = post(app.test_client(), BULK, context("7"), key=make_key(app))
    assert answer.status_code == 200


def test_a_session_evaluates_for_its_own_user_whatever_the_body_says(client, user, login):
    """Same origin, signed in: the user's own variant, and attributes from the session, not the body."""
    login(client, user)
    answer = post(client, BULK, context(None, email="x@team.example"), headers=SAME_ORIGIN)
    assert answer.status_code == 200
    own = post(client, BULK, context(str(user.id)), headers=SAME_ORIGIN)
    assert own.status_code == 200 and own.json == answer.json


def test_a_session_cannot_claim_another_user(client, user, admin, login):
    login(client, user)
    answer = post(client, BULK, context(str(admin.id)), headers=SAME_ORIGIN)
    assert (answer.status_code, answer.json["errorCode"]) == (403, "INVALID_CONTEXT")
    single = post(client, SINGLE.format("NEW_CHECKOUT"), context(str(admin.id)), headers=SAME_ORIGIN)
    assert single.status_code == 403


def test_an_anonymous_visitor_cannot_claim_a_user_either(client):
    assert post(client, BULK, context("1"), headers=SAME_ORIGIN).status_code == 403
    assert post(client, BULK, context(None), headers=SAME_ORIGIN).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
        {"Origin": "https://evil.example"},
    ],
)
def test_a_session_from_another_origin_is_401(client, user, login, headers):
    login(client, user)
    assert post(client, BULK, context(None), headers=headers).status_code == 401


def test_a_browser_gets_only_client_side_flags(client, user, login, key):
    """The session's bulk answer holds CLIENT_SIDE flags only; another flag is not found, even if named;
    a key from a browser (Origin) gets no more, while a server's key gets every flag."""
    login(client, user)
    bulk = post(client, BULK, context(None), headers=SAME_ORIGIN).json
    assert [item["key"] for item in bulk["flags"]] == ["NEW_CHECKOUT"]
    hidden = post(client, SINGLE.format("MY_NEW_FEATURE"), context(None), headers=SAME_ORIGIN)
    assert (hidden.status_code, hidden.json["errorCode"]) == (404, "FLAG_NOT_FOUND")
    from_page = post(client, BULK, context("7"), key=key, headers={"Origin": "https://app.example"}).json
    assert [item["key"] for item in from_page["flags"]] == ["NEW_CHECKOUT"]
    server = post(client, BULK, context("7"), key=key).json
    assert {item["key"] for item in server["flags"]} == set(FF_CONFIG_MAP)


# -- bulk: ETag and 304 --------------------------------------------------------------------------------------


def test_bulk_sends_an_etag_and_304_while_nothing_changed(make_app):
    app = make_app()
    client, key = app.test_client(), make_key(app)
    first = post(client, BULK, context("42"), key=key)
    etag = first.headers["ETag"]
    again = post(client, BULK, context("42"), key=key, headers={"If-None-Match": etag})
    assert (again.status_code, again.get_data()) == (304, b"")
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "test")
    changed = post(client, BULK, context("42"), key=key, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_answers_are_never_cached(client, key):
    answer = post(client, BULK, context("7"), key=key)
    assert answer.headers["Cache-Control"] == "no-store"


# -- exposures and flag_evaluated, as ff() -------------------------------------------------------------------


def test_evaluations_fire_flag_evaluated_and_are_exposures(make_app):
    app = make_app()
    client, key = app.test_client(), make_key(app)
    seen: list[tuple[str, str, Any]] = []

    def note(sender: Any, flag: str, variant: str, reason: str, user_id: Any, **_: Any) -> None:
        seen.append((flag, variant, user_id))

    with flag_evaluated.connected_to(note, app):
        post(client, SINGLE.format("MY_NEW_FEATURE"), context("1"), key=key)
    assert seen == [("MY_NEW_FEATURE", "VISIBLE", 1)]
    with app.app_context():
        exposures.recorder().flush()
        report = exposures.recorder().report("MY_NEW_FEATURE", FF_CONFIG_MAP["MY_NEW_FEATURE"])
    assert report.total == 1


# -- cross-origin pages, the rate limit, the prefix ----------------------------------------------------------


def test_cors_origins_are_none_by_default(client):
    preflight = client.options(BULK, headers={"Origin": "https://app.example"})
    assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers


def test_a_listed_origin_passes_the_preflight_and_reads_the_etag(make_app):
    app = make_app(GATEKEEPER_OFREP_CORS_ORIGINS=("https://app.example",))
    client = app.test_client()
    preflight = client.options(
        BULK,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    answer = post(client, BULK, context("7"), key=make_key(app), headers={"Origin": "https://app.example"})
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer.headers  # another site never uses the session


def test_past_the_rate_limit_is_429_with_retry_after(make_app):
    app = make_app(RATELIMIT_ENABLED=True, GATEKEEPER_OFREP_RATE_LIMIT="2 per minute")
    client, key = app.test_client(), make_key(app)
    statuses = [post(client, BULK, context("7"), key=key).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = post(client, SINGLE.format("MY_NEW_FEATURE"), context("7"), key=key)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    other = make_key(app)  # counted per key
    assert post(client, BULK, context("7"), key=other).status_code == 200


def test_the_prefix_is_a_setting(make_app):
    app = make_app(GATEKEEPER_OFREP_PREFIX="/api/ofrep")
    client, key = app.test_client(), make_key(app)
    answer = post(client, BULK, context("7"), key=key, prefix="/api/ofrep")
    assert answer.status_code == 200
    assert client.post(BULK, json=context("7"), headers={"X-API-Key": key}).status_code == 404


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEKEEPER_OFREP_PREFIX", "/api/flags"),
        ("GATEKEEPER_OFREP_CORS_ORIGINS", "https://app.example/"),
        ("GATEKEEPER_OFREP_CORS_ORIGINS", "app.example"),
        ("GATEKEEPER_OFREP_RATE_LIMIT", "often"),
    ],
)
def test_a_bad_ofrep_setting_stops_the_app_saying_what_to_write(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(str(tmp_path), {"SECRET_KEY": "x", name: value})


def test_cors_origins_are_read_comma_separated(tmp_path):
    environ = {"SECRET_KEY": "x", "GATEKEEPER_OFREP_CORS_ORIGINS": "https://a.example, http://b.example:8080"}
    settings = Settings.from_env(str(tmp_path), environ)
    assert settings.GATEKEEPER_OFREP_CORS_ORIGINS == ("https://a.example", "http://b.example:8080")
