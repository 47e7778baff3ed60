"""Evaluation order, reasons, defaults, memoisation and the mistakes that are loud or quiet."""

import logging

import pytest
from flask import Flask

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, FlagConfigError, Gatekeeper
from tests.bare_app import ADMIN, MEMBER, OnOff, StaticStore, log_in, make_app, override_cookie


def explain_for(app: Flask, user_id: object, flag: str = "ON_OFF") -> tuple[str, str]:
    with app.app_context():
        evaluation = Gatekeeper(user_id=user_id, app=app).explain(flag)
    return evaluation.variant, evaluation.reason


def test_rule_decides_when_nothing_overrides_it():
    """With no override anywhere, the config's rule picks the variant and says so."""
    app = make_app()
    assert explain_for(app, 7) == ("ON", "rule")
    assert explain_for(app, 8) == ("OFF", "rule")


def test_code_override_beats_the_rule():
    """`overrides` in code pin a user whatever the rule says."""
    app = make_app({"ON_OFF": OnOff(overrides={"OFF": [7]})})
    assert explain_for(app, 7) == ("OFF", "user_override")


def test_stored_user_override_beats_code_override():
    """A per-user override from the store (the dashboard) wins over `overrides` in code."""
    store = StaticStore(user_overrides={"ON_OFF": {"7": "ON"}})
    app = make_app({"ON_OFF": OnOff(overrides={"OFF": [7]})}, store=store)
    assert explain_for(app, 7) == ("ON", "user_override")


def test_forced_variant_beats_user_overrides():
    """A variant forced for everyone (the kill switch) wins over per-user overrides."""
    store = StaticStore(forced={"ON_OFF": "OFF"}, user_overrides={"ON_OFF": {"7": "ON"}})
    app = make_app(store=store)
    assert explain_for(app, 7) == ("OFF", "forced")


def test_browser_override_beats_a_forced_variant():
    """An admin's own browser override wins over everything, so they can test past a kill switch."""
    app = make_app(store=StaticStore(forced={"ON_OFF": "OFF"}))
    client = app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(gatekeeper.OVERRIDE_COOKIE, override_cookie(app, {"ON_OFF": "ON"}))
    assert client.get("/explain/ON_OFF").text == "ON browser_override"


def test_stale_stored_overrides_are_ignored():
    """Stored overrides naming a variant that no longer exists fall through to the rule."""
    store = StaticStore(forced={"ON_OFF": "GONE"}, user_overrides={"ON_OFF": {"7": "GONE"}})
    assert explain_for(make_app(store=store), 7) == ("ON", "rule")


def test_a_rule_that_raises_serves_the_default_and_logs_the_flag(caplog):
    """A bug in a rule gives DEFAULT_VARIANT and an error log naming the flag; the page still renders."""
    app = make_app()
    with caplog.at_level(logging.ERROR, logger=gatekeeper.__name__):
        response = app.test_client().get("/explain/BROKEN")
    assert response.status_code == 200
    assert response.text == "OLD default"
    assert "BROKEN" in caplog.text


def test_a_rule_returning_a_non_variant_serves_the_default(caplog):
    """A rule returning something that is not one of its variants gives DEFAULT_VARIANT and a log."""
    app = make_app()
    with caplog.at_level(logging.ERROR, logger=gatekeeper.__name__):
        assert explain_for(app, 1, "CONFUSED") == ("NO", "default")
    assert "CONFUSED" in caplog.text and "MAYBE" in caplog.text


def test_a_rule_may_return_a_variant_name():
    """Returning the variant's name as a string is as good as returning the enum member."""

    class ByName(FeatureFlagConfig):
        FLAG_NAME = "BY_NAME"
        VARIANTS_ENUM_STR = "ON OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return "ON"

    assert explain_for(make_app({"BY_NAME": ByName()}), 1, "BY_NAME") == ("ON", "rule")


class ReorderedArguments(FeatureFlagConfig):
    FLAG_NAME = "OWN_SIGNATURE"
    VARIANTS_ENUM_STR = "ON OFF"

    def _get_variant(self, session=None, request=None, app=None, user_id=None):
        return "ON" if user_id == 7 and isinstance(app, Flask) and request is None else "OFF"


class KeywordArguments(FeatureFlagConfig):
    FLAG_NAME = "OWN_SIGNATURE"
    VARIANTS_ENUM_STR = "ON OFF"

    def _get_variant(self, user_id=None, **arguments):
        return "ON" if user_id == 7 and isinstance(arguments["app"], Flask) else "OFF"


@pytest.mark.parametrize("config_class", [ReorderedArguments, KeywordArguments])
def test_a_rule_with_its_own_signature_gets_each_argument_by_name(config_class):
    """The seed's signature is called positionally (it is faster); any other gets user_id, app, request
    and session by name, as it always did."""
    app = make_app({"OWN_SIGNATURE": config_class()})
    assert explain_for(app, 7, "OWN_SIGNATURE") == ("ON", "rule")
    assert explain_for(app, 8, "OWN_SIGNATURE") == ("OFF", "rule")


def test_each_flag_is_evaluated_once_per_request():
    """Twenty checks of one flag in a request run its rule once and agree with each other."""
    config = OnOff()
    app = make_app({"ON_OFF": config})

    @app.get("/twenty")
    def twenty() -> str:
        from flask import request

        return str({request.gk.ff("ON_OFF", "ON") for _ in range(20)} | {request.gk.ff_variant("ON_OFF")})

    app.test_client().get("/twenty")
    assert config.calls == 1
    app.test_client().get("/twenty")
    assert config.calls == 2


