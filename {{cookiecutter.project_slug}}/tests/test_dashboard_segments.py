"""The dashboard's segments, values and off switch, through the test client as an admin: what a new user
does without touching code."""

from __future__ import annotations

import pytest

from tests.store_helpers import snapshot


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def home_page(client) -> str:
    return client.get("/").get_data(as_text=True)


def test_a_new_user_targets_a_segment_changes_a_text_and_switches_a_flag_off(
    app, admin_client, make_user, login
):
    """The issue's story: segment "email ends with @example.com" gets MY_NEW_FEATURE's VISIBLE; the sample
    text changes on the home page; a flag is switched off."""
    admin_client.post("/gatekeeper/segments", data={"name": "examples"})
    admin_client.post(
        "/gatekeeper/segments/examples/conditions",
        data={"attribute": "email", "operator": "ends_with", "value": "@example.com"},
    )
    admin_client.post(
        "/gatekeeper/flags/MY_NEW_FEATURE/targets", data={"group": "examples", "variant": "VISIBLE"}
    )
    admin_client.post(
        "/gatekeeper/flags/WELCOME_MESSAGE/values", data={"variant": "STANDARD", "value": "Hello, examples"}
    )
    visitor = app.test_client()
    login(visitor, make_user("ann@example.com", user_id=50))
    page = home_page(visitor)
    assert 'id="my-new-feature"' in page
    assert "Hello, examples" in page
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/off", data={"confirm": "yes"})
    assert 'id="my-new-feature"' not in home_page(visitor)


def test_the_segments_page_lists_conditions_and_targets(admin_client, runner):
    runner.invoke(args=["gk", "segment", "create", "examples"])
    runner.invoke(args=["gk", "segment", "add", "examples", "email", "ends_with", "@example.com"])
    runner.invoke(args=["gk", "target", "MY_NEW_FEATURE", "examples", "VISIBLE"])
    page = admin_client.get("/gatekeeper/segments").get_data(as_text=True)
    assert "email ends with &#34;@example.com&#34;" in page
    assert "MY_NEW_FEATURE</a> <code>VISIBLE</code>" in page


def test_a_bad_condition_on_the_page_says_why_and_writes_nothing(app, admin_client):
    admin_client.post("/gatekeeper/segments", data={"name": "s"})
    admin_client.post(
        "/gatekeeper/segments/s/conditions", data={"attribute": "email", "operator": "matches", "value": "(a"}
    )
    page = admin_client.get("/gatekeeper/segments/s").get_data(as_text=True)
    assert "is not a pattern RE2 accepts" in page
    assert snapshot(app).segments["s"].conditions == ()


def test_removing_a_condition_on_the_page(app, admin_client):
    admin_client.post("/gatekeeper/segments", data={"name": "s"})
    admin_client.post("/gatekeeper/segments/s/conditions", data={"attribute": "email", "operator": "is_set"})
    admin_client.post("/gatekeeper/segments/s/conditions/remove", data={"number": "1"})
    assert snapshot(app).segments["s"].conditions == ()


def test_does_this_user_match_by_look_up(admin_client, runner, make_user):
    runner.invoke(args=["gk", "segment", "create", "examples"])
    runner.invoke(args=["gk", "segment", "add", "examples", "email", "ends_with", "@example.com"])
    make_user("bob@example.org", user_id=51)
    page = admin_client.get("/gatekeeper/segments/examples?user=bob@example.org").get_data(as_text=True)
    assert 'data-matches="no"' in page
    assert "not <code>email ends with &#34;@example.com&#34;</code>" in page
    page = admin_client.get("/gatekeeper/segments/examples?user=admin@example.com").get_data(as_text=True)
    assert 'data-matches="yes"' in page


def test_the_user_look_up_shows_context_and_segments(admin_client, runner):
    runner.invoke(args=["gk", "segment", "create", "admins-by-flag"])
    runner.invoke(args=["gk", "segment", "add", "admins-by-flag", "is_admin", "equals", "true"])
    page = admin_client.get("/gatekeeper/users?q=admin@example.com").get_data(as_text=True)
    assert "<code>email=admin@example.com</code>" in page
    assert ">admins-by-flag</a>" in page
    assert "password" not in page.split('id="gk-user-context"')[1].split("</p>")[0]


def test_a_deleted_segment_shows_its_target_as_stale_on_the_flag_page(admin_client, runner):
    runner.invoke(args=["gk", "segment", "create", "gone"])
    runner.invoke(args=["gk", "target", "MY_NEW_FEATURE", "gone", "VISIBLE"])
    admin_client.post("/gatekeeper/segments/gone/delete")
    response = admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE")
    assert response.status_code == 200
    row = response.get_data(as_text=True).split(">gone</a>")[1].split("</tr>")[0]
    assert '<code>VISIBLE</code> <span class="gk-chip gk-chip-stale">stale</span>' in row


def test_the_flag_page_targets_a_segment_with_a_split(app, admin_client, runner):
    runner.invoke(args=["gk", "segment", "create", "examples"])
    admin_client.post(
        "/gatekeeper/flags/MY_NEW_FEATURE/targets",
        data={"group": "examples", "variant": "VISIBLE", "split": "VISIBLE=30 NOT_VISIBLE=70"},
    )
    assert snapshot(app).group_targets == {"MY_NEW_FEATURE": (("examples", "VISIBLE=30 NOT_VISIBLE=70"),)}
