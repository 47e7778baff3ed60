"""The dashboard's runtime targeting: weights (confirmed when arms move), group targets, schedules."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting
from tests.store_helpers import OLD_CONFIG_MAP, another_process, audit_log, snapshot

CHECKOUT = "/gatekeeper/flags/NEW_CHECKOUT"
EXPERIMENT = "/gatekeeper/flags/HOMEPAGE_EXPERIMENT"
PAGES = ["/gatekeeper/groups", "/gatekeeper/groups/admins", "/gatekeeper/users", "/gatekeeper/users?q=1"]
CHANGES = [
    (f"{CHECKOUT}/rollout", {"weight-ON": "50", "weight-OFF": "50"}),
    (f"{CHECKOUT}/rollout/clear", {}),
    (f"{CHECKOUT}/targets", {"group": "admins", "variant": "ON"}),
    (f"{CHECKOUT}/targets/remove", {"group": "admins"}),
    (f"{CHECKOUT}/schedules", {"when": "+1h", "action": "force", "arguments": "ON"}),
    (f"{CHECKOUT}/schedules/1/cancel", {}),
    ("/gatekeeper/groups", {"name": "beta"}),
    ("/gatekeeper/groups/beta/describe", {"description": "x"}),
    ("/gatekeeper/groups/beta/members", {"users": "1"}),
    ("/gatekeeper/groups/beta/members/remove", {"user_id": "1"}),
]


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def weights_table(page):
    """The shares the rollout form holds: each box's, and the rest variant's (what is left of 100)."""
    form = page[page.index('id="rollout"') :]
    boxes = re.findall(r'name="weight-(\w+)"[^>]*value="([\d.]+)"', form[: form.index("</form>")])
    rest = re.search(r"<code>(\w+)</code> gets the rest: <output[^>]*>([\d.]+)</output>", form)
    return {**dict(boxes), rest.group(1): rest.group(2)}


@pytest.mark.parametrize("path", PAGES)
def test_new_pages_need_an_admin(client, user, login, path):
    """Groups and user look-up are behind the dashboard's access check like every other page."""
    assert client.get(path).status_code == 302
    login(client, user)
    assert client.get(path).status_code == 403


@pytest.mark.parametrize(("path", "data"), CHANGES)
def test_non_admins_cannot_change_targeting(app, client, user, login, path, data):
    """Every new POST is refused for a signed-in non-admin, and nothing is written."""
    login(client, user)
    assert client.post(path, data=data).status_code == 403
    assert audit_log(app) == []


def test_flag_page_shows_the_code_weights(admin_client):
    """Without stored weights the page shows ROLLOUT's, and says they come from the code."""
    page = admin_client.get(CHECKOUT).text
    assert weights_table(page) == {"ON": "10", "OFF": "90"}
    assert "From the code" in page


def test_saving_weights_on_the_flag_page_ramps_the_flag(app, admin_client, admin):
    """The no-JS form saves new weights; the page then shows them, who set them and when."""
    response = admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "50", "weight-OFF": "50"})
    assert response.status_code == 302
    page = admin_client.get(CHECKOUT).text
    assert "NEW_CHECKOUT: rolls out ON=50 OFF=50 now" in page
    assert weights_table(page) == {"ON": "50", "OFF": "50"}
    assert f"Set on the dashboard by {admin.email}" in page
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 50, "OFF": 50}


def test_weights_that_do_not_add_up_are_refused_on_the_page(app, admin_client):
    """110% is refused with the reason, and nothing is stored."""
    response = admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "60", "weight-OFF": "50"})
    assert response.status_code == 422
    assert "the weights add up to 110, not 100; nothing changed." in response.text
    assert snapshot(app).weights == {}


def test_moving_experiment_arms_asks_to_confirm_before_saving(app, admin_client):
    """Growing arm A shifts arm B: the page warns and saves nothing until "Save anyway"."""
    data = {"weight-VARIANT_A": "20", "weight-VARIANT_B": "10", "weight-CONTROL": "70"}
    response = admin_client.post(f"{EXPERIMENT}/rollout", data=data)
    assert response.status_code == 200
    assert "10%</strong> of all visitors lose <code>VARIANT_B</code>" in response.text
    assert snapshot(app).weights == {}
    admin_client.post(f"{EXPERIMENT}/rollout", data={**data, "confirm_moves": "yes"})
    assert dict(snapshot(app).weights["HOMEPAGE_EXPERIMENT"]) == {
        "VARIANT_A": 20,
        "VARIANT_B": 10,
        "CONTROL": 70,
    }


def test_a_ramp_saves_without_a_confirm_step(app, admin_client):
    """Raising ON and lowering OFF moves nobody out of ON, so it saves at once."""
    admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "20", "weight-OFF": "80"})
    assert "NEW_CHECKOUT" in snapshot(app).weights


