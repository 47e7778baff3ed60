"""The OpenFeature provider, through the real `openfeature` client API: values, reasons, errors and hooks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.hook import Hook

from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, Gatekeeper, flag_evaluated
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control.openfeature import ON_OFF_PAIRS, GatekeeperProvider
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store

DOMAIN = "gatekeeper-tests"


class RecordingHook(Hook):
    """An OpenFeature hook that notes each stage it is called at, with the flag."""

    def __init__(self, targeting_key: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.targeting_key = targeting_key

    def before(self, hook_context, hints):
        self.calls.append(("before", hook_context.flag_key))
        return EvaluationContext(targeting_key=self.targeting_key) if self.targeting_key else None

    def after(self, hook_context, details, hints):
        self.calls.append(("after", hook_context.flag_key))

    def error(self, hook_context, exception, hints):
        self.calls.append(("error", hook_context.flag_key))

    def finally_after(self, hook_context, details, hints):
        self.calls.append(("finally", hook_context.flag_key))


def on_off_flag(name: str, on: str, off: str, rule_variant: str | None = None) -> FeatureFlagConfig:
    """A two-variant flag whose rule serves `rule_variant` (default: the off one)."""

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return rule_variant or off

    body = {"FLAG_NAME": name, "VARIANTS_ENUM_STR": f"{on} {off}", "_get_variant": _get_variant}
    return type(f"{name.title()}FFConfig", (FeatureFlagConfig,), body)()


class PinnedFFConfig(FeatureFlagConfig):
    FLAG_NAME = "PINNED"
    VARIANTS_ENUM_STR = "ON OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.OFF


class BrokenRuleFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BROKEN_RULE"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        raise RuntimeError("boom")


class NoMatchFFConfig(FeatureFlagConfig):
    FLAG_NAME = "NO_MATCH"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return None


class ConstantFFConfig(FeatureFlagConfig):
    FLAG_NAME = "CONSTANT"
    VARIANTS_ENUM_STR = "THREE FOUR"
    DEFAULT_VARIANT = "THREE"
    VALUES = {"THREE": 3, "FOUR": 4}  # noqa: RUF012 (read only)
    METADATA = {"team": "core", "rank": 2}  # noqa: RUF012


class ByEmailFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BY_EMAIL"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
        return "ON" if str(context.get("email", "")).endswith("@example.com") else None


@pytest.fixture
def of_client(app: Flask) -> Iterator[OpenFeatureClient]:
    """An OpenFeature client whose provider is gatekeeper, for this test's app; reset afterwards."""
    api.set_provider(GatekeeperProvider(app), domain=DOMAIN)
    yield api.get_client(DOMAIN)
    api.clear_hooks()
    api.clear_providers()


@pytest.fixture
def extra_flag(monkeypatch):
    """`extra_flag(config)`: the app also has this flag until the test ends."""
    return lambda config: monkeypatch.setitem(FF_CONFIG_MAP, config.FLAG_NAME, config)


def test_provider_names_itself_gatekeeper(of_client):
    """The client reports which provider answers it."""
    assert api.get_provider_metadata(DOMAIN).name == "gatekeeper"


def test_string_value_is_the_variant_name(of_client, force_flag):
    """`get_string_value` gives the variant, for any flag (here a three-way experiment)."""
    force_flag("HOMEPAGE_EXPERIMENT", "VARIANT_B")
    assert of_client.get_string_value("HOMEPAGE_EXPERIMENT", "CONTROL") == "VARIANT_B"


def test_targeting_key_is_the_user_id(of_client):
    """The targeting key picks the user, digits as an integer id: user 1 is on the team that sees
    MY_NEW_FEATURE, user 42 is not."""
    team = of_client.get_boolean_details("MY_NEW_FEATURE", False, EvaluationContext(targeting_key="1"))
    other = of_client.get_boolean_details("MY_NEW_FEATURE", True, EvaluationContext(targeting_key="42"))
    assert (team.value, team.variant) == (True, "VISIBLE")
    assert (other.value, other.variant) == (False, "NOT_VISIBLE")


def test_split_rule_gives_the_same_variant_as_gatekeeper_with_reason_split(of_client, app):
    """A rollout's variant is the one `ff_variant` gives the same user, reported as SPLIT."""
    for user_id in range(1, 30):
        details = of_client.get_string_details("HOMEPAGE_EXPERIMENT", "?", EvaluationContext(str(user_id)))
        with app.app_context():
            expected = Gatekeeper(user_id=user_id).ff_variant("HOMEPAGE_EXPERIMENT")
        assert (details.value, details.variant, details.reason) == (expected, expected, Reason.SPLIT)


def test_targeting_rule_without_a_rollout_is_a_targeting_match(of_client):
    """MY_NEW_FEATURE's rule picks by user list, not by percentage: TARGETING_MATCH, with the variant."""
    details = of_client.get_string_details("MY_NEW_FEATURE", "?", EvaluationContext(targeting_key="1"))
    assert (details.reason, details.variant) == (Reason.TARGETING_MATCH, "VISIBLE")


