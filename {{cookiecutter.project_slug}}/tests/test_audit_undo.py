"""Undo for every kind of change, from its audit entry: the true "before", conflicts refused with nothing
written, the same confirmation as the original action; and the audit page's filters and page numbers."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert

from {{ cookiecutter.package_name }}.gatekeeper_control.audit import AuditEntry
from {{ cookiecutter.package_name }}.gatekeeper_control.segments import segments
from {{ cookiecutter.package_name }}.gatekeeper_control.tables import AuditRow
from tests.store_helpers import audit_log, snapshot

CHECKOUT = "/gatekeeper/flags/NEW_CHECKOUT"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def undo(client, entry, **extra):
    return client.post(f"/gatekeeper/audit/{entry.id}/undo", data=extra, follow_redirects=True)


def flashes(page):
    return re.sub(r"\s+", " ", " ".join(re.findall(r'class="gk-alert[^"]*"[^>]*>(.*?)</', page, re.S)))


def set_weights(client, on):
    return client.post(f"{CHECKOUT}/rollout", data={"weight-ON": str(on), "weight-OFF": str(100 - on)})


def test_the_first_runtime_rollout_records_the_codes_weights_as_before(app, admin_client):
    set_weights(admin_client, 25)
    entry = audit_log(app)[0]
    assert (entry.before, entry.after) == ("in code: ON=10 OFF=90", "ON=25 OFF=75")


def test_undoing_the_first_rollout_goes_back_to_the_codes_weights(app, admin_client):
    set_weights(admin_client, 25)
    undo(admin_client, audit_log(app)[0])
    assert "NEW_CHECKOUT" not in snapshot(app).weights
    undone = audit_log(app)[0]
    assert (undone.action, undone.reason) == ("clear_rollout", f"undo of change #{undone.id - 1}")


def test_undoing_a_rollout_restores_the_weights_before_it(app, admin_client):
    set_weights(admin_client, 25)
    set_weights(admin_client, 50)
    undo(admin_client, audit_log(app)[0])
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 25, "OFF": 75}


def test_an_undo_overtaken_by_a_later_change_is_refused_and_writes_nothing(app, admin_client):
    set_weights(admin_client, 25)
    first = audit_log(app)[0]
    set_weights(admin_client, 50)
    page = undo(admin_client, first).text
    assert f"Change #{first.id} cannot be undone: the rollout has changed since" in flashes(page)
    assert len(audit_log(app)) == 2
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 50, "OFF": 50}


def test_group_targets_are_undone_both_ways(app, admin_client):
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post(f"{CHECKOUT}/targets", data={"group": "beta", "variant": "ON"})
    undo(admin_client, audit_log(app)[0])
    assert "NEW_CHECKOUT" not in snapshot(app).group_targets
    undo(admin_client, audit_log(app)[0])  # undo the untarget: targeted again
    assert dict(snapshot(app).group_targets["NEW_CHECKOUT"]) == {"beta": "ON"}


def test_a_prerequisite_is_undone(app, admin_client):
    admin_client.post(f"{CHECKOUT}/prerequisites", data={"required": "MY_NEW_FEATURE", "variant": "VISIBLE"})
    undo(admin_client, audit_log(app)[0])
    assert "NEW_CHECKOUT" not in snapshot(app).prerequisites
    assert audit_log(app)[0].action == "unrequire"


def test_a_group_description_is_undone(app, admin_client):
    admin_client.post("/gatekeeper/groups", data={"name": "beta", "description": "early users"})
    admin_client.post("/gatekeeper/groups/beta/describe", data={"description": "everyone in sales"})
    undo(admin_client, audit_log(app)[0])
    assert snapshot(app).groups["beta"] == "early users"


def test_undoing_a_schedule_cancels_it_and_undoing_the_cancel_puts_it_back(app, admin_client):
    at = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    admin_client.post(f"{CHECKOUT}/schedules", data={"action": "off", "at": at})
    undo(admin_client, audit_log(app)[0])
    assert audit_log(app)[0].action == "cancel_schedule"
    undo(admin_client, audit_log(app)[0])
    assert audit_log(app)[0].action == "schedule"
    assert "1 pending change." in admin_client.get("/gatekeeper/schedules").text


def test_undoing_a_force_asks_for_the_same_confirmation_box(app, admin_client):
    """Forcing asks for a ticked box; so does its undo (which unforces): without it nothing changes."""
    admin_client.post(f"{CHECKOUT}/force", data={"variant": "OFF", "confirm": "yes"})
    page = admin_client.get("/gatekeeper/audit").text
    checkbox = '<input type="checkbox" name="confirm" value="1" required>'
    assert re.search(rf'audit/\d+/undo">.*?{checkbox}', page, re.S)
    refused = undo(admin_client, audit_log(app)[0]).text
    assert "Tick the confirmation box to undo change" in flashes(refused)
    assert snapshot(app).forced == {"NEW_CHECKOUT": "OFF"}
    undo(admin_client, audit_log(app)[0], confirm="1")
    assert snapshot(app).forced == {}


# --- The audit page -----------------------------------------------------------------------------------------


def options(page, select_id):
    select = re.search(rf'<select id="{select_id}".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="([^"]+)"', select)


def test_the_what_filter_offers_every_kind_of_change(admin_client):
    kinds = options(admin_client.get("/gatekeeper/audit").text, "gk-audit-action")
    assert {"off", "on", "force", "unforce", "user_override", "rollout", "target", "value"} <= set(kinds)
    assert {"add_members", "add_condition", "delete_segment", "describe_group", "require"} <= set(kinds)
    assert {"schedule", "cancel_schedule", "schedule_failed"} <= set(kinds)


def test_the_who_filter_lists_schedules_apart_from_people(app, admin_client, runner):
    runner.invoke(args=["gk", "schedule", "NEW_CHECKOUT", "+1h", "off"])
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as connection:
        row = {"at": datetime.now(UTC), "flag": "NEW_CHECKOUT", "action": "off", "target": "everyone"}
        connection.execute(insert(AuditRow), [{**row, "actor": "schedule #1 (set by cli)"}])
    engine.dispose()
    page = admin_client.get("/gatekeeper/audit").text
    people = re.search(r'<optgroup label="People">(.*?)</optgroup>', page, re.S).group(1)
    schedules = re.search(r'<optgroup label="Scheduled changes">(.*?)</optgroup>', page, re.S).group(1)
    assert "cli" in people and "schedule #" not in people
    assert 'value="schedule #1 (set by cli)"' in schedules


def test_a_date_range_narrows_the_log_to_those_utc_days(app, admin_client):
    set_weights(admin_client, 25)
    today, day = date.today().isoformat(), timedelta(days=1)
    assert "1 change, newest first" in admin_client.get(f"/gatekeeper/audit?since={today}&until={today}").text
    tomorrow = (datetime.now(UTC).date() + day).isoformat()
    assert "None matches these filters" in admin_client.get(f"/gatekeeper/audit?since={tomorrow}").text
    bad = admin_client.get("/gatekeeper/audit?since=31.01.2030").text
    assert "&#39;31.01.2030&#39; is not a date (YYYY-MM-DD): that filter was left out." in bad


def test_text_search_finds_a_change_by_any_of_its_words(app, admin_client):
    admin_client.post("/gatekeeper/groups", data={"name": "beta", "description": "early users"})
    set_weights(admin_client, 25)
    found = admin_client.get("/gatekeeper/audit?q=BETA").text
    assert "1 change, newest first" in found and "group beta created" in found
    literal = admin_client.get("/gatekeeper/audit?q=100%25").text  # a literal %, not a wildcard
    assert "None matches" in literal


def test_the_log_is_paged_by_number(app, admin_client):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    row = {"actor": "ann", "flag": "NEW_CHECKOUT", "action": "off", "target": "everyone"}
    with engine.begin() as connection:
        connection.execute(insert(AuditRow), [{**row, "at": datetime.now(UTC)} for _ in range(50 * 7)])
    engine.dispose()
    page = admin_client.get("/gatekeeper/audit?page=4&actor=ann").text
    numbers = re.search(r'<ol class="gk-page-numbers">(.*?)</ol>', page, re.S).group(1)
    linked = re.findall(r'href="/gatekeeper/audit\?page=(\d+)&amp;actor=ann"', numbers)
    assert linked == ["1", "2", "3", "5", "6", "7"]
    assert '<span aria-current="page">4</span>' in numbers
    first = admin_client.get("/gatekeeper/audit?actor=ann").text
    assert re.findall(r"<li[^>]*>(…|<[^>]*>\d+)", first.split('class="gk-page-numbers"')[1].split("</ol>")[0])


def test_a_flags_history_shows_what_moved_part_by_part(app, admin_client):
    """Weights are listed with each variant's move, the code's first; unchanged parts are left out."""
    set_weights(admin_client, 25)
    set_weights(admin_client, 50)
    page = re.sub(r"\s+", " ", admin_client.get(CHECKOUT).text)
    diffs = re.findall(r'<ul class="gk-diff" aria-label="What changed">(.*?)</ul>', page)
    assert diffs[:2] == [
        "<li><code>ON</code> 25 → 50</li><li><code>OFF</code> 75 → 50</li>",
        "<li><code>ON</code> 10 → 25</li><li><code>OFF</code> 90 → 75</li>",
    ]


def test_a_json_values_history_lists_the_keys_that_changed():
    entry = AuditEntry(
        1, datetime.now(UTC), "ann", "F", "value", "ON", '{"a": 1, "b": 2}', '{"a": 1, "b": 3, "c": 4}'
    )
    assert entry.changes == [("b", "2", "3"), ("c", None, "4")]
    assert AuditEntry(2, datetime.now(UTC), "ann", "F", "force", "everyone", "ON", "OFF").changes == []


def test_an_added_segment_condition_is_undone_and_undoing_that_adds_it_again(app, admin_client):
    with app.app_context():
        segments.create("pros", "paying users", actor="ann")
        segments.add_condition("pros", "plan", "in", "pro, team", actor="ann")
    undo(admin_client, audit_log(app)[0])
    assert audit_log(app)[0].action == "remove_condition"
    with app.app_context():
        assert segments.matching({"plan": "pro"}, snapshot(app)) == []
    undo(admin_client, audit_log(app)[0])
    assert audit_log(app)[0].action == "add_condition"
    with app.app_context():
        assert segments.matching({"plan": "pro"}, snapshot(app)) == ["pros"]


@pytest.mark.parametrize(
    ("operator", "value", "matching", "other"),
    [
        ("equals", '"42"', {"code": "42"}, {"code": 42}),  # text that reads as a number stays text
        ("lt", "5", {"age": 4}, {"age": 5}),
        ("matches", "^a.*z$", {"name": "a b z"}, {"name": "b"}),
        ("is_set", None, {"team": "x"}, {}),
        ("semver_lt", "2.0.0", {"app": "1.9.1"}, {"app": "2.0.0"}),
    ],
)
def test_a_removed_condition_comes_back_as_it_was(app, admin_client, operator, value, matching, other):
    """Undoing a removal adds the condition again from the log's words, its value of the same type."""
    attribute = next(iter(matching))
    with app.app_context():
        segments.create("some", "", actor="ann")
        segments.add_condition("some", attribute, operator, value, actor="ann")
        segments.remove_condition("some", 1, actor="ann")
    undo(admin_client, audit_log(app)[0])
    with app.app_context():
        assert segments.matching(matching, snapshot(app)) == ["some"]
        assert segments.matching(other, snapshot(app)) == []


