"""`flask gk force|unforce|override|audit`: the dashboard's changes from a terminal, audited as "cli"."""

import pytest

from tests.store_helpers import audit_log, snapshot


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def test_force_serves_a_variant_to_everyone(app, runner):
    """`flask gk force FLAG VARIANT` forces it, says so, and audits it as the CLI."""
    result = gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    assert result.exit_code == 0
    assert "MY_NEW_FEATURE: everyone now gets VISIBLE" in result.output
    assert snapshot(app).forced == {"MY_NEW_FEATURE": "VISIBLE"}
    [entry] = audit_log(app)
    assert (entry.actor, entry.action, entry.before, entry.after) == ("cli", "force", None, "VISIBLE")


def test_forcing_twice_says_nothing_changed(app, runner):
    """The second identical force succeeds without a second audit entry."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    result = gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    assert result.exit_code == 0
    assert "already forced" in result.output
    assert len(audit_log(app)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["force", "MY_NEW_FEATUR", "VISIBLE"], "Unknown flag 'MY_NEW_FEATUR'. Did you mean MY_NEW_FEATURE?"),
        (
            ["force", "MY_NEW_FEATURE", "ON"],
            "MY_NEW_FEATURE has no variant 'ON': use one of VISIBLE, NOT_VISIBLE",
        ),
        (["override", "NOPE", "ON", "--user", "1"], "Unknown flag 'NOPE'"),
        (["override", "MY_NEW_FEATURE", "ON", "--user", "1"], "has no variant 'ON'"),
        (["override", "MY_NEW_FEATURE", "VISIBLE", "--user", "nobody@example.com"], "No user matches"),
    ],
)
def test_bad_names_fail_with_a_clear_message_and_write_nothing(app, runner, admin, args, message):
    """An unknown flag, variant or user: non-zero exit, the reason, and no change or audit entry."""
    result = gk(runner, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert snapshot(app).forced == {}
    assert snapshot(app).user_overrides == {}
    assert audit_log(app) == []


def test_unforce_stops_forcing(app, runner):
    """`flask gk unforce FLAG` removes the forced variant, audited as the CLI."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    result = gk(runner, "unforce", "MY_NEW_FEATURE")
    assert result.exit_code == 0
    assert "no longer forced" in result.output
    assert snapshot(app).forced == {}
    assert audit_log(app)[0].action == "unforce"


def test_unforce_of_a_flag_that_is_not_forced_says_so(runner):
    """Nothing to undo is not an error."""
    result = gk(runner, "unforce", "MY_NEW_FEATURE")
    assert result.exit_code == 0
    assert "not forced" in result.output


def test_override_pins_a_user_by_email(app, runner, user):
    """`flask gk override FLAG VARIANT --user EMAIL` stores the override under the user's id."""
    result = gk(runner, "override", "MY_NEW_FEATURE", "NOT_VISIBLE", "--user", user.email)
    assert result.exit_code == 0
    assert f"{user.email} now gets NOT_VISIBLE" in result.output
    assert snapshot(app).user_overrides == {"MY_NEW_FEATURE": {str(user.id): "NOT_VISIBLE"}}
    assert audit_log(app)[0].actor == "cli"


def test_override_pins_a_user_by_id(app, runner, user):
    """A numeric id works as well as an email."""
    assert gk(runner, "override", "MY_NEW_FEATURE", "NOT_VISIBLE", "--user", str(user.id)).exit_code == 0
    assert snapshot(app).user_overrides == {"MY_NEW_FEATURE": {str(user.id): "NOT_VISIBLE"}}


def test_override_clear_removes_the_users_override(app, runner, user):
    """`--clear` removes it again, audited as the CLI."""
    gk(runner, "override", "MY_NEW_FEATURE", "NOT_VISIBLE", "--user", user.email)
    result = gk(runner, "override", "MY_NEW_FEATURE", "--user", user.email, "--clear")
    assert result.exit_code == 0
    assert "removed" in result.output
    assert snapshot(app).user_overrides == {}
    assert audit_log(app)[0].action == "clear_user_override"


def test_override_clear_for_an_unknown_user_fails(app, runner):
    """Clearing for a user who does not exist and has no stored override is an error."""
    result = gk(runner, "override", "MY_NEW_FEATURE", "--user", "nobody@example.com", "--clear")
    assert result.exit_code != 0
    assert "No user matches 'nobody@example.com'" in result.output


def test_override_without_a_variant_or_clear_is_a_usage_error(runner, user):
    """The command says what is missing."""
    result = gk(runner, "override", "MY_NEW_FEATURE", "--user", user.email)
    assert result.exit_code == 2
    assert "Give a VARIANT, or --clear" in result.output


def test_override_with_both_a_variant_and_clear_is_a_usage_error(runner, user):
    """--clear and a VARIANT contradict each other."""
    result = gk(runner, "override", "MY_NEW_FEATURE", "VISIBLE", "--user", user.email, "--clear")
    assert result.exit_code == 2


def test_audit_lists_changes_newest_first(runner):
    """`flask gk audit` prints one line per change, the newest first."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    gk(runner, "force", "HOMEPAGE_EXPERIMENT", "CONTROL")
    lines = gk(runner, "audit").output.splitlines()
    assert len(lines) == 2
    assert "HOMEPAGE_EXPERIMENT  force  everyone  - -> CONTROL" in lines[0]
    assert "UTC  cli  MY_NEW_FEATURE" in lines[1]


def test_audit_can_show_one_flag_and_limit_the_count(runner):
    """`--flag` keeps one flag's changes; `--limit` caps the number of lines."""
    gk(runner, "force", "MY_NEW_FEATURE", "VISIBLE")
    gk(runner, "unforce", "MY_NEW_FEATURE")
    gk(runner, "force", "HOMEPAGE_EXPERIMENT", "CONTROL")
    lines = gk(runner, "audit", "--flag", "MY_NEW_FEATURE", "--limit", "1").output.splitlines()
    assert len(lines) == 1
    assert "MY_NEW_FEATURE  unforce" in lines[0]


def test_audit_with_no_changes_says_so(runner):
    """An empty log is a sentence, not silence."""
    assert "No changes recorded yet." in gk(runner, "audit").output


def test_audit_refuses_a_limit_below_one(runner):
    """`--limit 0` is a usage error."""
    assert gk(runner, "audit", "--limit", "0").exit_code == 2
