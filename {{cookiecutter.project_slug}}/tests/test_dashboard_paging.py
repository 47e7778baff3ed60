"""Dashboard pages that grow with what admins make show it a page at a time (issue 25): the groups list, a
group's members, a flag's pending changes and the audit log's "Who" filter; and a pasted list of thousands
of members is added in a few queries, not one per member."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from werkzeug.security import generate_password_hash

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper_control.dashboard import AUDIT_ACTORS_SHOWN, PER_PAGE
from {{ cookiecutter.package_name }}.gatekeeper_control.tables import (
    AuditRow,
    GroupRow,
    MemberRow,
    ScheduleRow,
    VersionRow,
)
from tests.store_helpers import count_queries

NOW = datetime.now(UTC)


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def add_rows(app, table, rows):
    """Rows straight into a store table (and the version moved, so the snapshot reloads)."""
    with app.app_context():
        db.session.execute(insert(table), rows)
        db.session.execute(db.update(VersionRow).values(version=VersionRow.version + 1))
        db.session.commit()


def rows_of(page: str, table_id: str) -> int:
    table = page[page.index(f'id="{table_id}"') :]
    return table[: table.index("</table>")].count("<tr data-")


def test_the_groups_list_shows_a_page_of_groups(app, admin_client):
    """With more stored groups than fit a page, the list shows PER_PAGE of them, says how many there are,
    and links to the next page, which shows the rest."""
    add_rows(
        app,
        GroupRow,
        [{"name": f"g{i:04}", "created_by": "a", "created_at": NOW} for i in range(PER_PAGE + 5)],
    )
    first = admin_client.get("/gatekeeper/groups").text
    assert rows_of(first, "gk-group-list") == PER_PAGE
    assert f"{PER_PAGE + 5} groups" in first
    assert 'href="/gatekeeper/groups?page=2"' in first
    assert rows_of(admin_client.get("/gatekeeper/groups?page=2").text, "gk-group-list") == 5


def test_a_group_shows_a_page_of_its_members(app, admin_client):
    """A group with more members than fit a page shows PER_PAGE of them, with the total in its heading."""
    add_rows(app, GroupRow, [{"name": "big", "created_by": "a", "created_at": NOW}])
    add_rows(
        app,
        MemberRow,
        [
            {"group": "big", "user_id": str(i), "user_label": f"u{i}", "added_by": "a", "added_at": NOW}
            for i in range(PER_PAGE + 1)
        ],
    )
    page = admin_client.get("/gatekeeper/groups/big").text
    assert rows_of(page, "gk-member-list") == PER_PAGE
    assert f"{PER_PAGE + 1} members" in page
    assert rows_of(admin_client.get("/gatekeeper/groups/big?page=2").text, "gk-member-list") == 1


def test_a_flag_page_shows_a_page_of_pending_changes(app, admin_client):
    """A flag with more pending changes than fit a page lists the soonest PER_PAGE, and links to the rest."""
    add_rows(
        app,
        ScheduleRow,
        [
            {
                "flag": "NEW_CHECKOUT",
                "due_at": NOW + timedelta(days=1, minutes=i),
                "action": "force",
                "argument": "ON",
                "created_by": "a",
                "created_at": NOW,
                "state": "pending",
            }
            for i in range(PER_PAGE + 2)
        ],
    )
    first = admin_client.get("/gatekeeper/flags/NEW_CHECKOUT").text
    assert rows_of(first, "gk-schedule-list") == PER_PAGE
    assert "/gatekeeper/flags/NEW_CHECKOUT?schedules=2#schedules" in first
    later = admin_client.get("/gatekeeper/flags/NEW_CHECKOUT?schedules=2").text
    assert rows_of(later, "gk-schedule-list") == 2


def test_the_audit_filter_offers_the_most_recent_actors_only(app, admin_client):
    """Thousands of actors are not all options of the "Who" filter: the most recently active ones are."""
    add_rows(
        app,
        AuditRow,
        [
            {"at": NOW, "actor": f"actor{i:04}", "flag": "F", "action": "force", "target": "everyone"}
            for i in range(AUDIT_ACTORS_SHOWN + 50)
        ],
    )
    page = admin_client.get("/gatekeeper/audit").text
    select = page[page.index('id="gk-audit-actor"') :]
    actors = re.findall(r'<option value="(actor\d+)"', select[: select.index("</select>")])
    assert len(actors) == AUDIT_ACTORS_SHOWN
    assert "actor0149" in actors and "actor0049" not in actors


def test_a_pasted_list_of_members_is_added_in_a_few_queries(app, admin_client):
    """300 members pasted at once are looked up and added in a handful of queries (one each took seconds
    for 20,000), and all of them are members afterwards."""
    password_hash = generate_password_hash("x", method="pbkdf2:sha256:1000")
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO users (id, email, password_hash, is_admin, session_token, created_at) "
                "VALUES (:id, :email, :hash, false, :token, :now)"
            ),
            [
                {"id": i, "email": f"u{i}@example.com", "hash": password_hash, "token": f"t{i}", "now": NOW}
                for i in range(1000, 1300)
            ],
        )
        db.session.commit()
    admin_client.post("/gatekeeper/groups", data={"name": "bulk"})
    users = (
        " ".join(str(i) for i in range(1000, 1150))
        + " "
        + " ".join(f"u{i}@example.com" for i in range(1150, 1300))
    )
    with count_queries(app) as statements:
        admin_client.post("/gatekeeper/groups/bulk/members", data={"users": users})
    assert len(statements) < 40
    with app.app_context():
        members = db.session.scalar(
            text("SELECT count(*) FROM gatekeeper_group_members WHERE \"group\" = 'bulk'")
        )
    assert members == 300
