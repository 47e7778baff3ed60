"""Prerequisites: a flag may require another flag's variant, in code and at runtime; unmet, it serves its
default with reason `prerequisite`, naming the flag; circles are refused at start and on save."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, FlagConfigError, Gatekeeper, validate_config_map
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from tests.store_helpers import audit_log, snapshot


def flag(name: str, **body) -> FeatureFlagConfig:
    body = {"FLAG_NAME": name, "VARIANTS_ENUM_STR": "ON OFF", "DEFAULT_VARIANT": "OFF", **body}
    body.setdefault("_get_variant", lambda self, user_id=None, app=None, request=None, session=None: "ON")
    return type(f"{name.title()}FFConfig", (FeatureFlagConfig,), body)()


@pytest.fixture
def upsell(monkeypatch):
    """UPSELL (ON for everyone by its rule) requires NEW_CHECKOUT = ON, in code."""
    monkeypatch.setitem(FF_CONFIG_MAP, "UPSELL", flag("UPSELL", PREREQUISITES={"NEW_CHECKOUT": "ON"}))


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def explain(app, name, user_id=5):
    with app.app_context():
        return Gatekeeper(user_id=user_id).explain(name)


def test_an_unmet_prerequisite_in_code_serves_the_default_naming_the_flag(app, runner, upsell):
    gk(runner, "force", "NEW_CHECKOUT", "OFF")
    evaluation = explain(app, "UPSELL")
    assert (evaluation.variant, evaluation.reason) == ("OFF", "prerequisite")
    assert evaluation.detail == "needs NEW_CHECKOUT = ON, which gives OFF (forced: forced for everyone)"


def test_a_met_prerequisite_lets_the_rule_decide(app, runner, upsell):
    gk(runner, "force", "NEW_CHECKOUT", "ON")
    assert (explain(app, "UPSELL").variant, explain(app, "UPSELL").reason) == ("ON", "rule")


def test_explain_shows_the_chain(app, runner, upsell, monkeypatch):
    """A requires UPSELL requires NEW_CHECKOUT: A's explanation goes down the chain."""
    monkeypatch.setitem(FF_CONFIG_MAP, "A", flag("A", PREREQUISITES={"UPSELL": "ON"}))
    gk(runner, "force", "NEW_CHECKOUT", "OFF")
    result = gk(runner, "explain", "A", "--user", "5")
    assert (
        "A = OFF  because: prerequisite (needs UPSELL = ON, which gives OFF (prerequisite: "
        "needs NEW_CHECKOUT = ON, which gives OFF (forced: forced for everyone)))" in result.output
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"A": {"B": "ON"}, "B": {"A": "ON"}}, "PREREQUISITES go round in a circle (A -> B -> A)"),
        ({"A": {"A": "ON"}}, "(A -> A)"),
        ({"A": {"NOPE": "ON"}}, "A: PREREQUISITES names 'NOPE', which is not a flag"),
        ({"A": {"B": "MAYBE"}, "B": {}}, "A: PREREQUISITES wants B 'MAYBE'; use one of ON, OFF"),
    ],
)
def test_bad_prerequisites_in_code_fail_at_start(flags, message):
    config_map = {name: flag(name, PREREQUISITES=required) for name, required in flags.items()}
    with pytest.raises(FlagConfigError) as raised:
        validate_config_map(config_map)
    assert message in str(raised.value)


def test_a_prerequisite_set_at_runtime(app, runner):
    """`flask gk require FLAG REQUIRED VARIANT`: MY_NEW_FEATURE's team member needs NEW_CHECKOUT ON."""
    assert explain(app, "MY_NEW_FEATURE", 1).variant == "VISIBLE"
    gk(runner, "force", "NEW_CHECKOUT", "OFF")
    result = gk(runner, "require", "MY_NEW_FEATURE", "NEW_CHECKOUT", "ON")
    assert result.exit_code == 0, result.output
    evaluation = explain(app, "MY_NEW_FEATURE", 1)
    assert (evaluation.variant, evaluation.reason) == ("NOT_VISIBLE", "prerequisite")
    gk(runner, "unrequire", "MY_NEW_FEATURE", "NEW_CHECKOUT")
    assert explain(app, "MY_NEW_FEATURE", 1).variant == "VISIBLE"


def test_runtime_prerequisites_are_audited(app, runner):
    gk(runner, "require", "MY_NEW_FEATURE", "NEW_CHECKOUT", "ON")
    [entry] = audit_log(app)
    assert (entry.action, entry.flag, entry.target, entry.after) == (
        "require",
        "MY_NEW_FEATURE",
        "NEW_CHECKOUT",
        "ON",
    )


def test_a_circle_is_refused_on_save_and_writes_nothing(app, runner, upsell):
    """UPSELL requires NEW_CHECKOUT in code: NEW_CHECKOUT may not require UPSELL."""
    result = gk(runner, "require", "NEW_CHECKOUT", "UPSELL", "ON")
    assert result.exit_code != 0
    assert "would go round in a circle (NEW_CHECKOUT -> UPSELL -> NEW_CHECKOUT)" in result.output
    assert snapshot(app).prerequisites == {}


def test_an_unknown_flag_or_variant_is_refused(app, runner):
    assert "Unknown flag 'NOPE'" in gk(runner, "require", "MY_NEW_FEATURE", "NOPE", "ON").output
    assert (
        "NEW_CHECKOUT has no variant 'MAYBE'"
        in gk(runner, "require", "MY_NEW_FEATURE", "NEW_CHECKOUT", "MAYBE").output
    )


def test_a_stored_prerequisite_on_a_flag_gone_from_the_code_is_stale(
    app, runner, upsell, monkeypatch, client, admin, login
):
    """Never an error: the engine skips it, and the flag page says why."""
    gk(runner, "require", "MY_NEW_FEATURE", "UPSELL", "ON")
    monkeypatch.delitem(FF_CONFIG_MAP, "UPSELL")
    assert explain(app, "MY_NEW_FEATURE", 1).variant == "VISIBLE"
    login(client, admin)
    page = client.get("/gatekeeper/flags/MY_NEW_FEATURE").get_data(as_text=True)
    assert "flag UPSELL is no longer in the code" in page


def test_the_flag_page_adds_and_removes_a_prerequisite(app, client, admin, login):
    login(client, admin)
    client.post(
        "/gatekeeper/flags/MY_NEW_FEATURE/prerequisites", data={"required": "NEW_CHECKOUT", "variant": "ON"}
    )
    assert snapshot(app).prerequisites == {"MY_NEW_FEATURE": (("NEW_CHECKOUT", "ON"),)}
    client.post("/gatekeeper/flags/MY_NEW_FEATURE/prerequisites/remove", data={"required": "NEW_CHECKOUT"})
    assert snapshot(app).prerequisites == {}
