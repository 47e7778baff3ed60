"""The dashboard says who sees what: a step the engine would skip for a user is marked shadowed, by the
step that answers instead; and the dashboard's own 403 page and filter count."""

import html
import itertools
import re

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_config import HomepageExperimentFFConfig
from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting
from {{ cookiecutter.package_name }}.gatekeeper_control.who_sees_what import EVALUATION_ORDER, shadowed_by

FLAG = "HOMEPAGE_EXPERIMENT"
FLAG_PAGE = f"/gatekeeper/flags/{FLAG}"
STEPS = [step for step, _label in EVALUATION_ORDER]
LABELS = dict(EVALUATION_ORDER)
# The steps that are set only when someone sets them; the rule and the default are always there.
OPTIONAL_STEPS = ["browser_override", "disabled", "forced", "user_override", "code_override", "group_target"]
# What the engine names as its reason when each step answers.
ENGINE_REASON = {
    "browser_override": "browser_override",
    "disabled": "disabled",
    "forced": "forced",
    "user_override": "user_override",
    "code_override": "user_override",
    "group_target": "group_target",
    "rule": "rule",
}


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


@pytest.fixture
def set_step(app, admin_client, monkeypatch):
    """`set_step(step, variant)`: make `step` give the admin (id 1) `variant` of HOMEPAGE_EXPERIMENT."""

    def browser_override(variant):
        admin_client.post(f"{FLAG_PAGE}/browser-override", data={"variant": variant})

    def disabled(variant):  # switched off, the flag serves its default whatever the variant asked
        admin_client.post(f"{FLAG_PAGE}/off", data={"confirm": "yes"})

    def forced(variant):
        admin_client.post(f"{FLAG_PAGE}/force", data={"variant": variant, "confirm": "yes"})

    def user_override(variant):
        admin_client.post(f"{FLAG_PAGE}/users", data={"user": "1", "variant": variant})

    def code_override(variant):
        config_map = gatekeeper.get_state(app).config_map
        monkeypatch.setitem(config_map, FLAG, HomepageExperimentFFConfig(overrides={variant: [1]}))

    def group_target(variant):
        with app.app_context():
            targeting.create_group("testers", "The admin alone", actor="test")
            targeting.add_members("testers", ["1"], actor="test")
            targeting.target(FLAG, "testers", variant, actor="test")

    setters = {
        "browser_override": browser_override,
        "disabled": disabled,
        "forced": forced,
        "user_override": user_override,
        "code_override": code_override,
        "group_target": group_target,
    }
    return lambda step, variant: setters[step](variant)


def step_item(page, step):
    """The text of one step of the flag page's evaluation order."""
    match = re.search(rf'<li data-gk-step="{step}"[^>]*>(.*?)</li>', page, re.S)
    assert match, f"no step {step} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def winning_step(page):
    return re.search(r'<li data-gk-step="(\w+)" class="gk-step gk-step-wins"', page).group(1)


def test_the_evaluation_order_lists_every_engine_step_in_order(admin_client):
    """The flag page shows the engine's whole evaluation order, highest first, as the dashboard knows it."""
    page = admin_client.get(FLAG_PAGE).text
    assert re.findall(r'<li data-gk-step="(\w+)"', page) == STEPS


PAIRS = list(itertools.combinations(STEPS, 2))


@pytest.mark.parametrize(("higher", "lower"), PAIRS, ids=[f"{high}-over-{low}" for high, low in PAIRS])
def test_a_higher_step_shadows_a_lower_one(app, admin_client, set_step, higher, lower):
    """With both steps giving the admin a variant, the lower one is marked "shadowed" by the higher one, and
    the one the page says applies is the one the engine answers with."""
    if lower in OPTIONAL_STEPS:
        set_step(lower, "VARIANT_A")
    if higher in OPTIONAL_STEPS:
        set_step(higher, "VARIANT_B")
    page = admin_client.get(FLAG_PAGE).text
    assert f"shadowed: {LABELS[higher]}" in step_item(page, lower)
    assert winning_step(page) == higher
    assert "applies" in step_item(page, higher)
    with app.test_request_context():
        evaluation = Gatekeeper(user_id=1).explain(FLAG)
    if higher != "browser_override":  # the cookie is this browser's: a bare Gatekeeper has none
        assert evaluation.reason == ENGINE_REASON[higher]
    if higher in OPTIONAL_STEPS:
        expected = "CONTROL" if higher == "disabled" else "VARIANT_B"  # off: the default, CONTROL
        assert f"You get <code>{expected}</code>" in page