@pytest.mark.parametrize(("on", "off"), ON_OFF_PAIRS)
def test_each_documented_on_off_pair_reads_as_a_boolean(of_client, extra_flag, on, off):
    """ON/OFF, VISIBLE/NOT_VISIBLE and ENABLED/DISABLED: the first is true, the second false."""
    extra_flag(on_off_flag("PAIR_ON", on, off, rule_variant=on))
    extra_flag(on_off_flag("PAIR_OFF", on, off))
    assert of_client.get_boolean_value("PAIR_ON", False) is True  # gk: ignore (made in this test)
    assert of_client.get_boolean_value("PAIR_OFF", True) is False  # gk: ignore (made in this test)


def test_a_switched_off_flag_is_disabled_with_the_callers_default(of_client, app):
    """Switched off at runtime, a flag answers DISABLED and the caller's own default."""
    with app.app_context():
        store.switch_off("MY_NEW_FEATURE", "test")
    details = of_client.get_boolean_details("MY_NEW_FEATURE", True, EvaluationContext(targeting_key="1"))
    assert (details.value, details.reason, details.error_code) == (True, Reason.DISABLED, None)


def test_a_forced_variant_is_static(of_client, force_flag):
    """Forcing a variant, even the off half of an on/off flag, is STATIC: everyone gets it whatever the
    context (the off switch is DISABLED)."""
    force_flag("MY_NEW_FEATURE", "NOT_VISIBLE")
    killed = of_client.get_boolean_details("MY_NEW_FEATURE", True, EvaluationContext(targeting_key="1"))
    assert (killed.value, killed.reason, killed.variant) == (False, Reason.STATIC, "NOT_VISIBLE")
    force_flag("HOMEPAGE_EXPERIMENT", "VARIANT_A")
    forced = of_client.get_string_details("HOMEPAGE_EXPERIMENT", "?", EvaluationContext(targeting_key="1"))
    assert (forced.value, forced.reason) == ("VARIANT_A", Reason.STATIC)


def test_user_override_is_a_targeting_match(of_client, extra_flag):
    """A user pinned to a variant (here by `overrides` in code) is a TARGETING_MATCH for that user."""
    extra_flag(PinnedFFConfig(overrides={"ON": [7]}))
    details = of_client.get_boolean_details("PINNED", False, EvaluationContext(targeting_key="7"))
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH, "ON")


def test_a_failing_rule_is_an_error_with_the_callers_default(of_client, extra_flag):
    """When the rule raises, the caller gets its own default, reason ERROR, and the cause."""
    extra_flag(BrokenRuleFFConfig())
    details = of_client.get_string_details("BROKEN_RULE", "?")
    assert (details.value, details.reason, details.error_code) == ("?", Reason.ERROR, ErrorCode.GENERAL)
    assert "rule raised RuntimeError" in details.error_message


def test_a_rule_that_matches_nothing_is_default_without_an_error(of_client, extra_flag, caplog):
    """A rule returning None serves DEFAULT_VARIANT as a normal outcome: DEFAULT, no message, no log."""
    extra_flag(NoMatchFFConfig())
    details = of_client.get_string_details("NO_MATCH", "?")
    assert (details.value, details.variant, details.reason) == ("OFF", "OFF", Reason.DEFAULT)
    assert (details.error_code, details.error_message) == (None, None)
    assert caplog.records == []


def test_a_flag_without_a_rule_or_anything_stored_is_static(of_client, extra_flag):
    extra_flag(ConstantFFConfig())
    details = of_client.get_integer_details("CONSTANT", 0)
    assert (details.value, details.variant, details.reason) == (3, "THREE", Reason.STATIC)


def test_values_resolve_by_their_type(of_client, app, runner):
    """WELCOME_MESSAGE carries text: a string resolution gives the text, and a runtime value wins."""
    assert of_client.get_string_value("WELCOME_MESSAGE", "?").startswith("Welcome!")
    runner.invoke(args=["gk", "value", "WELCOME_MESSAGE", "STANDARD", "Hi"])
    assert of_client.get_string_value("WELCOME_MESSAGE", "?") == "Hi"


def test_an_unknown_flag_is_not_found_whatever_type_is_asked(of_client):
    """The flag is looked up before the type: FLAG_NOT_FOUND, never TYPE_MISMATCH."""
    for details in (
        of_client.get_integer_details("NO_SUCH_FLAG", 1),  # gk: ignore (unknown on purpose)
        of_client.get_float_details("NO_SUCH_FLAG", 0.1),  # gk: ignore (unknown on purpose)
        of_client.get_object_details("NO_SUCH_FLAG", {}),  # gk: ignore (unknown on purpose)
    ):
        assert details.error_code == ErrorCode.FLAG_NOT_FOUND


