"""Looking up a user: every flag's variant and reason, on the dashboard and in `flask gk explain --user`."""

import re

import pytest


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def flags_for(page):
    """{flag: (variant, reason)} from the look-up page's table."""
    rows = re.findall(r'<tr data-flag="(\w+)" data-variant="(\w+)" data-reason="(\w+)">', page)
    return {flag: (variant, reason) for flag, variant, reason in rows}


def test_looking_up_by_email_shows_every_flag_with_its_reason(app, admin_client, runner, make_user):
    """`/gatekeeper/users?q=EMAIL`: the user's variant of each flag and why, linked to the flag pages."""
    make_user("ann@example.com", user_id=7)
    runner.invoke(args=["gk", "override", "NEW_CHECKOUT", "ON", "--user", "ann@example.com"])
    page = admin_client.get("/gatekeeper/users?q=ann@example.com").text
    flags = flags_for(page)
    assert set(flags) == {"MY_NEW_FEATURE", "HOMEPAGE_EXPERIMENT", "NEW_CHECKOUT", "WELCOME_MESSAGE"}
    assert flags["NEW_CHECKOUT"] == ("ON", "user_override")
    assert flags["MY_NEW_FEATURE"] == ("NOT_VISIBLE", "rule")
    assert 'href="/gatekeeper/flags/NEW_CHECKOUT"' in page


def test_looking_up_by_id_finds_the_same_user(admin_client, make_user):
    """An id works as well as an email."""
    make_user("ann@example.com", user_id=7)
    assert "ann@example.com" in admin_client.get("/gatekeeper/users?q=7").text


def test_the_look_up_names_the_group_that_gives_a_variant(admin_client, runner, make_user):
    """A user in a targeted group sees group_target with the group's name, and the groups they are in."""
    make_user("ann@example.com", user_id=7)
    runner.invoke(args=["gk", "group", "create", "beta"])
    runner.invoke(args=["gk", "group", "add", "beta", "7"])
    runner.invoke(args=["gk", "target", "NEW_CHECKOUT", "beta", "ON"])
    page = admin_client.get("/gatekeeper/users?q=ann@example.com").text
    assert flags_for(page)["NEW_CHECKOUT"] == ("ON", "group_target")
    assert "member of group beta" in page
    assert 'href="/gatekeeper/groups/beta"' in page


def test_code_groups_apply_to_the_looked_up_user(admin_client, admin):
    """Code groups get the looked-up user's object, not the admin's: targeting admins shows for the admin."""
    admin_client.post("/gatekeeper/flags/NEW_CHECKOUT/targets", data={"group": "admins", "variant": "ON"})
    assert flags_for(admin_client.get("/gatekeeper/users?q=1").text)["NEW_CHECKOUT"] == ("ON", "group_target")


def test_the_admins_own_browser_override_does_not_leak_into_the_look_up(admin_client, make_user):
    """The page shows what the user gets, so the admin's override cookie is left out."""
    make_user("ann@example.com", user_id=7)
    admin_client.post("/gatekeeper/flags/NEW_CHECKOUT/browser-override", data={"variant": "ON"})
    assert flags_for(admin_client.get("/gatekeeper/users?q=7").text)["NEW_CHECKOUT"][1] == "rule"


def test_an_unknown_user_gets_a_clear_message(admin_client):
    """No such email: the page says so instead of showing anything."""
    page = admin_client.get("/gatekeeper/users?q=nobody@example.com").text
    assert "No user matches &#39;nobody@example.com&#39;" in page
    assert flags_for(page) == {}


def test_explain_accepts_an_email(runner, make_user):
    """`flask gk explain FLAG --user EMAIL` finds the user through the store's user look-up."""
    make_user("ann@example.com", user_id=7)
    runner.invoke(args=["gk", "override", "NEW_CHECKOUT", "ON", "--user", "7"])
    result = runner.invoke(args=["gk", "explain", "NEW_CHECKOUT", "--user", "ann@example.com"])
    assert result.exit_code == 0
    assert "NEW_CHECKOUT = ON  because: user_override (stored override for user 7)" in result.output
    assert "unchecked" not in result.output


