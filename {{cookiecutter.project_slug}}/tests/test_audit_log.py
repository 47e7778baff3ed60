"""The audit log at volume: times to the second with a relative time, linkable filters by flag, actor and
action, undo as a new audited change, and an empty state that says what to do next."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control.dashboard import relative_time
from {{ cookiecutter.package_name }}.gatekeeper_control.store import OverrideError, store
from tests.store_helpers import audit_log, snapshot

FLAG = "HOMEPAGE_EXPERIMENT"
FLAG_PAGE = f"/gatekeeper/flags/{FLAG}"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def force(client, variant, flag=FLAG, **extra):
    data = {"variant": variant, "confirm": "yes", **extra}
    return client.post(f"/gatekeeper/flags/{flag}/force", data=data)


def rows(page):
    """The audit table's rows, as text."""
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    found = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found]


def undo_ids(page):
    return [int(entry_id) for entry_id in re.findall(r'action="/gatekeeper/audit/(\d+)/undo"', page)]


# --- Times --------------------------------------------------------------------------------------------------


def test_times_are_shown_to_the_second_with_a_relative_time(app, admin_client):
    """Five changes in one minute no longer read alike: each time has its seconds and how long ago it was."""
    force(admin_client, "VARIANT_A")
    page = admin_client.get("/gatekeeper/audit").text
    entry = audit_log(app)[0]
    assert f"{entry.at:%Y-%m-%d %H:%M:%S} UTC" in page
    assert re.search(r'<span class="gk-muted gk-ago">(just now|\d+ s ago)</span>', page)
    assert "<script" not in page.split("</head>")[1]  # computed on the server, no inline script


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3, "just now"),
        (42, "42 s ago"),
        (180, "3 min ago"),
        (7200, "2 h ago"),
        (86400, "1 day ago"),
        (5 * 86400, "5 days ago"),
    ],
)
def test_relative_time_says_how_long_ago_in_a_few_words(seconds, text):
    """The relative time rounds down to the largest whole unit."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=seconds), now) == text


# --- Filters ------------------------------------------------------------------------------------------------


def test_the_log_filters_by_flag_actor_and_action_from_the_url(app, admin_client):
    """`?flag=`, `?actor=` and `?action=` narrow the log on the server, alone or together."""
    force(admin_client, "VARIANT_A")
    force(admin_client, "VISIBLE", flag="MY_NEW_FEATURE")
    with app.app_context():
        store.force(FLAG, "VARIANT_B", "cli")
    by_flag = rows(admin_client.get(f"/gatekeeper/audit?flag={FLAG}").text)
    assert len(by_flag) == 2 and all("MY_NEW_FEATURE" not in row for row in by_flag)
    by_actor = rows(admin_client.get("/gatekeeper/audit?actor=cli").text)
    assert len(by_actor) == 1 and "VARIANT_B" in by_actor[0]
    both = rows(admin_client.get(f"/gatekeeper/audit?flag={FLAG}&actor=admin@example.com&action=force").text)
    assert len(both) == 1 and "VARIANT_A" in both[0]
    assert "None matches these filters" in admin_client.get("/gatekeeper/audit?action=unforce").text


def test_the_filter_form_keeps_the_chosen_filters_and_actors_link_to_their_changes(admin_client):
    """The form shows the filters in the URL as selected; each actor links to the log of their changes."""
    force(admin_client, "VARIANT_A")
    page = admin_client.get("/gatekeeper/audit?actor=admin@example.com&action=force").text
    assert '<option value="admin@example.com" selected>' in page
    assert '<option value="force" selected>' in page
    assert 'href="/gatekeeper/audit?actor=admin@example.com"' in page


def test_pages_keep_the_filters(app, admin_client):
    """The pager's links carry the filters, so page 2 is page 2 of the same view."""
    with app.app_context():
        for index in range(51):
            store.force(FLAG, ["VARIANT_A", "VARIANT_B"][index % 2], "cli")
    page = admin_client.get("/gatekeeper/audit?actor=cli").text
    assert 'href="/gatekeeper/audit?page=2&amp;actor=cli"' in page


# --- Undo ---------------------------------------------------------------------------------------------------


