"""The home page shows the sample flags in action: MY_NEW_FEATURE for the team, the headline experiment."""

import re

import pytest

EXPERIMENT_HEADLINES = {
    "VARIANT_A": "Ship when it is ready, not when you deploy.",
    "VARIANT_B": "Try it on your team first. Then on everyone.",
    "CONTROL": "Welcome to",
}


def sees_my_new_feature(client):
    return 'id="my-new-feature"' in client.get("/").text


def experiment_variant(page):
    """The HOMEPAGE_EXPERIMENT variant the page says it rendered."""
    return re.search(r'id="homepage-experiment" data-flag="\w+" data-variant="(\w+)"', page).group(1)


def test_home_page_shows_the_app_name(app, client):
    """The home page answers and its title is the app's name."""
    response = client.get("/")
    assert response.status_code == 200
    assert f"<title>{app.config['APP_NAME']}</title>" in response.text


@pytest.mark.parametrize("user_id", [1, 2, 3])
def test_team_users_see_my_new_feature(client, make_user, login, user_id):
    """Users 1, 2 and 3 (the team in the flag's rule) see the MY_NEW_FEATURE block."""
    login(client, make_user(f"team{user_id}@example.com", user_id=user_id))
    assert sees_my_new_feature(client)


def test_other_users_do_not_see_my_new_feature(client, user, login):
    """A signed-in user outside the team does not get the block."""
    login(client, user)
    assert not sees_my_new_feature(client)


def test_anonymous_visitors_do_not_see_my_new_feature(client):
    """Visitors who are not logged in do not get the block."""
    assert not sees_my_new_feature(client)


def test_is_dev_shows_my_new_feature_to_everyone(make_app):
    """With IS_DEV on (the rule's development switch) even anonymous visitors see it."""
    assert sees_my_new_feature(make_app(IS_DEV=True).test_client())


@pytest.mark.parametrize("variant", EXPERIMENT_HEADLINES)
def test_each_experiment_variant_shows_its_headline(client, force_flag, variant):
    """Whichever HOMEPAGE_EXPERIMENT variant a visitor gets decides the headline, and the page says which."""
    force_flag("HOMEPAGE_EXPERIMENT", variant)
    page = client.get("/").text
    assert experiment_variant(page) == variant
    assert EXPERIMENT_HEADLINES[variant] in page
    others = [headline for name, headline in EXPERIMENT_HEADLINES.items() if name != variant]
    assert not any(headline in page for headline in others)


def test_a_visitor_keeps_their_experiment_variant(client):
    """The experiment is sticky: the same visitor gets the same headline on every visit."""
    variants = {experiment_variant(client.get("/").text) for _ in range(5)}
    assert len(variants) == 1


def test_flag_table_lists_each_flag_with_variant_and_reason(client, admin, login):
    """The "Your flags" table shows what each flag gives the viewer and why."""
    login(client, admin)
    page = client.get("/").text
    row = re.search(r'<tr data-flag="MY_NEW_FEATURE" data-variant="VISIBLE">(.*?)</tr>', page, re.S).group(1)
    assert "rule" in row
    assert 'data-flag="HOMEPAGE_EXPERIMENT"' in page


def test_admins_get_a_link_to_the_flag_dashboard(client, admin, login):
    """The header links admins to the flag dashboard."""
    login(client, admin)
    assert 'href="/gatekeeper/">Flags</a>' in client.get("/").text


def test_other_users_get_no_dashboard_link(client, user, login):
    """Users who are not admins see no link to a page they cannot open."""
    login(client, user)
    assert 'href="/gatekeeper/"' not in client.get("/").text


def test_force_flag_shows_my_new_feature_to_a_user_outside_the_team(client, user, login, force_flag):
    """The `force_flag` fixture overrides the flag's rule for everyone, so tests need not pick team ids."""
    force_flag("MY_NEW_FEATURE", "VISIBLE")
    login(client, user)
    assert sees_my_new_feature(client)


def test_force_flag_can_hide_my_new_feature_from_the_team(client, admin, login, force_flag):
    """Forcing the other variant hides the block even from a team member."""
    force_flag("MY_NEW_FEATURE", "NOT_VISIBLE")
    login(client, admin)
    assert not sees_my_new_feature(client)
