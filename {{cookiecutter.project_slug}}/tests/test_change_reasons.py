"""An optional reason on every change: stored in the audit log by the store, given in every dashboard form and
with `--reason` on the CLI, shown in the audit log and the flag page's history; the force confirmation states
its impact."""

import re

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control.store import REASON_LENGTH, OverrideError, store
from tests.store_helpers import audit_log, snapshot

FLAG = "HOMEPAGE_EXPERIMENT"
FLAG_PAGE = f"/gatekeeper/flags/{FLAG}"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


# --- The store ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda reason: store.force(FLAG, "VARIANT_A", "ann", reason=reason),
        lambda reason: store.set_user_override(FLAG, "1", "VARIANT_A", "ann", reason=reason),
    ],
    ids=["force", "set_user_override"],
)
def test_every_store_write_records_its_reason(app, admin, write):
    """A write given `reason=` stores it, trimmed, on its audit entry."""
    with app.app_context():
        entry = write("  checkout errors   in EU ")
    assert entry.reason == "checkout errors in EU"
    assert audit_log(app)[0].reason == "checkout errors in EU"


def test_undoing_writes_record_their_reason_too(app, admin):
    """`unforce` and `clear_user_override` take a reason like the writes they undo."""
    with app.app_context():
        store.force(FLAG, "VARIANT_A", "ann")
        store.set_user_override(FLAG, "1", "VARIANT_A", "ann")
        store.unforce(FLAG, "ann", reason="fixed")
        store.clear_user_override(FLAG, "1", "ann", reason="done testing")
    assert [entry.reason for entry in audit_log(app)] == ["done testing", "fixed", None, None]


def test_a_blank_reason_is_no_reason(app):
    """Whitespace only is stored as no reason at all."""
    with app.app_context():
        assert store.force(FLAG, "VARIANT_A", "ann", reason="   ").reason is None


@pytest.mark.parametrize(
    ("reason", "message"),
    [("x" * (REASON_LENGTH + 1), "characters long"), ("a\x00b", "NUL")],
    ids=["too long", "NUL"],
)
def test_a_reason_that_cannot_be_stored_changes_nothing(app, reason, message):
    """A reason too long (or with a NUL) is refused with a clear message before anything is written."""
    with app.app_context(), pytest.raises(OverrideError, match=message):
        store.force(FLAG, "VARIANT_A", "ann", reason=reason)
    assert snapshot(app).forced == {}
    assert audit_log(app) == []


# --- The dashboard ------------------------------------------------------------------------------------------


def test_every_change_form_on_the_flag_page_has_an_optional_reason(admin_client, make_user):
    """Force, stop forcing, add and remove an override: each audited form has a `reason` field, not
    required; the browser override (never audited) has none."""
    make_user("ann@example.com", user_id=7)
    admin_client.post(f"{FLAG_PAGE}/users", data={"user": "ann@example.com", "variant": "VARIANT_B"})
    admin_client.post(f"{FLAG_PAGE}/force", data={"variant": "VARIANT_A", "confirm": "yes"})
    page = admin_client.get(FLAG_PAGE).text
    forms = dict(re.findall(r'<form method="post" action="([^"#]+)(?:#\w+)?"[^>]*>(.*?)</form>', page, re.S))
    for action in ("force", "unforce", "users", "users/remove"):
        form = forms[f"{FLAG_PAGE}/{action}"]
        [field] = re.findall(r"<input[^>]*name=\"reason\"[^>]*>", form)
        assert "required" not in field
        assert "Reason" in form
    assert 'name="reason"' not in forms[f"{FLAG_PAGE}/browser-override"]


def test_a_reason_given_in_the_dashboard_shows_in_the_audit_log_and_flag_history(app, admin_client):
    """The reason typed with a force is stored and shown, escaped, on the audit log and the flag page."""
    admin_client.post(
        f"{FLAG_PAGE}/force", data={"variant": "VARIANT_A", "confirm": "yes", "reason": "<b>incident</b> 42"}
    )
    assert audit_log(app)[0].reason == "<b>incident</b> 42"
    for path in ("/gatekeeper/audit", FLAG_PAGE):
        page = admin_client.get(path).text
        assert "&lt;b&gt;incident&lt;/b&gt; 42" in page


def test_a_reason_too_long_in_the_dashboard_is_an_error_not_a_500(app, admin_client):
    """The form's reason is checked by the store: a clear message, nothing changed."""
    response = admin_client.post(
        f"{FLAG_PAGE}/force",
        data={"variant": "VARIANT_A", "confirm": "yes", "reason": "x" * (REASON_LENGTH + 1)},
    )
    assert response.status_code == 422
    assert "keep it under" in response.text
    assert 'aria-describedby="gk-error-forced"' in response.text  # beside the reason field
    assert audit_log(app) == []


def test_the_force_confirmation_states_its_impact(admin_client, make_user):
    """Forcing names who it reaches and how many stored overrides it puts aside."""
    make_user("ann@example.com", user_id=7)
    make_user("bob@example.com", user_id=8)
    for email in ("ann@example.com", "bob@example.com"):
        admin_client.post(f"{FLAG_PAGE}/users", data={"user": email, "variant": "VARIANT_B"})
    page = admin_client.get(FLAG_PAGE).text
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "every user gets this variant, overriding the rules; 2 stored overrides ignored." in text


# --- The CLI ------------------------------------------------------------------------------------------------


def test_the_cli_takes_a_reason_for_every_change(app, runner, admin):
    """`--reason` on force, unforce, override and override --clear lands in the audit log, and `gk audit`
    prints it."""
    gk(runner, "force", FLAG, "VARIANT_A", "--reason", "launch")
    gk(runner, "unforce", FLAG, "--reason", "rollback")
    gk(runner, "override", FLAG, "VARIANT_B", "--user", "1", "--reason", "QA")
    result = gk(runner, "override", FLAG, "--user", "1", "--clear", "--reason", "QA done")
    assert result.exit_code == 0, result.output
    assert [entry.reason for entry in audit_log(app)] == ["QA done", "QA", "rollback", "launch"]
    assert "(launch)" in gk(runner, "audit").output


def test_the_cli_refuses_a_reason_it_cannot_store(app, runner):
    """A reason too long is a clear CLI error and changes nothing."""
    result = gk(runner, "force", FLAG, "VARIANT_A", "--reason", "x" * (REASON_LENGTH + 1))
    assert result.exit_code == 1
    assert "keep it under" in result.output
    assert snapshot(app).forced == {}
