"""The flag list at scale: a search across name, description, owner and tags, filters by owner, tag and
expiry, pages of 50 flags, and the on/off switch in each row (with the flag page's confirmation)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_config import MyNewFeatureFFConfig
from tests.store_helpers import audit_log, snapshot


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def listed(page: str) -> list[str]:
    return re.findall(r'class="gk-flag-name" href="[^"]+">(\w+)</a>', page)


def flag(name: str, **attributes) -> gatekeeper.FeatureFlagConfig:
    return type(f"{name}FFConfig", (MyNewFeatureFFConfig,), {"FLAG_NAME": name, **attributes})()


@pytest.fixture
def add_flags(app, monkeypatch):
    """`add_flags({name: config})`: the app also has these flags until the test ends."""

    def add(configs: dict[str, gatekeeper.FeatureFlagConfig]) -> None:
        for name, config in configs.items():
            monkeypatch.setitem(gatekeeper.get_state(app).config_map, name, config)

    return add


# --- Search -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("growth-team", ["HOMEPAGE_EXPERIMENT"]),  # the owner
        ("checkout", ["NEW_CHECKOUT"]),  # a tag (and the description)
        ("content", ["WELCOME_MESSAGE"]),  # a tag only
        ("experiment growth", ["HOMEPAGE_EXPERIMENT"]),  # every word, anywhere
        ("experiment checkout", []),
    ],
)
def test_the_search_finds_flags_by_owner_and_tag_as_by_name(admin_client, query, found):
    """Each word of `?q=` must be in the flag's name, description, owner or tags."""
    assert listed(admin_client.get("/gatekeeper/", query_string={"q": query}).text) == found


def test_the_search_finds_expired_flags_by_the_word(admin_client, add_flags):
    """The word "expired" finds the flags past their EXPIRES date, as the chip in their row says."""
    add_flags({"OLD_BANNER": flag("OLD_BANNER", EXPIRES="2020-01-31")})
    assert listed(admin_client.get("/gatekeeper/?q=expired").text) == ["OLD_BANNER"]


def test_each_row_carries_what_the_script_searches(admin_client):
    """The page's script narrows rows by the same text the server searches: owner and tags included."""
    page = admin_client.get("/gatekeeper/?q=HOMEPAGE").text
    assert re.search(r'data-gk-search="homepage_experiment [^"]*growth-team experiment homepage"', page)


# --- Filters ------------------------------------------------------------------------------------------------


def test_the_owner_and_tag_filters_keep_only_their_flags(admin_client):
    """`?owner=` and `?tag=` offer the owners and tags the flags have, and keep the flags that match."""
    page = admin_client.get("/gatekeeper/").text
    assert '<option value="growth-team">growth-team</option>' in page
    assert '<option value="checkout">checkout</option>' in page
    assert listed(admin_client.get("/gatekeeper/?owner=growth-team").text) == ["HOMEPAGE_EXPERIMENT"]
    page = admin_client.get("/gatekeeper/?tag=rollout").text
    assert listed(page) == ["NEW_CHECKOUT"]
    assert "1 of 4 flags: tag rollout." in page


def test_an_unknown_owner_tag_or_expiry_is_ignored(admin_client):
    """A hand-typed value that no flag has narrows nothing and is never an error."""
    response = admin_client.get("/gatekeeper/?owner=nobody&tag=<x>&expiry=someday")
    assert response.status_code == 200
    assert len(listed(response.text)) == 4


def test_the_expiry_filter_tells_expired_soon_and_never(admin_client, add_flags):
    """Expired: past the date; soon: within 30 days from today; none: no EXPIRES at all."""
    soon = (date.today() + timedelta(days=10)).isoformat()
    add_flags(
        {
            "OLD_BANNER": flag("OLD_BANNER", EXPIRES="2020-01-31"),
            "SOON_GONE": flag("SOON_GONE", EXPIRES=soon),
        }
    )
    assert listed(admin_client.get("/gatekeeper/?expiry=expired").text) == ["OLD_BANNER"]
    assert listed(admin_client.get("/gatekeeper/?expiry=soon").text) == ["SOON_GONE"]
    never = listed(admin_client.get("/gatekeeper/?expiry=none").text)
    assert "MY_NEW_FEATURE" in never and "OLD_BANNER" not in never and "HOMEPAGE_EXPERIMENT" not in never


# --- Paging -------------------------------------------------------------------------------------------------


def test_a_long_list_is_shown_fifty_flags_to_a_page(admin_client, add_flags):
    """120 more flags: page 1 has 50, page 3 the last 24; a page past the end is the last; the pager's links
    keep the search and filters, and the script's type-to-filter is off (it would filter one page only)."""
    add_flags({f"BULK_{n:03d}": flag(f"BULK_{n:03d}") for n in range(120)})
    first = admin_client.get("/gatekeeper/").text
    assert listed(first)[:2] == ["BULK_000", "BULK_001"] and len(listed(first)) == 50
    assert "Page 1 of 3" in first and "Showing 1 to 50." in first
    assert "data-gk-filter" not in first
    last = listed(admin_client.get("/gatekeeper/?page=3").text)
    assert len(last) == 24 and last[-1] == "WELCOME_MESSAGE"
    assert listed(admin_client.get("/gatekeeper/?page=99").text) == last
    searched = admin_client.get("/gatekeeper/?q=bulk&density=compact").text
    assert 'href="/gatekeeper/?q=bulk&amp;density=compact&amp;page=2"' in searched
    assert "120 of 124 flags match" in searched


# --- On and off from the list -------------------------------------------------------------------------------


def test_switching_off_from_the_list_needs_the_confirmation_box(app, admin_client):
    """Without the box ticked nothing changes and the list says why; with it the flag is off, audited as
    the flag page's switch is, and the admin is back on the same view of the list."""
    view = {"q": "feature", "density": "compact"}
    response = admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/switch", data={"to": "off", **view})
    assert response.headers["Location"] == "/gatekeeper/?q=feature&density=compact"
    assert "MY_NEW_FEATURE" not in snapshot(app).disabled
    assert "Tick the confirmation box" in admin_client.get(response.headers["Location"]).text
    data = {"to": "off", "confirm": "yes", "reason": "broken in prod", **view}
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/switch", data=data)
    assert "MY_NEW_FEATURE" in snapshot(app).disabled
    entry = audit_log(app, "MY_NEW_FEATURE")[0]
    assert (entry.action, entry.reason) == ("off", "broken in prod")
    page = admin_client.get("/gatekeeper/?state=off").text
    assert listed(page) == ["MY_NEW_FEATURE"]
    assert 'aria-label="Switch on MY_NEW_FEATURE"' in page


def test_switching_on_from_the_list_restores_the_rules(app, admin_client):
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/switch", data={"to": "off", "confirm": "yes"})
    admin_client.post("/gatekeeper/flags/MY_NEW_FEATURE/switch", data={"to": "on"})
    assert "MY_NEW_FEATURE" not in snapshot(app).disabled
    assert [entry.action for entry in audit_log(app, "MY_NEW_FEATURE")[:2]] == ["on", "off"]


def test_the_list_switch_of_an_unknown_flag_is_404(admin_client):
    data = {"to": "off", "confirm": "yes"}
    response = admin_client.post("/gatekeeper/flags/NO_SUCH_FLAG/switch", data=data)
    assert response.status_code == 404
