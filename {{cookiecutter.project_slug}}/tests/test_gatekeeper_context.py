"""The evaluation context: who a flag is for, as an id plus attributes, given to rules that declare a
`context` parameter; built once per request, only when a rule asks, from the user by a context loader."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig

SEEN: list[Any] = []


class ByContextFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BY_CONTEXT"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
        SEEN.append(dict(context))
        return "ON" if context.get("plan") == "pro" else None


class AlsoByContextFFConfig(ByContextFFConfig):
    FLAG_NAME = "ALSO_BY_CONTEXT"


class SeedRuleFFConfig(FeatureFlagConfig):
    FLAG_NAME = "SEED_RULE"
    VARIANTS_ENUM_STR = "ON OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.ON if user_id == 7 else self.variants_enum.OFF


FLAGS = {
    "BY_CONTEXT": ByContextFFConfig(),
    "ALSO_BY_CONTEXT": AlsoByContextFFConfig(),
    "SEED_RULE": SeedRuleFFConfig(),
}
PRO_USER = {"id": 7, "email": "pro@example.com", "plan": "pro", "password_hash": "secret", "is_admin": False}


@pytest.fixture(autouse=True)
def forget_contexts():
    SEEN.clear()


def bare_app(**init: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="context", **init.pop("config", {}))
    gatekeeper.init_app(app, FLAGS, user_loader=lambda: PRO_USER, **init)

    @app.get("/flags/<names>")
    def flags(names: str) -> str:
        return " ".join(request.gk.ff_variant(name) for name in names.split(","))

    return app


def test_by_default_the_context_holds_the_key_email_and_is_admin():
    """The default loader reads GATEKEEPER_CONTEXT_ATTRIBUTES (email, is_admin) from the user."""
    bare_app().test_client().get("/flags/BY_CONTEXT")
    assert SEEN == [{"key": "7", "email": "pro@example.com", "is_admin": False}]


def test_the_context_never_holds_an_attribute_nobody_named():
    """No password hash (nor any attribute the setting does not name) reaches a rule."""
    bare_app().test_client().get("/flags/BY_CONTEXT")
    assert "password_hash" not in SEEN[0]
    assert "plan" not in SEEN[0]


def test_the_setting_names_the_attributes():
    client = bare_app(config={"GATEKEEPER_CONTEXT_ATTRIBUTES": ["plan"]}).test_client()
    assert client.get("/flags/BY_CONTEXT").text == "ON"
    assert SEEN == [{"key": "7", "plan": "pro"}]


def test_a_context_loader_decides_what_rules_see():
    loader = lambda user: {"plan": user["plan"], "domain": user["email"].split("@")[1]}  # noqa: E731
    bare_app(context_loader=loader).test_client().get("/flags/BY_CONTEXT")
    assert SEEN == [{"key": "7", "plan": "pro", "domain": "example.com"}]


def test_the_context_is_built_once_per_request():
    calls = []

    def loader(user):
        calls.append(user["id"])
        return {"plan": user["plan"]}

    client = bare_app(context_loader=loader).test_client()
    assert client.get("/flags/BY_CONTEXT,ALSO_BY_CONTEXT").text == "ON ON"
    assert calls == [7]


def test_the_context_is_not_built_when_no_rule_asks_for_it():
    """A request that checks only rules with the seed's signature never calls the loader."""
    calls = []
    client = bare_app(context_loader=lambda user: calls.append(user) or {}).test_client()
    assert client.get("/flags/SEED_RULE").text == "ON"
    assert calls == []


def test_the_app_adds_request_attributes():
    """`request.gk.add_context(...)` in a before-request hook reaches the rules of that request."""
    app = bare_app()
    app.before_request(lambda: request.gk.add_context(plan=request.args.get("plan")))
    assert app.test_client().get("/flags/BY_CONTEXT?plan=pro").text == "ON"
    assert app.test_client().get("/flags/BY_CONTEXT?plan=free").text == "OFF"


def test_a_broken_context_loader_leaves_the_key_alone(caplog):
    """A loader that raises is logged once; rules see just the key, never an error."""

    def broken(user):
        raise RuntimeError("no profile service")

    client = bare_app(context_loader=broken).test_client()
    assert client.get("/flags/BY_CONTEXT").text == "OFF"
    assert SEEN == [{"key": "7"}]
    assert "context_loader raised" in caplog.text
