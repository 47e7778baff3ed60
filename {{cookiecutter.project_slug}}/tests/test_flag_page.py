"""The flag page as one ordered list: its parts in evaluation order, the rule from the code, the rollout's one
share, and forms that come back to themselves (at their part, or with the error beside the field)."""

import re

import pytest

from tests.store_helpers import audit_log, snapshot

FLAG_PAGE = "/gatekeeper/flags/MY_NEW_FEATURE"
CHECKOUT = "/gatekeeper/flags/NEW_CHECKOUT"
EXPERIMENT = "/gatekeeper/flags/HOMEPAGE_EXPERIMENT"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def parts(page):
    """The ids of the flag page's parts, top to bottom."""
    listed = page[page.index('<ol class="gk-parts"') :]
    return re.findall(r'<li class="gk-part[^"]*" id="([\w-]+)"', listed[: listed.index("</ol>")])


def field_error(page, form):
    match = re.search(rf'<p class="gk-field-error" id="gk-error-{form}" role="alert">(.*?)</p>', page)
    return match.group(1) if match else None


def test_the_parts_follow_the_evaluation_order(admin_client):
    """On/off first, then prerequisites, this browser, forced, user pins, groups, the rule, its rollout and
    the values: the order in which the engine decides."""
    page = admin_client.get(CHECKOUT).text
    assert parts(page) == [
        "off-switch",
        "prerequisites",
        "browser",
        "forced",
        "users",
        "groups",
        "rule",
        "rollout",
        "values",
    ]
    later = [page.index(f'id="{part}"') for part in ("schedules", "exposures", "changes")]
    assert page.index('id="values"') < later[0] < later[1] < later[2]


def test_every_form_posts_to_its_own_part(admin_client):
    """Each form's action ends in the id of the part that holds it, so the browser comes back there after
    a save or an error, with or without JavaScript."""
    page = admin_client.get(EXPERIMENT).text
    actions = re.findall(r'<form method="post" action="([^"]+)"', page)
    fragments = {action.partition("#")[2] for action in actions if "/schedules" not in action}
    assert fragments <= {
        "off-switch",
        "prerequisites",
        "browser",
        "forced",
        "users",
        "groups",
        "rollout",
        "values",
        "release",
        "schedules",
    }
    assert "" not in fragments
    for fragment in fragments:
        assert f'id="{fragment}"' in page


def test_the_rule_shows_its_docstring_its_source_and_where_the_code_uses_the_flag(admin_client):
    """MY_NEW_FEATURE's rule is code: the page shows its docstring (who it is for), a read-only excerpt of
    `_get_variant` and the places `flask gk check` finds the flag."""
    page = admin_client.get(FLAG_PAGE).text
    rule = page[page.index('id="rule"') : page.index('id="rollout"')]
    assert "The team (users 1, 2 and 3, TEAM_USER_IDS)" in rule
    assert "user_id in TEAM_USER_IDS" in rule  # the excerpt
    assert "gatekeeper_config.py, line" in rule
    assert re.search(r"<code>\w+/templates/home\.html:\d+</code>", rule)


def test_a_flag_without_a_rule_of_its_own_says_everyone_gets_the_default(admin_client):
    page = admin_client.get("/gatekeeper/flags/WELCOME_MESSAGE").text
    rule = page[page.index('id="rule"') : page.index('id="rollout"')]
    assert "none, everyone gets STANDARD" in rule
    assert "<pre" not in rule


def test_a_two_variant_rollout_takes_one_share_and_gives_the_rest_to_the_other(app, admin_client):
    """NEW_CHECKOUT's form has one box (ON); OFF gets what is left of 100%."""
    page = admin_client.get(CHECKOUT).text
    assert 'name="weight-ON"' in page and 'name="weight-OFF"' not in page
    response = admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "25"})
    assert response.location.endswith(f"{CHECKOUT}#rollout")
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 25, "OFF": 75}


