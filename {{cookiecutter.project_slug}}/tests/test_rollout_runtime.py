"""Runtime rollout weights: `ROLLOUT` in code, `flask gk rollout` at runtime; sticky, audited, checked."""

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, Gatekeeper, rollout_moves
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting
from tests.store_helpers import another_process, audit_log, count_queries, snapshot

IDS = range(1, 10_001)


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def variants_of(app, flag, ids=IDS):
    """The variant each user id gets, through the engine with the store's current snapshot."""
    with app.test_request_context():
        return {user_id: Gatekeeper(user_id=user_id).ff_variant(flag) for user_id in ids}


def share(variants, name):
    return sum(variant == name for variant in variants.values()) / len(variants)


def test_rollout_without_weights_uses_the_class_rollout_attribute(app):
    """NEW_CHECKOUT's rule is `self.rollout(user_id)`: about 10% of users get ON, as its ROLLOUT says."""
    assert FF_CONFIG_MAP["NEW_CHECKOUT"].ROLLOUT == {"ON": 10, "OFF": 90}
    assert share(variants_of(app, "NEW_CHECKOUT"), "ON") == pytest.approx(0.10, abs=0.01)


def test_cli_sets_weights_that_replace_the_code_weights(app, runner):
    """`flask gk rollout NEW_CHECKOUT ON=50 OFF=50` moves the share of ON to a half, and says so."""
    result = gk(runner, "rollout", "NEW_CHECKOUT", "ON=50", "OFF=50")
    assert result.exit_code == 0, result.output
    assert "NEW_CHECKOUT: rolls out ON=50 OFF=50 now" in result.output
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 50, "OFF": 50}
    assert share(variants_of(app, "NEW_CHECKOUT"), "ON") == pytest.approx(0.50, abs=0.02)


def test_raising_on_from_10_to_20_percent_keeps_every_unit_that_had_on(app, runner):
    """Sticky over 10,000 ids: every user with ON at 10% still has it at 20%, and the share doubles."""
    before = variants_of(app, "NEW_CHECKOUT")
    gk(runner, "rollout", "NEW_CHECKOUT", "ON=20", "OFF=80")
    after = variants_of(app, "NEW_CHECKOUT")
    had_on = [user_id for user_id, variant in before.items() if variant == "ON"]
    assert had_on and all(after[user_id] == "ON" for user_id in had_on)
    assert share(after, "ON") == pytest.approx(0.20, abs=0.015)


def test_the_order_weights_are_typed_in_does_not_move_anyone(app, runner):
    """`OFF=80 ON=20` keeps the code's range order: the same users get ON as `ON=20 OFF=80`."""
    gk(runner, "rollout", "NEW_CHECKOUT", "ON=20", "OFF=80")
    typed_one_way = variants_of(app, "NEW_CHECKOUT", range(1, 2001))
    gk(runner, "rollout", "NEW_CHECKOUT", "--clear")
    gk(runner, "rollout", "NEW_CHECKOUT", "OFF=80", "ON=20")
    assert variants_of(app, "NEW_CHECKOUT", range(1, 2001)) == typed_one_way


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (["ON=60", "OFF=50"], "NEW_CHECKOUT: the weights add up to 110, not 100; nothing changed."),
        (["ON=10"], "the weights add up to 10, not 100"),
        (["ON=10", "MAYBE=90"], "NEW_CHECKOUT has no variant 'MAYBE': use ON, OFF."),
        (["ON=ten", "OFF=90"], "'ten' is not a percentage for ON"),
        (["ON=-10", "OFF=110"], "must be a percentage, 0 to 100"),
        (["ON=10.001", "OFF=89.999"], "at most 2 decimals"),
        (["ON10"], "'ON10' is not VARIANT=PERCENT"),
        ([], "give weights like ON=10"),
    ],
)
def test_bad_weights_are_refused_with_a_message_and_nothing_is_written(app, runner, weights, message):
    """Weights must name the flag's variants and add up to 100, else the CLI says why and writes nothing."""
    result = gk(runner, "rollout", "NEW_CHECKOUT", *weights)
    assert result.exit_code == 1
    assert message in result.output
    assert "NEW_CHECKOUT" not in snapshot(app).weights
    assert audit_log(app) == []


def test_weights_with_two_decimals_are_exact(app, runner):
    """Hundredths of a percent are kept exactly and add up to 100 with no rounding."""
    result = gk(runner, "rollout", "NEW_CHECKOUT", "ON=12.5", "OFF=87.5")
    assert result.exit_code == 0, result.output
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 12.5, "OFF": 87.5}