def test_flag_evaluated_signal_fires_once_per_flag_per_request():
    """The exposure signal carries flag, variant, reason and user, once per flag per request."""
    app = make_app()
    seen = []

    def record(sender, **extra):
        seen.append(extra)

    client = app.test_client()
    log_in(client, MEMBER)
    with gatekeeper.flag_evaluated.connected_to(record, app):
        client.get("/template/ON_OFF/ON")
    assert seen == [{"flag": "ON_OFF", "variant": "OFF", "reason": "rule", "user_id": MEMBER.id}]


def test_a_receiver_written_as_in_the_readme_gets_each_exposure():
    """`record_exposure(app, flag, variant, reason, user_id)`, the README's receiver, is called by name."""
    app = make_app()
    seen = []

    def record_exposure(app, flag, variant, reason, user_id):
        seen.append((app.name, flag, variant, reason, user_id))

    with gatekeeper.flag_evaluated.connected_to(record_exposure, app):
        app.test_client().get("/ff?flag=ON_OFF&variant=ON")
    assert seen == [(app.name, "ON_OFF", "OFF", "rule", None)]


def test_unknown_flag_raises_in_testing():
    """A typo in a flag name fails the test that makes it, with the fix in the message."""
    app = make_app()
    with app.app_context(), pytest.raises(gatekeeper.UnknownFlagError, match="ON_OF"):
        Gatekeeper(app=app).ff("ON_OF", "ON")  # gk: ignore (a typo on purpose)


def test_unknown_variant_raises_in_debug():
    """A typo in a variant name is loud while developing, and lists the real variants."""
    app = make_app(testing=False, debug=True)
    with app.app_context(), pytest.raises(gatekeeper.UnknownFlagError, match="ON, OFF"):
        Gatekeeper(app=app).ff("ON_OFF", "ONN")  # gk: ignore (a typo on purpose)


def test_unknown_flag_or_variant_warns_and_answers_false_in_production(caplog):
    """In production a typo logs one warning and answers False instead of breaking the page."""
    app = make_app(testing=False)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger=gatekeeper.__name__):
        assert client.get("/ff?flag=NOPE&variant=ON").text == "False"
        assert client.get("/ff?flag=NOPE&variant=ON").text == "False"
        assert client.get("/ff?flag=ON_OFF&variant=ONN").text == "False"
    assert caplog.text.count("NOPE") == 1
    assert "ONN" in caplog.text


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        ({"FLAG_NAME": "OTHER"}, "FLAG_NAME is 'OTHER'"),
        ({"DEFAULT_VARIANT": "ONN"}, "DEFAULT_VARIANT 'ONN' is not one of ON, OFF"),
    ],
)
def test_configs_are_validated_when_the_app_starts(declare, message):
    """init_app refuses a config that cannot work, naming the flag and what to change."""
    config_class = type("Bad", (OnOff,), declare)
    with pytest.raises(FlagConfigError, match=message) as error:
        make_app({"ON_OFF": config_class()})
    assert str(error.value).startswith("ON_OFF")


@pytest.mark.parametrize(
    ("variants", "overrides", "message"),
    [
        ("ON ON OFF", None, "ON is listed twice"),
        ("", None, "must list variant names"),
        ("ON OFF", {"MAYBE": [1]}, "overrides name variant 'MAYBE'"),
        ("ON OFF", {"ON": [1], "OFF": [1]}, "user 1 is in overrides for two variants"),
    ],
)
def test_broken_variant_declarations_fail_at_import(variants, overrides, message):
    """Duplicate or missing variants and overrides naming no variant are refused with the flag's name."""
    config_class = type("Bad", (OnOff,), {"VARIANTS_ENUM_STR": variants, "DEFAULT_VARIANT": None})
    with pytest.raises(FlagConfigError, match=message):
        config_class(overrides=overrides)


def test_flags_work_outside_a_request_with_a_user_id():
    """CLI commands and background jobs ask `Gatekeeper(user_id=...)` inside an app context."""
    app = make_app()
    with app.app_context():
        assert Gatekeeper(user_id=7).ff("ON_OFF", "ON") is True
        assert Gatekeeper().ff("ON_OFF", "ON") is False


def test_forced_variant_serves_a_variant_and_restores_it():
    """The test helper forces a variant for everyone inside the block only."""
    app = make_app()
    with gatekeeper.forced_variant("ON_OFF", "ON", app=app):
        assert explain_for(app, 8)[0] == "ON"
    assert explain_for(app, 8) == ("OFF", "rule")


def test_forced_variant_refuses_an_unknown_variant():
    """Forcing a variant that does not exist fails at once instead of silently testing nothing."""
    app = make_app()
    # gk: ignore (an unknown variant on purpose)
    with pytest.raises(gatekeeper.UnknownFlagError), gatekeeper.forced_variant("ON_OFF", "MAYBE", app=app):
        pass


def test_a_store_that_raises_leaves_flags_on_their_rules(caplog):
    """If the store fails, flags keep evaluating from code and the failure is logged once."""

    class FailingStore:
        def snapshot(self):
            raise ConnectionError("database is down")

    app = make_app(store=FailingStore())
    with caplog.at_level(logging.WARNING, logger=gatekeeper.__name__):
        assert explain_for(app, 7) == ("ON", "rule")
        assert explain_for(app, 7) == ("ON", "rule")
    assert caplog.text.count("database is down") == 1


def test_every_flag_of_the_app_validates():
    """The app's own FF_CONFIG_MAP passes the start-up checks (a broken edit fails here first)."""
    from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP

    gatekeeper.validate_config_map(FF_CONFIG_MAP)
