"""A bare Flask app with gatekeeper and nothing else, so the engine is tested apart from the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from flask import Flask, render_template, request, session

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig


@dataclass
class FakeUser:
    id: int
    is_admin: bool = False
    is_authenticated: bool = True


ADMIN = FakeUser(1, is_admin=True)
MEMBER = FakeUser(42)
USERS = {ADMIN.id: ADMIN, MEMBER.id: MEMBER}


@dataclass
class StaticStore:
    """The smallest store the engine accepts: a `snapshot()` with forced variants and user overrides."""

    forced: dict[str, str] = field(default_factory=dict)
    user_overrides: dict[str, dict[str, str]] = field(default_factory=dict)

    def snapshot(self) -> StaticStore:
        return self


class OnOff(FeatureFlagConfig):
    FLAG_NAME = "ON_OFF"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"
    DESCRIPTION = "On for user 7, off for everyone else."

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(overrides)
        self.calls = 0

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        self.calls += 1
        return self.variants_enum.ON if user_id == 7 else self.variants_enum.OFF


class Broken(FeatureFlagConfig):
    FLAG_NAME = "BROKEN"
    VARIANTS_ENUM_STR = "NEW OLD"
    DEFAULT_VARIANT = "OLD"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        raise RuntimeError("the rule has a bug")


class Confused(FeatureFlagConfig):
    FLAG_NAME = "CONFUSED"
    VARIANTS_ENUM_STR = "YES NO"
    DEFAULT_VARIANT = "NO"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return "MAYBE"


class Half(FeatureFlagConfig):
    FLAG_NAME = "HALF"
    VARIANTS_ENUM_STR = "IN OUT"
    DEFAULT_VARIANT = "OUT"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.rollout(user_id, {"IN": 50, "OUT": 50})


def flags() -> dict[str, FeatureFlagConfig]:
    return {"ON_OFF": OnOff(), "BROKEN": Broken(), "CONFUSED": Confused(), "HALF": Half()}


def make_app(
    config_map: Mapping[str, FeatureFlagConfig] | None = None,
    *,
    store: Any = None,
    testing: bool = True,
    debug: bool = False,
    **options: Any,
) -> Flask:
    """A Flask app whose logged-in user is `session["uid"]`, with a few flag-reading routes."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="bare-app-secret", TESTING=testing)
    app.debug = debug
    gatekeeper.init_app(
        app,
        config_map if config_map is not None else flags(),
        store=store,
        user_loader=lambda: USERS.get(session.get("uid")),
        **options,
    )

    @app.get("/explain/<flag>")
    def explain(flag: str) -> str:
        evaluation = request.gk.explain(flag)
        return f"{evaluation.variant} {evaluation.reason}"

    @app.get("/ff")
    def ff() -> str:
        return str(request.gk.ff(request.args.get("flag", ""), request.args.get("variant", "")))

    @app.get("/template/<flag>/<variant>")
    def template(flag: str, variant: str) -> str:
        return render_template("flags.txt", flag=flag, variant=variant).strip()

    return app


def log_in(client: Any, user: FakeUser) -> None:
    with client.session_transaction() as data:
        data["uid"] = user.id


def override_cookie(app: Flask, overrides: Mapping[str, str]) -> str:
    """The value of a browser-override cookie signed by `app`, made through the public API."""
    with app.test_request_context():
        response = gatekeeper.write_browser_overrides(app.response_class(), overrides)
    return cookies_set(response)[gatekeeper.OVERRIDE_COOKIE].value


def cookies_set(response: Any) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        jar.load(header)
    return jar