def test_context_attributes_reach_a_rule_that_declares_context(of_client, extra_flag):
    """The evaluation context's attributes are the `context` a rule gets, for that call."""
    extra_flag(ByEmailFFConfig())
    ctx = EvaluationContext("5", {"email": "ann@example.com"})
    assert of_client.get_boolean_details("BY_EMAIL", False, ctx).value is True
    other = EvaluationContext("5", {"email": "bob@example.org"})
    assert of_client.get_boolean_details("BY_EMAIL", True, other).value is False


def test_unknown_flag_returns_the_callers_default_with_flag_not_found(of_client):
    """An unknown flag never raises, even under test where `ff()` would: the default comes back."""
    details = of_client.get_boolean_details("NO_SUCH_FLAG", True)  # gk: ignore (unknown on purpose)
    assert (details.value, details.reason, details.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert of_client.get_string_value("NO_SUCH_FLAG", "fallback") == "fallback"  # gk: ignore (on purpose)


def test_boolean_of_a_flag_that_is_not_on_off_is_a_type_mismatch(of_client):
    """A three-way experiment has no boolean reading: TYPE_MISMATCH, and the caller's default."""
    details = of_client.get_boolean_details("HOMEPAGE_EXPERIMENT", True)
    assert (details.value, details.error_code) == (True, ErrorCode.TYPE_MISMATCH)
    assert "ask for a string" in details.error_message


def test_numbers_and_objects_of_a_flag_without_values_are_type_mismatches(of_client):
    """A flag without VALUES holds text: integer, float and object evaluations give the default back."""
    assert of_client.get_integer_details("MY_NEW_FEATURE", 3).error_code == ErrorCode.TYPE_MISMATCH
    assert of_client.get_float_details("MY_NEW_FEATURE", 0.5).value == 0.5
    assert of_client.get_object_details("MY_NEW_FEATURE", {"a": 1}).value == {"a": 1}


def test_hooks_run_before_and_after_a_good_evaluation(of_client):
    """API-level hooks see the flag before and after it resolves, and the finally stage; no error."""
    hook = RecordingHook()
    api.add_hooks([hook])
    of_client.get_boolean_value("MY_NEW_FEATURE", False)
    assert hook.calls == [
        ("before", "MY_NEW_FEATURE"),
        ("after", "MY_NEW_FEATURE"),
        ("finally", "MY_NEW_FEATURE"),
    ]


def test_error_hook_runs_for_an_unknown_flag_and_after_does_not(of_client):
    """A FLAG_NOT_FOUND goes through the client's error stage, as any provider's errors do."""
    hook = RecordingHook()
    of_client.add_hooks([hook])
    of_client.get_string_value("NO_SUCH_FLAG", "x")  # gk: ignore (unknown on purpose)
    assert hook.calls == [("before", "NO_SUCH_FLAG"), ("error", "NO_SUCH_FLAG"), ("finally", "NO_SUCH_FLAG")]


def test_a_before_hook_can_set_the_targeting_key(of_client):
    """The context a before hook returns is merged in, and the provider targets that user."""
    api.add_hooks([RecordingHook(targeting_key="1")])
    assert of_client.get_boolean_value("MY_NEW_FEATURE", False) is True


def test_inside_a_request_without_a_key_the_request_user_is_targeted(app, of_client, admin, user, login):
    """In a view, with no targeting key, the flag is the request's own: the logged-in team member sees
    MY_NEW_FEATURE, another user does not, and `flag_evaluated` fires once for the request."""
    seen = []
    app.add_url_rule("/of", "of", lambda: str(of_client.get_boolean_value("MY_NEW_FEATURE", False)))

    def record(sender, flag, variant, reason, user_id):
        seen.append((flag, variant, user_id))

    with flag_evaluated.connected_to(record):
        http = app.test_client()
        login(http, admin)
        assert http.get("/of").text == "True"
        other = app.test_client()
        login(other, user)
        assert other.get("/of").text == "False"
    assert seen == [("MY_NEW_FEATURE", "VISIBLE", 1), ("MY_NEW_FEATURE", "NOT_VISIBLE", 42)]


def test_outside_any_app_context_the_provider_uses_its_app(app):
    """A background job with no app context still gets answers from the app given to the provider."""
    api.set_provider(GatekeeperProvider(app), domain=DOMAIN)
    try:
        value = api.get_client(DOMAIN).get_string_value("MY_NEW_FEATURE", "?", EvaluationContext("1"))
    finally:
        api.clear_providers()
    assert value == "VISIBLE"


def test_flag_metadata_is_the_flags_metadata_and_nothing_else(of_client, extra_flag):
    """METADATA travels as flag_metadata; a flag that declares none (here one with an OWNER) has none."""
    extra_flag(ConstantFFConfig())
    assert dict(of_client.get_integer_details("CONSTANT", 0).flag_metadata) == {"team": "core", "rank": 2}
    assert (
        of_client.get_string_details("HOMEPAGE_EXPERIMENT", "?", EvaluationContext("3")).flag_metadata == {}
    )