def test_back_to_code_weights(app, admin_client):
    """The clear button removes stored weights, audited with what they were."""
    admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "50", "weight-OFF": "50"})
    admin_client.post(f"{CHECKOUT}/rollout/clear")
    assert snapshot(app).weights == {}
    assert audit_log(app)[0].before == "ON=50 OFF=50"


def test_targeting_a_group_from_the_flag_page(app, admin_client, admin):
    """A code group can be targeted from the flag page, shows in its list, and can be removed again."""
    admin_client.post(f"{CHECKOUT}/targets", data={"group": "admins", "variant": "ON"})
    page = admin_client.get(CHECKOUT).text
    assert re.search(
        r'<a href="/gatekeeper/groups/admins">admins</a></td>\s*<td data-label="Gets"><code>ON</code>', page
    )
    with app.app_context():
        assert Gatekeeper(user_id=admin.id).explain("NEW_CHECKOUT").reason == "group_target"
    admin_client.post(f"{CHECKOUT}/targets/remove", data={"group": "admins"})
    assert snapshot(app).group_targets == {}


def test_creating_filling_and_emptying_a_group_on_the_dashboard(app, admin_client, make_user):
    """Create a group, add members by email and id, refuse unknown users, remove a member."""
    make_user("ann@example.com", user_id=7)
    make_user("bob@example.com", user_id=8)
    response = admin_client.post("/gatekeeper/groups", data={"name": "beta", "description": "Early testers"})
    assert response.headers["Location"].endswith("/gatekeeper/groups/beta")
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": "ann@example.com, 8"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": "ghost@example.com"})
    page = admin_client.get("/gatekeeper/groups/beta").text
    assert "No user matches &#39;ghost@example.com&#39;" in page
    assert "2 members" in page
    admin_client.post("/gatekeeper/groups/beta/members/remove", data={"user_id": "7"})
    assert dict(snapshot(app).group_members["beta"]) == {"8": "bob@example.com"}


def test_groups_page_lists_stored_and_code_groups(admin_client):
    """Code groups appear read-only beside stored ones; their page has no member form."""
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    page = admin_client.get("/gatekeeper/groups").text
    assert 'data-group="beta"' in page and 'data-group="admins"' in page
    code_page = admin_client.get("/gatekeeper/groups/admins").text
    assert "cannot be edited here" in code_page
    assert "members/remove" not in code_page
    assert admin_client.get("/gatekeeper/groups/nope").status_code == 404


def test_scheduling_and_cancelling_on_the_flag_page(app, admin_client, admin):
    """The schedule form adds a pending change listed on the page; Cancel stops it; both are audited."""
    admin_client.post(
        f"{CHECKOUT}/schedules", data={"when": "+1h", "action": "rollout", "arguments": "ON=50 OFF=50"}
    )
    page = admin_client.get(CHECKOUT).text
    assert re.search(r'<tr data-state="pending">.*?rollout ON=50 OFF=50', page, re.S)
    admin_client.post(f"{CHECKOUT}/schedules/1/cancel")
    assert '<tr data-state="cancelled">' in admin_client.get(CHECKOUT).text
    assert [entry.action for entry in audit_log(app)] == ["cancel_schedule", "schedule"]
    assert audit_log(app)[0].actor == admin.email


def test_a_bad_schedule_is_refused_on_the_page(app, admin_client):
    """A time in the past is refused with a message; nothing is scheduled."""
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    data = {"when": past, "action": "force", "arguments": "ON"}
    assert "is in the past" in admin_client.post(f"{CHECKOUT}/schedules", data=data).text
    assert audit_log(app) == []


def test_targeting_changes_are_in_the_audit_log(admin_client):
    """Group and weights changes show in the audit log with words for what happened."""
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "50", "weight-OFF": "50"})
    page = admin_client.get("/gatekeeper/audit").text
    assert "group beta created" in page
    assert "rollout weights set" in page


def test_stale_targeting_is_listed_and_can_be_removed(app, admin_client):
    """Weights and a target an older deploy left behind: listed as stale on the dashboard, then cleared."""
    old = another_process(app, config_map=OLD_CONFIG_MAP)
    with old.app.app_context():
        targeting.set_weights("REMOVED_FLAG", ["ON=50", "OFF=50"], actor="old deploy")
        gatekeeper.register_group("vip", lambda user: True)
        targeting.target("MY_NEW_FEATURE", "vip", "VISIBLE", actor="old deploy")
    index = admin_client.get("/gatekeeper/").text
    assert "REMOVED_FLAG</a>:\n            rollout weights" in index
    assert "target for group vip\n            (group vip no longer exists)" in index
    assert "stale" in admin_client.get("/gatekeeper/flags/REMOVED_FLAG").text
    admin_client.post("/gatekeeper/flags/REMOVED_FLAG/rollout/clear")
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/targets/remove", data={"group": "vip"})
    assert 'id="gk-stale-targeting"' not in admin_client.get("/gatekeeper/").text