def test_a_removed_condition_of_a_deleted_segment_is_not_undone(app, admin_client):
    with app.app_context():
        segments.create("pros", "", actor="ann")
        segments.add_condition("pros", "plan", "equals", "pro", actor="ann")
        segments.remove_condition("pros", 1, actor="ann")
        removed = audit_log(app)[0]
        segments.delete("pros", actor="ann")
    page = undo(admin_client, removed).text
    assert f"Change #{removed.id} cannot be undone: segment pros has changed since" in flashes(page)
    assert "pros" not in snapshot(app).segments


def test_undoing_a_segments_creation_deletes_it(app, admin_client):
    with app.app_context():
        segments.create("pros", "paying users", actor="ann")
    undo(admin_client, audit_log(app)[0])
    assert "pros" not in snapshot(app).segments
    assert audit_log(app)[0].action == "delete_segment"


def test_undoing_a_groups_creation_deletes_it_and_undoing_that_creates_it_again(app, admin_client):
    admin_client.post("/gatekeeper/groups", data={"name": "beta", "description": "early users"})
    undo(admin_client, audit_log(app)[0])
    assert "beta" not in snapshot(app).groups
    assert audit_log(app)[0].action == "delete_group"
    undo(admin_client, audit_log(app)[0])
    assert snapshot(app).groups["beta"] == "early users"