def test_explain_refuses_an_unknown_email(runner):
    """An email nobody has is an error with a message, not an anonymous answer."""
    result = runner.invoke(args=["gk", "explain", "NEW_CHECKOUT", "--user", "nobody@example.com"])
    assert result.exit_code == 2
    assert "no user matches 'nobody@example.com'" in result.output


# --- Part of an email ------------------------------------------------------------------------------------


def test_part_of_an_email_lists_the_users_it_matches_to_pick_from(admin_client, make_user):
    """The text "ann" is part of two emails: the page links each user to their own look-up, no flags yet."""
    make_user("ann@example.com", user_id=7)
    make_user("anna@example.com", user_id=8)
    make_user("bob@other.org", user_id=9)
    page = admin_client.get("/gatekeeper/users?q=ann").text
    assert "2 users match “ann”" in page
    assert re.findall(r'<a href="/gatekeeper/users\?q=(\d+)">([^<]+)</a>', page) == [
        ("7", "ann@example.com"),
        ("8", "anna@example.com"),
    ]
    assert flags_for(page) == {}


def test_part_of_one_users_email_shows_that_user(admin_client, make_user):
    """A text only one user's email holds is enough to show their flags."""
    make_user("bob@other.org", user_id=9)
    page = admin_client.get("/gatekeeper/users?q=OTHER.org").text
    assert "bob@other.org" in page and len(flags_for(page)) == 4


def test_the_search_box_is_focused_and_says_what_it_takes(admin_client):
    page = admin_client.get("/gatekeeper/users").text
    assert re.search(r'<input id="gk-user-query"[^>]* aria-describedby="gk-user-hint" autofocus>', page)
    assert "<code>ann</code> finds every user whose email holds “ann”" in page


def test_a_change_needs_the_whole_email_not_part_of_several(app, admin_client, make_user):
    """Pinning "ann" when it is part of two emails changes nothing and names both, with what to type."""
    make_user("ann@example.com", user_id=7)
    make_user("anna@example.com", user_id=8)
    data = {"user": "ann", "variant": "ON"}
    page = admin_client.post("/gatekeeper/flags/NEW_CHECKOUT/users", data=data, follow_redirects=True).text
    assert "is part of 2 users&#39; email or name (ann@example.com, anna@example.com)" in page
    assert "type one in full, or an id." in page
    with app.app_context():
        from {{ cookiecutter.package_name }}.gatekeeper_control.store import store

        assert store.snapshot(max_age=0).user_overrides == {}


# --- Why: the rollout's bucket and share -----------------------------------------------------------------


def test_a_rollouts_reason_gives_the_users_bucket_and_the_variants_share(admin_client, make_user):
    """NEW_CHECKOUT is ON for buckets 0-999 of 10,000 (10%): the look-up says which bucket the user is in,
    for the variant they get."""
    from {{ cookiecutter.package_name }}.gatekeeper import rollout_bucket

    make_user("ann@example.com", user_id=7)
    bucket = rollout_bucket("NEW_CHECKOUT::7")
    page = admin_client.get("/gatekeeper/users?q=7").text
    share = "ON covers 0-999" if bucket < 1000 else "OFF covers 1,000-9,999"
    assert f"bucket {bucket:,} of 10,000: {share}" in page


def test_explain_gives_the_bucket_of_a_rollout(runner, make_user):
    """`flask gk explain` says the same after "because: rule"."""
    from {{ cookiecutter.package_name }}.gatekeeper import rollout_bucket

    make_user("ann@example.com", user_id=7)
    result = runner.invoke(args=["gk", "explain", "HOMEPAGE_EXPERIMENT", "--user", "7"])
    bucket = rollout_bucket("HOMEPAGE_EXPERIMENT::7")
    variant, share = (
        ("VARIANT_A", "0-999")
        if bucket < 1000
        else ("VARIANT_B", "1,000-1,999")
        if bucket < 2000
        else ("CONTROL", "2,000-9,999")
    )
    reason = f"rule (bucket {bucket:,} of 10,000: {variant} covers {share})"
    assert f"HOMEPAGE_EXPERIMENT = {variant}  because: {reason}" in result.output