def test_a_user_override_shadowed_by_a_forced_variant_says_what_the_user_gets(app, admin_client, make_user):
    """VARIANT_A forced for everyone and Ann pinned to VARIANT_B: Ann's row says her override is shadowed and
    that she gets VARIANT_A, which is what the engine serves her."""
    ann = make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": ann.email, "variant": "VARIANT_B"})
    admin_client.post(f"{FLAG_PAGE}/force", data={"variant": "VARIANT_A", "confirm": "yes"})
    page = admin_client.get(FLAG_PAGE).text
    row = re.search(r"<tr>\s*<td data-label=\"User\">ann@example.com.*?</tr>", page, re.S).group(0)
    text = " ".join(re.sub(r"<[^>]+>", " ", row).split())
    assert "shadowed: forced for everyone" in text
    assert "gets VARIANT_A" in text
    with app.app_context():
        assert Gatekeeper(user_id=7).explain(FLAG).variant == "VARIANT_A"


def test_a_user_override_nothing_shadows_is_not_marked(admin_client, make_user):
    """Without a forced variant, Ann's override is what she gets, and her row says nothing more."""
    ann = make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": ann.email, "variant": "VARIANT_B"})
    assert "shadowed" not in admin_client.get(FLAG_PAGE).text.split('id="gk-users"')[1]


def test_a_stale_forced_variant_shadows_nothing(app, admin_client, make_user, monkeypatch):
    """A forced variant the flag no longer has is ignored by the engine, so it shadows no override either."""
    ann = make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": ann.email, "variant": "VARIANT_B"})
    admin_client.post(f"{FLAG_PAGE}/force", data={"variant": "VARIANT_A", "confirm": "yes"})

    class WithoutVariantA(HomepageExperimentFFConfig):
        VARIANTS_ENUM_STR = "VARIANT_B CONTROL"

    monkeypatch.setitem(gatekeeper.get_state(app).config_map, FLAG, WithoutVariantA())
    assert "shadowed" not in admin_client.get(FLAG_PAGE).text.split('id="gk-users"')[1]
    with app.app_context():
        assert Gatekeeper(user_id=7).explain(FLAG).variant == "VARIANT_B"


def test_code_overrides_shadowed_by_a_stored_override_are_marked(app, admin_client, set_step):
    """A user pinned in code and also in the store gets the stored variant: the code line says so."""
    set_step("code_override", "VARIANT_A")
    set_step("user_override", "VARIANT_B")
    page = admin_client.get(FLAG_PAGE).text
    item = re.search(r'<span data-gk-code-override="1">(.*?)</span>;?\s*</p>', page, re.S).group(1)
    assert "shadowed: a stored user override" in item


def test_shadowed_by_walks_the_order_from_the_top():
    """`shadowed_by(step, active)` names the first active step above `step`, None when there is none."""
    assert shadowed_by("rule", {"forced": "A", "user_override": "B", "rule": None}) == "forced for everyone"
    assert shadowed_by("forced", {"forced": "A", "rule": None}) is None
    with pytest.raises(ValueError, match="not a step"):
        shadowed_by("no_such_step", {})


# --- The dashboard's 403 ------------------------------------------------------------------------------------


def test_a_non_admin_gets_the_dashboards_own_403_page(client, user, login):
    """A signed-in non-admin gets a 403 in the dashboard's layout: who may open it, how to become one, and a
    link back to the app; not Werkzeug's bare "Forbidden" page."""
    login(client, user)
    response = client.get("/gatekeeper/")
    assert response.status_code == 403
    page = response.text
    assert 'class="gk"' in page and "gatekeeper.css" in page
    assert "You cannot open the flag dashboard" in page
    assert "can_manage" in page and "is_admin" in page
    assert "flask users create EMAIL --admin" in page
    assert re.search(r'<a class="gk-button" href="/">Back to', page)
    assert "Forbidden" not in page


def test_a_refused_change_gets_the_same_403_page(client, user, login):
    """A POST from a non-admin is refused with the same page, and the nav offers no dashboard links."""
    login(client, user)
    response = client.post(f"{FLAG_PAGE}/force", data={"variant": "VARIANT_A", "confirm": "yes"})
    assert response.status_code == 403
    assert "You cannot open the flag dashboard" in response.text
    assert 'href="/gatekeeper/audit"' not in response.text


# --- The filter's total -------------------------------------------------------------------------------------


def test_the_filter_count_knows_the_total_after_a_server_side_filter(admin_client):
    """After `?q=home` the page holds one flag, but the count the script updates knows there are two."""
    page = admin_client.get("/gatekeeper/?q=home").text
    assert 'data-gk-total="4"' in page
    assert "1 of 4 flags match" in page