def test_undoing_the_creation_of_a_group_that_has_members_is_refused(app, admin_client, user):
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    created = audit_log(app)[0]
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": user.email})
    page = undo(admin_client, created).text
    assert "Group beta has 1 member: remove them first" in flashes(page)
    assert members(app, "beta") == [user.email]


def test_a_group_is_deleted_from_its_page_only_when_empty(app, admin_client, user):
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": user.email})
    page = admin_client.post("/gatekeeper/groups/beta/delete", follow_redirects=True).text
    assert "Group beta has 1 member: remove them first" in flashes(page)
    admin_client.post("/gatekeeper/groups/beta/members/remove", data={"users": user.email})
    page = admin_client.post("/gatekeeper/groups/beta/delete", follow_redirects=True).text
    assert "Group beta deleted." in flashes(page)
    assert "beta" not in snapshot(app).groups


def members(app, group):
    return sorted(snapshot(app).group_members.get(group, {}).values())


def test_added_members_are_undone_and_undoing_that_adds_them_again(app, admin_client, user):
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": user.email})
    assert members(app, "beta") == [user.email]
    added = audit_log(app)[0]
    assert f"/gatekeeper/audit/{added.id}/undo" in admin_client.get("/gatekeeper/audit").text
    undo(admin_client, added)
    assert members(app, "beta") == []
    assert audit_log(app)[0].action == "remove_members"
    undo(admin_client, audit_log(app)[0])
    assert members(app, "beta") == [user.email]


def test_undoing_an_add_after_the_member_left_is_refused_and_writes_nothing(app, admin_client, user):
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": user.email})
    added = audit_log(app)[0]
    admin_client.post("/gatekeeper/groups/beta/members/remove", data={"users": user.email})
    page = undo(admin_client, added).text
    assert f"Change #{added.id} cannot be undone" in flashes(page)
    assert members(app, "beta") == []


def test_an_add_whose_list_the_log_cut_short_is_listed_but_not_undone(app, admin_client, make_user):
    """The log keeps the first members of a long list ("..."): the audit page still shows the change and
    offers no undo for it, and an undo asked for anyway is refused with why."""
    emails = [make_user(f"member-number-{n}-with-a-long-address@example.com").email for n in range(4)]
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    admin_client.post("/gatekeeper/groups/beta/members", data={"users": " ".join(emails)})
    added = audit_log(app)[0]
    assert added.after.endswith("...")
    page = admin_client.get("/gatekeeper/audit").text
    assert "beta" in page
    assert f"/gatekeeper/audit/{added.id}/undo" not in page
    assert "the log kept only the first it named" in flashes(undo(admin_client, added).text)
    assert members(app, "beta") == sorted(emails)
