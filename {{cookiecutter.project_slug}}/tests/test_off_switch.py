"""The off switch: a flag switched off at runtime serves DEFAULT_VARIANT to everyone with reason `disabled`,
distinct from forcing a chosen variant; audited, undoable and schedulable."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import scheduler
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.store_helpers import audit_log, snapshot

FLAG_PAGE = "/gatekeeper/flags/MY_NEW_FEATURE"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def explain(app, flag, user_id):
    with app.app_context():
        return Gatekeeper(user_id=user_id).explain(flag)


def test_off_serves_the_default_to_everyone_with_reason_disabled(app, runner):
    """User 1 is on the team that sees MY_NEW_FEATURE; switched off, they get NOT_VISIBLE, `disabled`."""
    assert explain(app, "MY_NEW_FEATURE", 1).variant == "VISIBLE"
    result = gk(runner, "off", "MY_NEW_FEATURE")
    assert result.exit_code == 0
    assert "MY_NEW_FEATURE: switched off" in result.output
    evaluation = explain(app, "MY_NEW_FEATURE", 1)
    assert (evaluation.variant, evaluation.reason) == ("NOT_VISIBLE", "disabled")


def test_off_wins_over_a_forced_variant_and_user_overrides(app, runner, admin):
    """Off is above forcing and per-user overrides in the evaluation order."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    gk(runner, "override", "MY_NEW_FEATURE", "VISIBLE", "--user", "admin@example.com")
    gk(runner, "off", "MY_NEW_FEATURE")
    assert explain(app, "MY_NEW_FEATURE", admin.id).reason == "disabled"


def test_on_restores_the_rules(app, runner):
    gk(runner, "off", "MY_NEW_FEATURE")
    result = gk(runner, "on", "MY_NEW_FEATURE")
    assert result.exit_code == 0
    assert explain(app, "MY_NEW_FEATURE", 1).variant == "VISIBLE"
    assert snapshot(app).disabled == frozenset()


def test_switching_off_twice_changes_nothing_the_second_time(app, runner):
    gk(runner, "off", "MY_NEW_FEATURE")
    result = gk(runner, "off", "MY_NEW_FEATURE")
    assert "already off" in result.output
    assert len(audit_log(app)) == 1


def test_an_unknown_flag_cannot_be_switched_off(app, runner):
    result = gk(runner, "off", "MY_NEW_FEATUR")
    assert result.exit_code != 0
    assert "Did you mean MY_NEW_FEATURE?" in result.output
    assert snapshot(app).disabled == frozenset()


def test_off_and_on_are_audited(app, runner):
    gk(runner, "off", "MY_NEW_FEATURE", "--reason", "incident 42")
    gk(runner, "on", "MY_NEW_FEATURE")
    on, off = audit_log(app)
    assert (off.action, off.before, off.after, off.reason) == ("off", None, "off", "incident 42")
    assert (on.action, on.before, on.after) == ("on", "off", None)


def test_undoing_off_switches_the_flag_on(app, runner, admin_client):
    gk(runner, "off", "MY_NEW_FEATURE")
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")
    assert snapshot(app).disabled == frozenset()
    assert audit_log(app)[0].action == "on"


def test_off_can_be_scheduled(app, runner):
    result = gk(runner, "schedule", "MY_NEW_FEATURE", "+1h", "off")
    assert result.exit_code == 0, result.output
    with app.app_context():
        [pending] = scheduler.schedules(pending_only=True)
        app.extensions["gatekeeper_store"].now = lambda: pending.due_at
        store.snapshot(max_age=0)
    assert explain(app, "MY_NEW_FEATURE", 1).reason == "disabled"


def test_the_flag_page_switches_off_only_when_confirmed(app, admin_client):
    admin_client.post(f"{FLAG_PAGE}/off")
    assert snapshot(app).disabled == frozenset()
    admin_client.post(f"{FLAG_PAGE}/off", data={"confirm": "yes"})
    assert snapshot(app).disabled == {"MY_NEW_FEATURE"}
    page = admin_client.get(FLAG_PAGE).get_data(as_text=True)
    assert "Switch on" in page


def test_the_flag_page_switches_on(app, admin_client):
    admin_client.post(f"{FLAG_PAGE}/off", data={"confirm": "yes"})
    admin_client.post(f"{FLAG_PAGE}/on")
    assert snapshot(app).disabled == frozenset()


def test_a_switched_off_flag_shows_on_the_home_page_for_everyone(client, runner, admin, login):
    """The admin (a team user) stops seeing MY_NEW_FEATURE on the home page once it is off."""
    login(client, admin)
    assert 'id="my-new-feature"' in client.get("/").get_data(as_text=True)
    gk(runner, "off", "MY_NEW_FEATURE")
    assert 'id="my-new-feature"' not in client.get("/").get_data(as_text=True)


def test_the_evaluation_order_shows_the_off_switch_shadowing_the_rest(app, runner, admin_client):
    """On the flag page, a switched-off flag's forced variant is shadowed by the off switch."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    gk(runner, "off", "MY_NEW_FEATURE")
    page = admin_client.get(FLAG_PAGE).get_data(as_text=True)
    order = page.split('id="gk-order"')[1].split("</section>")[0]
    assert "Switched off" in order
    assert "the off switch" in order
