"""The flag list's views: the rule split as a bar with numbers, state filters, sort and a compact mode, all
server-side and linkable; and no inline style or script anywhere (a strict CSP must not break the pages)."""

import re
from typing import ClassVar

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_config import HomepageExperimentFFConfig
from {{ cookiecutter.package_name }}.gatekeeper_control.who_sees_what import rule_split
from tests.store_helpers import write_stale_overrides

FLAG = "HOMEPAGE_EXPERIMENT"


class WithRollout(HomepageExperimentFFConfig):
    ROLLOUT: ClassVar[dict[str, int]] = {"VARIANT_A": 10, "VARIANT_B": 10, "CONTROL": 80}


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


@pytest.fixture
def with_rollout(app, monkeypatch):
    """HOMEPAGE_EXPERIMENT with its 10/10/80 weights in code, as `ROLLOUT`."""
    monkeypatch.setitem(gatekeeper.get_state(app).config_map, FLAG, WithRollout())


def listed(page):
    return re.findall(r'class="gk-flag-name" href="[^"]+">(\w+)</a>', page)


# --- The rule split -----------------------------------------------------------------------------------------


def test_rule_split_gives_each_variants_share_in_percent():
    """The config's ROLLOUT weights, as percentages of their total."""
    assert rule_split(WithRollout()) == {"VARIANT_A": 10.0, "VARIANT_B": 10.0, "CONTROL": 80.0}


@pytest.mark.parametrize("weights", [None, {}, {"ON": "lots"}, {"ON": 0}, {"ON": -5, "OFF": 10}])
def test_rule_split_is_none_without_usable_weights(weights):
    """No ROLLOUT, or one that is not positive numbers: no split (and no bar), never an error."""

    class Config(HomepageExperimentFFConfig):
        ROLLOUT = weights

    assert rule_split(Config()) is None


@pytest.mark.parametrize("path", [f"/gatekeeper/?q={FLAG}", f"/gatekeeper/flags/{FLAG}"])
def test_the_split_is_drawn_as_a_bar_with_the_numbers_as_text(admin_client, with_rollout, path):
    """The list and the flag page draw one SVG rect per variant, its width the share, and say the shares."""
    page = admin_client.get(path).text
    widths = re.findall(r'<rect class="gk-split-\d" x="[\d.]+" y="0" width="([\d.]+)"', page)
    assert widths == ["10.00", "10.00", "80.00"]
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "VARIANT_A 10% VARIANT_B 10% CONTROL 80% (weights in code)" in text


def test_a_flag_without_weights_draws_no_bar(admin_client):
    """MY_NEW_FEATURE's rule is a team check, not a split: no bar."""
    assert "gk-split-bar" not in admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE").text


@pytest.mark.parametrize(
    "path", ["/gatekeeper/", "/gatekeeper/?density=compact", f"/gatekeeper/flags/{FLAG}", "/gatekeeper/audit"]
)
def test_no_page_has_inline_style_or_script(admin_client, with_rollout, path):
    """Nothing a strict Content-Security-Policy would block: no style attributes, no inline scripts."""
    admin_client.post(f"/gatekeeper/flags/{FLAG}/force", data={"variant": "CONTROL", "confirm": "yes"})
    page = admin_client.get(path).text
    assert " style=" not in page and "<style" not in page
    assert re.findall(r"<script[^>]*>", page) == re.findall(r"<script src=[^>]*>", page) != []


# --- State filters ------------------------------------------------------------------------------------------


def test_the_forced_filter_keeps_the_forced_flags(admin_client):
    """`?state=forced` lists only flags forced for everyone, and says how many of all flags that is."""
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/force", data={"variant": "VISIBLE", "confirm": "yes"})
    page = admin_client.get("/gatekeeper/?state=forced").text
    assert listed(page) == ["MY_NEW_FEATURE"]
    assert "1 of 4 flags: forced." in page
    assert 'aria-current="true">Forced (1)</a>' in page


def test_the_overridden_filter_keeps_flags_with_user_overrides(admin_client):
    """`?state=overridden`: flags with at least one stored user override."""
    admin_client.post(f"/gatekeeper/flags/{FLAG}/users", data={"user": "1", "variant": "CONTROL"})
    assert listed(admin_client.get("/gatekeeper/?state=overridden").text) == [FLAG]


def test_the_stale_filter_keeps_flags_with_stale_overrides(app, admin_client):
    """`?state=stale`: flags with overrides the code no longer understands."""
    write_stale_overrides(app)
    assert listed(admin_client.get("/gatekeeper/?state=stale").text) == ["MY_NEW_FEATURE"]


def test_the_rolling_out_filter_keeps_split_flags_that_are_not_forced(admin_client, with_rollout):
    """`?state=rolling_out`: a rule that splits users between variants, unless a force overrides it."""
    assert listed(admin_client.get("/gatekeeper/?state=rolling_out").text) == [FLAG, "NEW_CHECKOUT"]
    admin_client.post(f"/gatekeeper/flags/{FLAG}/force", data={"variant": "CONTROL", "confirm": "yes"})
    assert listed(admin_client.get("/gatekeeper/?state=rolling_out").text) == ["NEW_CHECKOUT"]
    admin_client.post("/gatekeeper/flags/NEW_CHECKOUT/force", data={"variant": "OFF", "confirm": "yes"})
    page = admin_client.get("/gatekeeper/?state=rolling_out").text
    assert listed(page) == []
    assert "No flag is rolling out." in page


def test_an_unknown_state_or_sort_shows_every_flag(admin_client):
    """A hand-typed `?state=` or `?sort=` the list does not know is ignored, never an error."""
    response = admin_client.get("/gatekeeper/?state=nope&sort=<x>")
    assert response.status_code == 200
    assert listed(response.text) == [FLAG, "MY_NEW_FEATURE", "NEW_CHECKOUT", "WELCOME_MESSAGE"]


# --- Sort and density ---------------------------------------------------------------------------------------


def test_flags_sort_by_name_or_by_last_change(admin_client):
    """By name by default; `?sort=changed` puts the most recently changed flag first."""
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/force", data={"variant": "VISIBLE", "confirm": "yes"})
    admin_client.post(f"/gatekeeper/flags/{FLAG}/force", data={"variant": "CONTROL", "confirm": "yes"})
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/unforce", data={"confirm": "yes"})
    assert listed(admin_client.get("/gatekeeper/").text) == [
        FLAG,
        "MY_NEW_FEATURE",
        "NEW_CHECKOUT",
        "WELCOME_MESSAGE",
    ]
    changed_first = ["MY_NEW_FEATURE", FLAG, "NEW_CHECKOUT", "WELCOME_MESSAGE"]
    assert listed(admin_client.get("/gatekeeper/?sort=changed").text) == changed_first


def test_compact_mode_is_a_link_that_keeps_the_other_choices(admin_client):
    """`?density=compact` marks the table compact; every view link keeps the filter, state and sort."""
    page = admin_client.get("/gatekeeper/?q=home&sort=changed&density=compact").text
    assert 'class="gk-table gk-flags gk-compact"' in page
    assert 'href="/gatekeeper/?q=home&amp;state=forced&amp;sort=changed&amp;density=compact"' in page
    assert 'href="/gatekeeper/?q=home&amp;sort=changed">Comfortable</a>' in page
    assert '<input type="hidden" name="density" value="compact">' in page


def test_the_default_variant_is_labelled_in_text(admin_client):
    """Not only a dashed border: the list says "(default)" after the default variant."""
    page = admin_client.get("/gatekeeper/").text
    assert re.search(r"NOT_VISIBLE<span class=\"gk-default-label\"> \(default\)</span>", page)
