"""A real browser on a real server: the defaults bake served by gunicorn, driven by headless Chromium.

One server per test module (per pytest-xdist worker); every test opens its own browser contexts, so tests do
not share cookies and may run in any order. Screenshots land in build/test-output/browser/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import BUILD_DIR, copy_project, flask_cli, gunicorn

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = BUILD_DIR / "test-output" / "browser"
PASSWORD = "a browser test password"
ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(baked_project, baked_env, tmp_path_factory) -> Iterator[str]:
    """The URL of the defaults bake on its own SQLite file, with an admin (id 1) and a viewer (id 2)."""
    project = copy_project(baked_project, tmp_path_factory.mktemp("browser"))
    env = {**baked_env(), "DATABASE_URL": f"sqlite:///{project / 'browser.db'}"}
    flask_cli(project, env, "init-db")
    flask_cli(project, env, "users", "create", ADMIN, "--admin", "--password", PASSWORD)
    flask_cli(project, env, "users", "create", VIEWER, "--password", PASSWORD)
    with gunicorn(project, env, "--workers", "1", "--threads", "4") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """The console messages of every page `open_as` opened that report something the CSP blocked."""
    return []


@pytest.fixture
def open_as(browser, server, csp_violations):
    """`open_as(email)`: a fresh browser context logged in through the login form, on a new page; at the end
    of the test, none of its pages may have had anything blocked by the Content-Security-Policy."""
    contexts = []

    def open_page(email: str, viewport: dict[str, int] | None = None, color_scheme: str = "light", **options):
        """`options`: more of Playwright's context options, e.g. bypass_csp=True to inject a script."""
        viewport = viewport or {"width": 1280, "height": 800}
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: record_csp_violation(message.text, csp_violations))
        page.on("dialog", lambda dialog: dialog.accept())  # the dashboard's "are you sure?" on a kill switch
        page.goto(f"{server}/auth/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(f"{server}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert csp_violations == [], "the Content-Security-Policy blocked something"


def record_csp_violation(text: str, violations: list[str]) -> None:
    if "Content Security Policy" in text:
        violations.append(text)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def home_shows_my_new_feature(page, server: str) -> bool:
    page.goto(f"{server}/")
    return page.locator("#my-new-feature").count() == 1


def experiment_variant(page, server: str) -> str:
    page.goto(f"{server}/")
    return page.get_attribute("#homepage-experiment", "data-variant")


def force_for_everyone(page, server: str, flag: str, variant: str) -> None:
    page.goto(f"{server}/gatekeeper/flags/{flag}")
    page.click("#forced summary")  # the force form is folded away until asked for
    form = page.locator("form", has=page.locator("button:has-text('Force for everyone')"))
    form.locator("select[name=variant]").select_option(variant)
    form.locator("input[name=confirm]").check()
    form.locator("button:has-text('Force for everyone')").click()
    page.wait_for_load_state()


def stop_forcing(page, server: str, flag: str) -> None:
    page.goto(f"{server}/gatekeeper/flags/{flag}")
    form = page.locator("form", has=page.locator("button:has-text('Stop forcing')"))
    form.locator("input[name=confirm]").check()
    form.locator("button:has-text('Stop forcing')").click()
    page.wait_for_load_state()


def test_logging_in_as_admin_opens_the_dashboard_with_every_flag(open_as, server):
    """The admin logs in through the form, follows the header's Flags link and sees both sample flags."""
    page = open_as(ADMIN)
    page.click("header a:has-text('Flags')")
    page.wait_for_url(f"{server}/gatekeeper/")
    names = page.locator("a.gk-flag-name").all_inner_texts()
    assert {"MY_NEW_FEATURE", "HOMEPAGE_EXPERIMENT"} <= set(names)
    assert screenshot(page, "flag-list").stat().st_size > 0
    page.set_viewport_size({"width": 390, "height": 844})
    assert screenshot(page, "flag-list-phone").stat().st_size > 0


def test_a_browser_override_changes_the_admins_home_page(open_as, server):
    """Admin (id 1, on the team) sees MY_NEW_FEATURE; a browser override to NOT_VISIBLE hides it."""
    page = open_as(ADMIN)
    assert home_shows_my_new_feature(page, server)

    page.goto(f"{server}/gatekeeper/flags/MY_NEW_FEATURE")
    page.select_option("#gk-browser-variant", "NOT_VISIBLE")
    page.click("form:has(#gk-browser-variant) button:has-text('Save')")
    page.wait_for_load_state()
    assert "browser override" in page.inner_text(".gk-you-get")
    assert screenshot(page, "flag-page").stat().st_size > 0
    assert not home_shows_my_new_feature(page, server)

    page.goto(f"{server}/gatekeeper/flags/MY_NEW_FEATURE")
    page.select_option("#gk-browser-variant", "")
    page.click("form:has(#gk-browser-variant) button:has-text('Save')")
    page.wait_for_load_state()
    assert home_shows_my_new_feature(page, server)


def test_a_variant_forced_for_everyone_reaches_another_users_browser_until_cleared(open_as, server):
    """Forcing HOMEPAGE_EXPERIMENT to a variant the viewer does not get reaches the viewer's browser; stopping
    gives the viewer their own variant back."""
    viewer = open_as(VIEWER)
    own = experiment_variant(viewer, server)
    other = next(variant for variant in ("VARIANT_A", "VARIANT_B", "CONTROL") if variant != own)

    admin = open_as(ADMIN)
    force_for_everyone(admin, server, "HOMEPAGE_EXPERIMENT", other)
    assert other in admin.inner_text(".gk-card-forced")
    assert experiment_variant(viewer, server) == other

    stop_forcing(admin, server, "HOMEPAGE_EXPERIMENT")
    assert admin.locator(".gk-card-forced").count() == 0
    assert experiment_variant(viewer, server) == own


def test_the_audit_log_shows_who_forced_and_cleared_a_flag(open_as, server):
    """Every forced change is in the audit log, newest first, with the admin as the actor."""
    admin = open_as(ADMIN)
    force_for_everyone(admin, server, "MY_NEW_FEATURE", "VISIBLE")
    stop_forcing(admin, server, "MY_NEW_FEATURE")

    admin.goto(f"{server}/gatekeeper/audit")
    rows = admin.locator("table.gk-audit tbody tr")
    newest, previous = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert ADMIN in newest and "MY_NEW_FEATURE" in newest and "stopped forcing" in newest
    assert ADMIN in previous and "MY_NEW_FEATURE" in previous and "forced for everyone" in previous
    assert "VISIBLE" in newest and "VISIBLE" in previous  # the variant before, and after
    assert screenshot(admin, "audit-log").stat().st_size > 0


def test_a_non_admin_gets_403_from_the_dashboard(open_as, server):
    """The viewer is logged in but not an admin: the dashboard answers 403 and no Flags link is shown."""
    viewer = open_as(VIEWER)
    assert viewer.locator("header a:has-text('Flags')").count() == 0
    response = viewer.goto(f"{server}/gatekeeper/")
    assert response.status == 403


def test_forcing_without_ticking_the_confirmation_box_changes_nothing(open_as, server):
    """The browser will not submit the kill switch until its confirmation box is ticked."""
    admin = open_as(ADMIN)
    admin.goto(f"{server}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
    admin.click("#forced summary")
    admin.click("button:has-text('Force for everyone')")
    forcing = admin.locator("form:has(button:has-text('Force for everyone'))")
    assert forcing.locator("input[name=confirm]:invalid").count() == 1  # the browser flags the box
    admin.reload()
    assert admin.locator(".gk-card-forced").count() == 0


def test_the_filter_box_narrows_the_flag_list_as_you_type(open_as, server):
    """With JavaScript the filter hides non-matching flags at each keystroke, without a round trip."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/")
    page.keyboard.press("/")  # focuses the filter, as in most developer tools
    page.keyboard.type("headline")  # in HOMEPAGE_EXPERIMENT's description only
    visible = page.locator("#gk-flags tbody tr:visible a.gk-flag-name").all_inner_texts()
    assert visible == ["HOMEPAGE_EXPERIMENT"]
    assert page.inner_text("[data-gk-count]") == "1 of 4 flags shown."
    assert page.url == f"{server}/gatekeeper/"  # nothing was submitted
    page.keyboard.type("zzz")
    assert page.locator("#gk-flags tbody tr:visible").count() == 0
    assert page.locator("[data-gk-empty]").is_visible()


def new_checkout_share(server: str, visitors: int = 200) -> float:
    """The share of fresh anonymous visitors (plain requests, no cookies) who get NEW_CHECKOUT ON."""
    on = 0
    for _ in range(visitors):
        with urllib.request.urlopen(f"{server}/", timeout=10) as response:
            page = response.read().decode()
        on += bool(re.search(r'id="new-checkout" data-flag="NEW_CHECKOUT" data-variant="ON"', page))
    return on / visitors


def save_weights(page, server: str, weights: dict[str, str]) -> None:
    page.goto(f"{server}/gatekeeper/flags/NEW_CHECKOUT")
    form = page.locator("form", has=page.locator("button:has-text('Save weights')"))
    for variant, percent in weights.items():  # the rest variant's share is what is left of 100%
        form.locator(f"input[name=weight-{variant}]").fill(percent)
    form.locator("button:has-text('Save weights')").click()
    page.wait_for_load_state()


def test_ramping_new_checkout_on_the_dashboard_moves_the_share_of_new_visitors(open_as, server):
    """10% -> 50% in the Rollout form: of 200 fresh visitors about a tenth, then about half, get ON."""
    page = open_as(ADMIN)
    before = new_checkout_share(server)
    save_weights(page, server, {"ON": "50"})
    try:
        assert "NEW_CHECKOUT: rolls out ON=50 OFF=50 now (was in code: ON=10 OFF=90)." in page.inner_text(
            ".gk-alert-success"
        )
        assert screenshot(page, "flag-rollout").stat().st_size > 0
        after = new_checkout_share(server)
    finally:
        page.goto(f"{server}/gatekeeper/flags/NEW_CHECKOUT")
        page.click("button:has-text('Back to the weights in code')")
        page.wait_for_load_state()
    assert before < 0.25  # 10% expected; 50 or more of 200 is vanishingly unlikely
    assert 0.35 < after < 0.65


INJECT_INLINE_SCRIPT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.inlineScriptRan = true";
  document.head.appendChild(script);
}"""


def test_every_page_runs_under_the_csp_with_nothing_blocked(open_as, server, csp_violations):
    """Home, login, dashboard, flag and audit pages are served with the CSP and load their CSS and script
    without a single violation (the dashboard's filter script runs: the count line is rewritten)."""
    page = open_as(ADMIN)
    pages = ["/", "/auth/login", "/gatekeeper/", "/gatekeeper/flags/MY_NEW_FEATURE", "/gatekeeper/audit"]
    pages += ["/gatekeeper/flags/NEW_CHECKOUT", "/gatekeeper/groups", f"/gatekeeper/users?q={ADMIN}"]
    pages += ["/gatekeeper/schedules"]
    for path in pages:
        response = page.goto(f"{server}{path}")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.goto(f"{server}/gatekeeper/")
    page.fill("#gk-filter", "headline")
    assert page.inner_text("[data-gk-count]") == "1 of 4 flags shown."
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 0  # the stylesheet was let in
    assert csp_violations == []
    # The check can fail: an inline script is blocked, and its violation reaches the list.
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate(INJECT_INLINE_SCRIPT)
    assert page.evaluate("window.inlineScriptRan === undefined")
    assert len(csp_violations) == 1
    csp_violations.clear()


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_the_filter_hides_the_cards_that_do_not_match(open_as, server):
    """At 390 px each flag is a card (`display: block`); typing a filter must still hide the others."""
    page = open_as(ADMIN, viewport=PHONE)
    page.goto(f"{server}/gatekeeper/")
    page.fill("#gk-filter", "zzz")
    assert page.inner_text("[data-gk-count]") == "0 of 4 flags shown."
    assert page.locator("#gk-flags tbody tr:visible").count() == 0
    assert page.locator("[data-gk-empty]").is_visible()
    page.fill("#gk-filter", "headline")
    visible = page.locator("#gk-flags tbody tr:visible a.gk-flag-name").all_inner_texts()
    assert visible == ["HOMEPAGE_EXPERIMENT"]


def test_on_a_phone_typing_after_a_server_filter_counts_against_every_flag(open_as, server):
    """After `?q=home` the page holds one flag; typing `hom` says 1 of 3 (every flag), not 1 of 1."""
    page = open_as(ADMIN, viewport=PHONE)
    page.goto(f"{server}/gatekeeper/?q=home")
    page.fill("#gk-filter", "hom")
    assert page.inner_text("[data-gk-count]") == "1 of 4 flags shown."


def test_a_non_admin_gets_a_styled_403_page_with_a_way_back(open_as, server):
    """The viewer's 403 is the dashboard's page (its stylesheet applied): it says how to get access and its
    link leads back to the app."""
    viewer = open_as(VIEWER, viewport=PHONE)
    response = viewer.goto(f"{server}/gatekeeper/")
    assert response.status == 403
    assert viewer.locator("h1").inner_text() == "You cannot open the flag dashboard"
    assert "flask users create EMAIL --admin" in viewer.inner_text("main")
    # The dashboard's stylesheet is applied: the page background is its own, not the browser's white.
    background = viewer.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgba(0, 0, 0, 0)"
    screenshot(viewer, "forbidden-phone")
    viewer.click("main a:has-text('Back to')")
    viewer.wait_for_url(f"{server}/")


# WCAG contrast of what the page renders: every visible text against the background it sits on (4.5:1; this
# covers buttons, inputs and links), and the border of every input, select and outlined button (3:1).
CONTRAST_FAILURES = r"""() => {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const shown = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const name = (el) => el.tagName.toLowerCase() + "." + String(el.className).trim().split(/\s+/).join(".")
    + " '" + (el.textContent || el.value || el.placeholder || "").trim().slice(0, 30) + "'";
  const failures = [];
  for (const el of document.querySelectorAll("body.gk *")) {
    if (!shown(el) || el.matches("input[type=checkbox], input[type=hidden], option, script, style")) continue;
    const style = getComputedStyle(el);
    const control = el.matches("input, select, button, .gk-button");
    const text = control || Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (text) {
      const r = ratio(parse(style.color), background(el));
      if (r < 4.5) failures.push("text " + name(el) + " " + r.toFixed(2));
    }
    if (el.matches("input, select, .gk-button-quiet")) {
      const r = ratio(parse(style.borderTopColor), background(el.parentElement));
      if (r < 3) failures.push("border " + name(el) + " " + r.toFixed(2));
    }
  }
  for (const line of document.querySelectorAll("svg polyline, svg line.gk-chart-axis")) {
    const r = ratio(parse(getComputedStyle(line).stroke), background(line.closest("svg").parentElement));
    if (r < 3) failures.push("chart line " + line.getAttribute("class") + " " + r.toFixed(2));
  }
  return failures;
}"""


def contrast_failures(page) -> list[str]:
    return page.evaluate(CONTRAST_FAILURES)


@pytest.fixture
def busy_flag(open_as, server):
    """MY_NEW_FEATURE forced to VISIBLE with a user override and audit entries, so every kind of element
    (forced card, chips, Remove buttons, audit rows) is on the pages; stopped again afterwards."""
    admin = open_as(ADMIN)
    force_for_everyone(admin, server, "MY_NEW_FEATURE", "VISIBLE")
    for _ in range(3):  # visitors, so that the rollout page draws its exposure chart
        urllib.request.urlopen(f"{server}/", timeout=10).close()
    admin.click("#users summary")
    admin.fill("#gk-user", VIEWER)
    admin.select_option("#gk-user-variant", "VISIBLE")  # what the viewer (id 2, on the team) gets anyway
    admin.click("button:has-text('Add override')")
    admin.wait_for_load_state()
    yield "MY_NEW_FEATURE"
    stop_forcing(admin, server, "MY_NEW_FEATURE")
    admin.click(f'button[aria-label="Remove {VIEWER}\'s override"]')
    admin.wait_for_load_state()


DASHBOARD_PAGES = {"flag-list": "/gatekeeper/", "flag-page": "/gatekeeper/flags/MY_NEW_FEATURE"}
DASHBOARD_PAGES["audit-log"] = "/gatekeeper/audit"
DASHBOARD_PAGES["rollout-page"] = "/gatekeeper/flags/NEW_CHECKOUT"
DASHBOARD_PAGES["groups"] = "/gatekeeper/groups"
DASHBOARD_PAGES["group-page"] = "/gatekeeper/groups/admins"
DASHBOARD_PAGES["user-lookup"] = f"/gatekeeper/users?q={ADMIN}"
DASHBOARD_PAGES["webhooks"] = "/gatekeeper/webhooks"
DASHBOARD_PAGES["tokens"] = "/gatekeeper/tokens"
DASHBOARD_PAGES["upcoming"] = "/gatekeeper/schedules"
DASHBOARD_PAGES["segments"] = "/gatekeeper/segments"


@pytest.mark.parametrize("color_scheme", ["dark", "light"])
def test_every_dashboard_page_meets_wcag_aa_contrast(open_as, server, busy_flag, color_scheme):
    """Text and buttons at 4.5:1 and control borders at 3:1, computed from the colours Chromium renders, on
    every page at both widths; in dark mode too (white on #7ea2ff was 2.47:1)."""
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        page = open_as(ADMIN, viewport=viewport, color_scheme=color_scheme)
        for path in DASHBOARD_PAGES.values():
            page.goto(f"{server}{path}")
            assert contrast_failures(page) == [], f"{path} at {viewport['width']} px"


# axe-core, from the npm registry, once per machine into the user's cache (the template's own tests need npm
# for this one check; a baked project's tests never do).
AXE_CORE = "axe-core@4.14.1"
AXE_RUN = """async () => {
  const results = await axe.run(document);
  const where = (v) => v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ");
  return results.violations.map((v) => v.id + ": " + where(v));
}"""
SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture(scope="module")
def axe_core() -> Path:
    """The path of axe-core's script, installed with npm on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flask-gatekeeper" / "npm"
    script = cache / AXE_CORE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: the accessibility check installs axe-core with it")
        command = [npm, "install", "--prefix", str(cache / AXE_CORE), "--no-audit", "--no-fund", AXE_CORE]
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    return script


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_every_dashboard_page_passes_axe_and_fits_the_screen_at_both_widths(
    open_as, server, busy_flag, axe_core, color_scheme
):
    """Every page of DASHBOARD_PAGES, and the 403 page (as the viewer), at 1280 and 390 px: axe-core finds no
    accessibility violation and nothing scrolls sideways. Screenshots land in build/test-output/browser/ as
    PAGE-WIDTH-SCHEME.png. (axe is injected as a script tag: these contexts bypass the CSP to let it in.)"""
    problems = {}
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        admin = open_as(ADMIN, viewport=viewport, color_scheme=color_scheme, bypass_csp=True)
        viewer = open_as(VIEWER, viewport=viewport, color_scheme=color_scheme, bypass_csp=True)
        shots = [(admin, name, path) for name, path in DASHBOARD_PAGES.items()]
        for page, name, path in [*shots, (viewer, "forbidden", "/gatekeeper/")]:
            page.goto(f"{server}{path}")
            assert screenshot(page, f"{name}-{viewport['width']}-{color_scheme}").stat().st_size > 0
            page.add_script_tag(path=str(axe_core))
            found = page.evaluate(AXE_RUN)
            overflow = page.evaluate(SIDEWAYS_SCROLL)
            if overflow > 0:
                found.append(f"scrolls sideways by {overflow} px")
            if found:
                problems[f"{path} at {viewport['width']} px"] = found
    assert problems == {}


FOCUSED = """() => {
  const el = document.activeElement;
  const label = el.getAttribute("aria-label") || (el.labels && el.labels[0] && el.labels[0].textContent)
    || el.textContent || el.name || "";
  return el.tagName.toLowerCase() + ": " + label.trim().replace(/\\s+/g, " ");
}"""


def tab_order(page, presses: int) -> list[str]:
    """What each Tab press focuses, from the top of the page: element and accessible name."""
    order = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        order.append(page.evaluate(FOCUSED))
    return order


def test_the_flag_page_tabs_from_the_skip_link_through_each_part_in_reading_order(open_as, server):
    """Tab starts at the skip link, then the header, then each part of the flag page top to bottom (a folded
    form is one stop, its summary); each control says what it acts on; the exposure chart, when drawn, is
    one stop (its arrow keys move between hours)."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
    expected = [
        "a: Skip to content",
        "a: Gatekeeper",
        "a: Flags",
        "a: Groups",
        "a: Segments",
        "a: Users",
        "a: Upcoming",
        "a: Audit log",
        "a: Webhooks",
        "a: Tokens",
        "a: Back to Gatekeeper App",
        "a: Flags",
        "input: Reason (optional) for switching off",
        "input: I understand every user gets CONTROL until it is switched on.",
        "button: Switch off",
        "summary: Add a prerequisite",
        "select: Variant",
        "button: Save this browser's override",
        "summary: Force a variant for everyone (kill switch or full launch)",
        "summary: Pin a user to a variant e.g. to try it before everyone",
        "summary: Target a group or segment",
        "pre: The rule's source",
        "summary: Change the shares",
        "input: Share of VARIANT_A, in percent",
        "input: Share of VARIANT_B, in percent",
        "input: Reason (optional) for the new shares",
        "button: Save weights",
        "summary: Each variant carries its own name",
        "summary: Start a release",
        "summary: Schedule a change",
        "summary: Schedule a ramp e.g. 5% now, 25% tomorrow, 100% on Friday",
        "a: Every flag's upcoming changes",
        "a: All changes to HOMEPAGE_EXPERIMENT",
    ]
    order = tab_order(page, len(expected) + 2)
    assert sum(stop.startswith("g: ") for stop in order) <= 1
    assert [stop for stop in order if not stop.startswith("g: ")][: len(expected)] == expected


def test_the_rollout_form_shows_the_rest_share_as_you_type(open_as, server):
    """HOMEPAGE_EXPERIMENT asks for A and B; CONTROL's share is what is left, updated at each keystroke."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
    page.fill("#gk-weight-VARIANT_A", "25")
    page.fill("#gk-weight-VARIANT_B", "15.5")
    assert page.inner_text("output[data-gk-rest]") == "59.5"
    page.fill("#gk-weight-VARIANT_B", "90")
    assert page.inner_text("output[data-gk-rest]") == "?"


def test_the_skip_link_moves_focus_past_the_header(open_as, server):
    """The first Tab shows the skip link; following it, the next Tab lands in the page, not the header."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
    page.keyboard.press("Tab")
    assert page.locator(".gk-skip").bounding_box()["y"] >= 0  # on screen once focused
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "a: Flags"  # the breadcrumb, first link of the page's content
    assert page.evaluate("document.activeElement.closest('main') !== null")


def test_on_a_phone_every_control_is_at_least_24_px_square(open_as, server, busy_flag):
    """Buttons, inputs, selects, checkboxes and the header and list links are touch targets of 24 x 24 px
    or more at 390 px, on every page."""
    page = open_as(ADMIN, viewport=PHONE)
    controls = "button, input:not([type=hidden]), select, .gk-nav a, .gk-brand, .gk-views a, a.gk-flag-name"
    for path in DASHBOARD_PAGES.values():
        page.goto(f"{server}{path}")
        small = page.evaluate(
            """(selector) => Array.from(document.querySelectorAll(selector))
                .map((el) => [el, el.getBoundingClientRect()])
                .filter(([el, box]) => box.width > 0 && (box.width < 24 || box.height < 24))
                .map(([el, box]) => el.outerHTML.slice(0, 60) + " " + box.width + "x" + box.height)""",
            controls,
        )
        assert small == [], path


def test_compact_mode_fits_twenty_flags_on_an_800_px_screen(open_as, server):
    """At 1280 x 800 in compact mode the rows are short enough that twenty of them end above the fold."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/?density=compact")
    boxes = [row.bounding_box() for row in page.locator("#gk-flags tbody tr").all()]
    tallest = max(box["height"] for box in boxes)
    assert boxes[0]["y"] + 20 * tallest <= 800, f"rows of {tallest} px from y={boxes[0]['y']}"
    screenshot(page, "flag-list-compact-1280-light")


def flag_row(page, flag: str):
    return page.locator("#gk-flags tbody tr", has=page.locator(f"a.gk-flag-name:text-is('{flag}')"))


def test_switching_a_flag_off_from_the_list_asks_for_the_confirmation_first(open_as, server):
    """The row's "Switch off" opens the flag page's confirmation: without the box ticked the browser submits
    nothing; ticked, the flag is off (the admin's home page loses MY_NEW_FEATURE) and the list keeps its
    search; the row's "Switch on" brings it back."""
    page = open_as(ADMIN)
    list_url = f"{server}/gatekeeper/?q=feature"
    try:
        page.goto(list_url)
        row = flag_row(page, "MY_NEW_FEATURE")
        row.locator("summary:has-text('Switch off')").click()
        row.locator("button:has-text('Switch off')").click()
        assert row.locator("input[name=confirm]:invalid").count() == 1
        assert page.url == list_url
        row.locator("input[name=reason]").fill("a browser test")
        row.locator("input[name=confirm]").check()
        row.locator("button:has-text('Switch off')").click()
        page.wait_for_load_state()
        assert page.url == list_url
        assert "MY_NEW_FEATURE: switched off" in page.inner_text(".gk-alert-success")
        assert flag_row(page, "MY_NEW_FEATURE").locator(".gk-chip:text-is('off')").count() == 1
        assert not home_shows_my_new_feature(page, server)
    finally:
        page.goto(list_url)
        switch_on = flag_row(page, "MY_NEW_FEATURE").locator("button:has-text('Switch on')")
        if switch_on.count():
            switch_on.click()
            page.wait_for_load_state()
    assert home_shows_my_new_feature(page, server)


def test_the_list_fits_1280_px_and_its_header_stays_in_view_while_scrolling(open_as, server):
    """At 1280 px no column of the list is cut, in compact mode too (its last column was 225 px past the
    box), and scrolled past its top the list's header row sits at the top of the window."""
    page = open_as(ADMIN, viewport={"width": 1280, "height": 400})
    for path in ("/gatekeeper/?density=compact", "/gatekeeper/"):
        page.goto(f"{server}{path}")
        wrap = page.locator(".gk-list-wrap").bounding_box()
        last = page.locator("#gk-flags thead th").last.bounding_box()
        assert last["x"] + last["width"] <= wrap["x"] + wrap["width"] + 1, path
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280, path
    top = page.evaluate("document.querySelector('#gk-flags').getBoundingClientRect().top + window.scrollY")
    page.evaluate(f"window.scrollTo(0, {top + 150})")
    header = page.locator("#gk-flags thead th").first.bounding_box()
    assert abs(header["y"]) <= 1, f"the header is at y={header['y']} after scrolling"
    screenshot(page, "flag-list-sticky-header-1280-light")


def test_on_a_phone_a_group_page_stays_in_the_screen_and_its_text_box_follows_dark_mode(open_as, server):
    """At 390 px the group page does not scroll sideways (its text box's 50 columns pushed it to 439 px), and
    in dark mode the text box is dark like the other fields, not the browser's white."""
    admin = open_as(ADMIN)
    admin.goto(f"{server}/gatekeeper/groups")
    if admin.locator("a:text-is('phone-testers')").count() == 0:
        admin.fill("input[name=name]", "phone-testers")
        admin.click("button:has-text('Create')")
        admin.wait_for_load_state()
    page = open_as(ADMIN, viewport=PHONE, color_scheme="dark")
    page.goto(f"{server}/gatekeeper/groups/phone-testers")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    background = "el => getComputedStyle(el).backgroundColor"
    field = page.locator("input[name=description]").evaluate(background)
    assert page.locator("textarea").evaluate(background) == field != "rgb(255, 255, 255)"


def test_a_scheduled_time_is_read_in_the_browsers_time_zone_and_stored_in_utc(browser, server):
    """In Kolkata (UTC+05:30) the form says so, shows only what "Switch off" needs, and 12:00 typed there
    is listed on the Upcoming page as 06:30 UTC."""
    context = browser.new_context(timezone_id="Asia/Kolkata")
    try:
        page = context.new_page()
        page.goto(f"{server}/auth/login")
        page.fill("#email", ADMIN)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(f"{server}/")
        page.goto(f"{server}/gatekeeper/flags/NEW_CHECKOUT")
        page.click("#schedules summary:has-text('Schedule a change')")  # the form is folded until asked for
        form = page.locator("form[action$='/schedules#schedules']")
        form.locator("select[name=action]").select_option("off")
        assert not form.locator("select[name=variant]").is_visible()
        form.locator("input[name=at]").fill("2030-06-01T12:00")
        assert form.locator("[data-gk-zone]").inner_text() == "in your time zone (UTC+05:30)"
        form.locator("button:has-text('Schedule')").click()
        page.wait_for_load_state()
        page.goto(f"{server}/gatekeeper/schedules")
        row = page.locator("#gk-upcoming tbody tr", has_text="NEW_CHECKOUT")
        assert row.locator("time").get_attribute("datetime") == "2030-06-01T06:30:00+00:00"
        row.locator("button:has-text('Cancel')").click()
        page.wait_for_load_state()
        assert "Nothing is scheduled." in page.content()
    finally:
        context.close()


def test_a_release_started_from_the_flag_page_shows_its_milestones_and_can_be_aborted(open_as, server):
    """NEW_CHECKOUT's release card: start a release with the form (no shell), see the track with 1% current
    and the error-rate guardrail, then abort it behind its confirmation box; screenshots of the card."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/flags/NEW_CHECKOUT")
    try:
        page.locator("summary:has-text('Start a release')").click()
        page.fill("#gk-release-reason", "a browser test")
        page.locator("button:has-text('Start the release')").click()
        page.wait_for_load_state()
        card = page.locator("#release")
        assert card.locator("[aria-current=step]").inner_text() == "1%"
        assert "errors" in card.locator("#gk-release-evidence").inner_text().lower()
        assert screenshot(page, "release-card").stat().st_size > 0
        card.locator("button:has-text('Abort the release')").click()
        assert card.locator("input[name=confirm]:invalid").count() == 1
        card.locator("input[name=confirm]").check()
        card.locator("button:has-text('Abort the release')").click()
        page.wait_for_load_state()
        assert "aborted" in page.locator("#release h2").inner_text()
    finally:
        page.goto(f"{server}/gatekeeper/flags/NEW_CHECKOUT")
        abort = page.locator("#release input[name=confirm]")
        if abort.count():
            abort.check()
            page.locator("#release button:has-text('Abort the release')").click()
            page.wait_for_load_state()


def test_a_part_of_the_flag_page_that_holds_nothing_is_one_line(open_as, server):
    """At 1280 px a part with nothing set is its heading and its folded form on one line, and so is the
    guarded release card before any release; the folded schedule forms are one line each."""
    page = open_as(ADMIN)
    page.goto(f"{server}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
    heights = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.gk-part, #release')]
            .map((part) => [part.id, Math.round(part.getBoundingClientRect().height)]))"""
    )
    empty = ("prerequisites", "forced", "users", "groups", "values", "release")
    taller = {part: heights[part] for part in empty if heights[part] > ONE_LINE}
    assert taller == {}
    folds = page.locator("#schedules details.gk-add > summary").all()
    assert len(folds) == 2
    assert all(fold.bounding_box()["height"] <= ONE_LINE for fold in folds)
    print(f"HOMEPAGE_EXPERIMENT's page: {page.evaluate('document.scrollingElement.scrollHeight')} px at 1280")


ONE_LINE = 64  # px: a heading's line and a card's padding (two lines would be 90 or more)