def test_a_three_variant_rollout_computes_the_defaults_share(app, admin_client):
    """HOMEPAGE_EXPERIMENT asks for A and B; CONTROL (the default) gets the rest."""
    page = admin_client.get(EXPERIMENT).text
    assert 'name="weight-CONTROL"' not in page
    admin_client.post(f"{EXPERIMENT}/rollout", data={"weight-VARIANT_A": "10", "weight-VARIANT_B": "15"})
    assert dict(snapshot(app).weights["HOMEPAGE_EXPERIMENT"]) == {
        "VARIANT_A": 10,
        "VARIANT_B": 15,
        "CONTROL": 75,
    }


def test_shares_over_100_come_back_with_the_error_beside_the_field_and_the_values_kept(app, admin_client):
    """A and B at 70 and 70: the page again (422), both boxes as typed, the error beside the first and
    nothing stored."""
    data = {"weight-VARIANT_A": "70", "weight-VARIANT_B": "70", "reason": "bigger test"}
    response = admin_client.post(f"{EXPERIMENT}/rollout", data=data)
    assert response.status_code == 422
    assert (
        field_error(response.text, "rollout")
        == "These shares add up to 140%, more than 100%: lower one of them."
    )
    box = re.search(r'<input id="gk-weight-VARIANT_A"[^>]*>', response.text).group(0)
    assert (
        'value="70"' in box and 'aria-invalid="true"' in box and 'aria-describedby="gk-error-rollout"' in box
    )
    assert 'value="70"' in re.search(r'<input id="gk-weight-VARIANT_B"[^>]*>', response.text).group(0)
    assert 'value="bigger test"' in response.text
    assert snapshot(app).weights == {}


def test_a_share_that_is_no_number_is_named(admin_client):
    response = admin_client.post(f"{CHECKOUT}/rollout", data={"weight-ON": "lots"})
    assert response.status_code == 422
    assert field_error(response.text, "rollout") == "&#39;lots&#39; is not a percentage from 0 to 100."


def test_an_unknown_user_comes_back_in_the_form_with_the_error_beside_the_user_box(app, admin_client):
    """The pin form opens again with the email as typed, marked invalid, its error beside it."""
    data = {"user": "nobody@example.com", "variant": "VISIBLE", "reason": "trying"}
    response = admin_client.post(f"{FLAG_PAGE}/users", data=data)
    assert response.status_code == 422
    box = re.search(r'<input id="gk-user"[^>]*>', response.text).group(0)
    assert 'value="nobody@example.com"' in box
    assert 'aria-describedby="gk-error-users"' in box
    assert "No user matches" in field_error(response.text, "users")
    assert re.search(r'<details class="gk-add"\s+open>\s*<summary>Pin a user', response.text)
    assert '<option value="VISIBLE" selected>' in response.text.split('id="gk-user-variant"')[1]
    assert audit_log(app) == []


def test_switching_off_without_the_box_says_so_beside_the_box(app, admin_client):
    response = admin_client.post(f"{FLAG_PAGE}/off", data={"reason": "incident 42"})
    assert response.status_code == 422
    assert "Tick the box to switch MY_NEW_FEATURE off" in field_error(response.text, "off-switch")
    assert 'value="incident 42"' in response.text
    assert "MY_NEW_FEATURE" not in snapshot(app).disabled


def test_only_the_failed_form_holds_what_was_typed(admin_client):
    """A prerequisite's variant typed in error does not leak into the other forms."""
    response = admin_client.post(
        f"{FLAG_PAGE}/prerequisites", data={"required": "NEW_CHECKOUT", "variant": "MAYBE"}
    )
    assert response.status_code == 422
    assert 'value="MAYBE"' in re.search(r'<input id="gk-required-variant"[^>]*>', response.text).group(0)
    assert response.text.count('value="MAYBE"') == 1
    assert '<option value="NEW_CHECKOUT" selected>' in response.text