def test_undoing_a_force_restores_the_previous_forced_variant(app, admin_client):
    """Forced A then B; undoing B forces A again, as a new entry; the history stays as it was."""
    force(admin_client, "VARIANT_A")
    force(admin_client, "VARIANT_B")
    newest = audit_log(app)[0]
    data = {"reason": "wrong variant", "confirm": "1"}
    response = admin_client.post(f"/gatekeeper/audit/{newest.id}/undo", data=data)
    assert response.status_code == 302
    assert snapshot(app).forced == {FLAG: "VARIANT_A"}
    undo, *history = audit_log(app)
    assert (undo.action, undo.before, undo.after) == ("force", "VARIANT_B", "VARIANT_A")
    assert undo.reason == f"undo of change #{newest.id}: wrong variant"
    assert [(entry.before, entry.after) for entry in history] == [
        ("VARIANT_A", "VARIANT_B"),
        (None, "VARIANT_A"),
    ]


def test_undoing_the_first_force_stops_forcing(app, admin_client):
    """A force with nothing before it is undone by unforcing."""
    force(admin_client, "VARIANT_A")
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo", data={"confirm": "1"})
    assert snapshot(app).forced == {}
    assert audit_log(app)[0].action == "unforce"


def test_undoing_an_unforce_forces_the_variant_again(app, admin_client):
    """Stopping a force is undone by forcing what was forced."""
    force(admin_client, "VARIANT_A")
    admin_client.post(f"{FLAG_PAGE}/unforce", data={"confirm": "yes"})
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo", data={"confirm": "1"})
    assert snapshot(app).forced == {FLAG: "VARIANT_A"}


def test_undoing_a_user_override_restores_the_previous_one_or_clears_it(app, admin_client, make_user):
    """Ann pinned to B, then to A: undo gives her B again; the undo can itself be undone; the overtaken first
    change cannot."""
    make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": "ann@example.com", "variant": "VARIANT_B"})
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": "ann@example.com", "variant": "VARIANT_A"})
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")
    assert snapshot(app).user_overrides[FLAG] == {"7": "VARIANT_B"}
    first = audit_log(app)[-1]
    assert undo_ids(admin_client.get("/gatekeeper/audit").text) == [audit_log(app)[0].id]  # only the newest
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")  # undo the undo: A again
    assert snapshot(app).user_overrides[FLAG] == {"7": "VARIANT_A"}
    with app.app_context(), pytest.raises(OverrideError, match="cannot be undone"):
        store.undo(first.id, "ann")


def test_undoing_a_users_first_override_clears_it(app, admin_client, make_user):
    """An override with nothing before it is undone by removing it."""
    make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": "ann@example.com", "variant": "VARIANT_B"})
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")
    assert FLAG not in snapshot(app).user_overrides
    assert audit_log(app)[0].action == "clear_user_override"


def test_undoing_a_removed_override_puts_it_back(app, admin_client, make_user):
    """Removing Ann's override is undone by setting it again, under the same user id."""
    make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": "ann@example.com", "variant": "VARIANT_B"})
    admin_client.post(f"{FLAG_PAGE}/users/remove", data={"user_id": "7"})
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")
    assert snapshot(app).user_overrides[FLAG] == {"7": "VARIANT_B"}


def test_a_change_overtaken_by_a_later_one_offers_no_undo(app, admin_client):
    """Only a change still in place can be undone: a stale undo would silently revert the later change."""
    force(admin_client, "VARIANT_A")
    force(admin_client, "VARIANT_B")
    newest, older = audit_log(app)
    assert undo_ids(admin_client.get("/gatekeeper/audit").text) == [newest.id]
    response = admin_client.post(f"/gatekeeper/audit/{older.id}/undo", follow_redirects=True)
    assert "cannot be undone" in response.text
    assert snapshot(app).forced == {FLAG: "VARIANT_B"}
    assert len(audit_log(app)) == 2


def test_undoing_a_change_that_does_not_exist_is_an_error_not_a_500(admin_client):
    """A hand-typed id says there is no such change."""
    response = admin_client.post("/gatekeeper/audit/999/undo", follow_redirects=True)
    assert response.status_code == 200
    assert "There is no change #999" in response.text


def test_undo_buttons_say_what_they_undo(admin_client):
    """Each Undo button's accessible name names the change it undoes."""
    force(admin_client, "VARIANT_A")
    page = admin_client.get("/gatekeeper/audit").text
    assert f'aria-label="Undo change 1: {FLAG} forced for everyone"' in page


# --- Empty states -------------------------------------------------------------------------------------------


def test_an_empty_log_says_what_to_do_next(admin_client):
    """No changes yet: the page says what would appear and links to the flag list to make one."""
    page = admin_client.get("/gatekeeper/audit").text
    assert "No changes recorded yet." in page
    assert "flask gk force" in page
    assert 'href="/gatekeeper/">flag list</a>' in page
