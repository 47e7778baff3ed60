"""The five first tasks of a new dashboard user, in headless Chromium on the defaults bake served by gunicorn:
ramp NEW_CHECKOUT to 50%, give a group MY_NEW_FEATURE, schedule a change a minute ahead, look up a user and
undo a change. Each is done from what the page shows (links, buttons, forms), with no shell, and all five
together take at most 15 clicks.

A click is what a mouse does: a link, a button, a folded section opened, a box ticked, a choice made in a
list. Typing into a field the page puts the cursor in, or reached with Tab, is not counted (pressing Enter
to send a form is not either). Screenshots of each task's end land in build/test-output/browser/.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import test_browser
from test_browser import ADMIN, VIEWER, screenshot

pytestmark = pytest.mark.slow

# test_browser's fixtures, by name: a server of this module's own (its tests change flags), the browser, and
# pages logged in through the login form, with nothing blocked by the Content-Security-Policy.
server, browser, csp_violations, open_as = (
    test_browser.server,
    test_browser.browser,
    test_browser.csp_violations,
    test_browser.open_as,
)

CLICK_BUDGET = 15
ZONE = "Europe/Paris"  # the browser's own time zone: the schedule form takes local time and stores UTC


class Mouse:
    """Clicks through Playwright, counted."""

    def __init__(self, page) -> None:
        self.page = page
        self.clicks = 0

    def click(self, selector: str) -> None:
        self.clicks += 1
        self.page.locator(selector).first.click()
        self.page.wait_for_load_state()

    def choose(self, selector: str, value: str) -> None:
        self.clicks += 1
        self.page.select_option(selector, value)


def group_target(page, group: str) -> list[str]:
    """What the flag page's table of group targets says `group` gets (nothing: not targeted)."""
    name = page.locator(f"td[data-label=Group] a:text-is('{group}')")
    rows = page.locator("#groups tbody tr").filter(has=name)
    return rows.locator("td[data-label=Gets] code").all_inner_texts()


def test_the_five_first_tasks_take_a_new_user_at_most_15_clicks_and_no_shell(open_as, server):
    page = open_as(ADMIN, timezone_id=ZONE)
    mouse = Mouse(page)

    # 1. Ramp NEW_CHECKOUT to 50%: one number, the other share is the rest.
    mouse.click("header a:has-text('Flags')")
    mouse.click("a.gk-flag-name:text-is('NEW_CHECKOUT')")
    page.fill("#gk-weight-ON", "50")
    mouse.click("#rollout button:has-text('Save weights')")
    if page.locator("button:has-text('Save anyway')").count():  # visitors move between arms: confirm it
        mouse.click("button:has-text('Save anyway')")
    assert page.locator("[data-gk-rest]").first.inner_text() == "50"
    assert page.locator("#gk-weight-ON").input_value() == "50"
    screenshot(page, "first-tasks-1-ramp")

    # 2. Give a group MY_NEW_FEATURE: the admins (a group in code) get VISIBLE.
    mouse.click("header a:has-text('Flags')")
    mouse.click("a.gk-flag-name:text-is('MY_NEW_FEATURE')")
    mouse.click("#groups summary:has-text('Target a group or segment')")
    if page.locator("#gk-target-group").input_value() != "admins":
        mouse.choose("#gk-target-group", "admins")
    mouse.choose("#gk-target-variant", "VISIBLE")
    mouse.click("#groups button:has-text('Target group')")
    assert group_target(page, "admins") == ["VISIBLE"]
    screenshot(page, "first-tasks-2-group")

    # 3. Schedule a change a minute ahead, in the browser's own time: force NOT_VISIBLE for everyone.
    ahead = datetime.now(ZoneInfo(ZONE)) + timedelta(minutes=2)
    mouse.click("#schedules summary:has-text('Schedule a change')")
    if page.locator("#gk-schedule-action").input_value() != "force":
        mouse.choose("#gk-schedule-action", "force")
    mouse.choose("#gk-schedule-variant", "NOT_VISIBLE")
    page.fill("#gk-schedule-at", ahead.strftime("%Y-%m-%dT%H:%M"))
    mouse.click("#schedules button:has-text('Schedule')")
    pending = page.locator("#schedules").inner_text()
    assert "NOT_VISIBLE" in pending
    assert re.search(r"in (\d+ s|1 min|2 min)", pending), pending
    screenshot(page, "first-tasks-3-schedule")

    # 4. Look up a user by part of their email: the search box has the cursor, Enter sends it.
    mouse.click("nav a:has-text('Users')")
    page.keyboard.type(VIEWER.split("@")[0])
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert VIEWER in page.locator("main").inner_text()
    screenshot(page, "first-tasks-4-user")

    # 5. Undo a change: the group target of task 2, from its entry in the audit log.
    mouse.click("nav a:has-text('Audit log')")
    row = page.locator("tr", has=page.locator("td", has_text="MY_NEW_FEATURE")).filter(has_text="admins")
    mouse.clicks += 1
    row.first.locator("button:has-text('Undo')").click()
    page.wait_for_load_state()
    page.goto(f"{server}/gatekeeper/flags/MY_NEW_FEATURE")  # to check it (not part of the task)
    assert group_target(page, "admins") == []
    screenshot(page, "first-tasks-5-undo")

    print(f"the five first tasks took {mouse.clicks} clicks")
    assert mouse.clicks <= CLICK_BUDGET