def test_clear_goes_back_to_the_weights_in_code_and_is_audited(app, runner):
    """`--clear` removes the stored weights; the audit log has both changes with before and after (the
    first stored weights' before is the code's)."""
    gk(runner, "rollout", "NEW_CHECKOUT", "ON=50", "OFF=50")
    result = gk(runner, "rollout", "NEW_CHECKOUT", "--clear")
    assert "back to the weights in code (was ON=50 OFF=50)" in result.output
    assert "NEW_CHECKOUT" not in snapshot(app).weights
    cleared, set_ = audit_log(app, "NEW_CHECKOUT")
    assert (set_.actor, set_.action, set_.after) == ("cli", "rollout", "ON=50 OFF=50")
    assert set_.before == "in code: ON=10 OFF=90"
    assert (cleared.action, cleared.before, cleared.after) == ("clear_rollout", "ON=50 OFF=50", None)


class PassesItsWeights(FeatureFlagConfig):
    """A rule in the seed's style, passing its weights to `self.rollout(unit_id, weights)`."""

    FLAG_NAME = "PASSES_WEIGHTS"
    VARIANTS_ENUM_STR = "ON OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.rollout(user_id, {"ON": 50, "OFF": 50})


def test_stored_weights_replace_weights_the_rule_passes(app):
    """A rule calling `self.rollout(user_id, {...})` keeps working, and stored weights win over its own."""
    process = another_process(app, config_map={"PASSES_WEIGHTS": PassesItsWeights()})
    before = variants_of(process.app, "PASSES_WEIGHTS", range(1, 2001))
    assert share(before, "ON") == pytest.approx(0.5, abs=0.04)
    with process.app.app_context():
        targeting.set_weights("PASSES_WEIGHTS", ["ON=0", "OFF=100"], actor="test")
    assert set(variants_of(process.app, "PASSES_WEIGHTS", range(1, 501)).values()) == {"OFF"}


def test_a_ramp_moves_no_unit_out_of_the_growing_variant():
    """Raising ON from 10% to 20% only moves units that had OFF, so the dashboard has nothing to warn of."""
    assert rollout_moves({"ON": 10, "OFF": 90}, {"ON": 20, "OFF": 80}) == {}


def test_growing_an_experiment_arm_moves_the_arms_after_it():
    """A 10 -> 20 shifts B's range: all of B's 10% move although B keeps its weight; that is reported."""
    old = {"VARIANT_A": 10, "VARIANT_B": 10, "CONTROL": 80}
    new = {"VARIANT_A": 20, "VARIANT_B": 10, "CONTROL": 70}
    assert rollout_moves(old, new) == {"VARIANT_B": 10}


def test_cli_warns_when_a_change_moves_experiment_arms(app, runner):
    """The CLI notes the units a weights change moves between arms before it saves."""
    result = gk(runner, "rollout", "HOMEPAGE_EXPERIMENT", "VARIANT_A=20", "VARIANT_B=10", "CONTROL=70")
    assert "10% of all units move away from VARIANT_B" in result.output


def test_weights_of_a_variant_the_code_dropped_are_ignored(app, runner):
    """Weights an older deploy stored for a variant the code no longer has leave the code weights in force."""

    class OldCheckout(FeatureFlagConfig):
        FLAG_NAME = "NEW_CHECKOUT"
        VARIANTS_ENUM_STR = "ON OFF RETIRED"
        DEFAULT_VARIANT = "OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.variants_enum.OFF

    old = another_process(app, config_map={"NEW_CHECKOUT": OldCheckout()})
    with old.app.app_context():
        targeting.set_weights("NEW_CHECKOUT", {"RETIRED": 100}, actor="old deploy")
    assert share(variants_of(app, "NEW_CHECKOUT"), "ON") == pytest.approx(0.10, abs=0.01)
    with app.app_context():
        [stale] = targeting.stale()
    assert (stale.flag, stale.kind) == ("NEW_CHECKOUT", "weights")


def test_a_flag_check_with_weights_stored_queries_no_database(app, runner, client):
    """Weights live in the snapshot: once it is loaded, pages checking NEW_CHECKOUT run no SQL for flags."""
    gk(runner, "rollout", "NEW_CHECKOUT", "ON=50", "OFF=50")
    client.get("/")
    with count_queries(app) as statements, app.test_request_context():
        [Gatekeeper(user_id=user_id).ff("NEW_CHECKOUT", "ON") for user_id in range(100)]
    assert statements == []


def test_home_page_shows_the_new_checkout_to_visitors_who_get_it(client, force_flag):
    """The home page's NEW_CHECKOUT block shows the new checkout for ON and the current one for OFF."""
    force_flag("NEW_CHECKOUT", "ON")
    page = client.get("/").text
    assert 'id="new-checkout" data-flag="NEW_CHECKOUT" data-variant="ON"' in page
    assert "The new one-page checkout" in page
