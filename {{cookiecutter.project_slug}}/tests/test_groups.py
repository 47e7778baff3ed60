"""Groups: stored (`flask gk group ...`) and defined in code, targeted by flags after user overrides."""

import pytest

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting
from tests.store_helpers import another_process, audit_log, count_queries, snapshot


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def explain(app, flag, user_id):
    with app.test_request_context():
        return Gatekeeper(user_id=user_id).explain(flag)


@pytest.fixture
def beta(app, runner, make_user):
    """A stored group `beta` holding ann (id 7) and bob (id 8)."""
    make_user("ann@example.com", user_id=7)
    make_user("bob@example.com", user_id=8)
    assert gk(runner, "group", "create", "beta", "--description", "Early testers").exit_code == 0
    result = gk(runner, "group", "add", "beta", "ann@example.com", "8")
    assert result.exit_code == 0, result.output
    return "beta"


def test_group_add_takes_emails_and_ids_and_lists_members(app, runner, beta):
    """Members are added by email or id; `group list` shows the group, its description and its members."""
    assert dict(snapshot(app).group_members["beta"]) == {"7": "ann@example.com", "8": "bob@example.com"}
    output = gk(runner, "group", "list").output
    assert "beta  2 members  Early testers" in output
    assert "ann@example.com (id 7)" in output


def test_adding_an_unknown_user_is_refused_and_adds_nobody(app, runner, beta, make_user):
    """One unknown email in the list: a clear message, and not even the known users are added."""
    make_user("cy@example.com", user_id=9)
    result = gk(runner, "group", "add", "beta", "cy@example.com", "nobody@example.com")
    assert result.exit_code == 1
    assert "No user matches 'nobody@example.com'" in result.output
    assert "9" not in snapshot(app).group_members["beta"]


def test_removing_members_empties_the_group(app, runner, beta):
    """`group remove` takes emails or ids, and is audited with who was removed."""
    result = gk(runner, "group", "remove", "beta", "7", "bob@example.com")
    assert result.exit_code == 0, result.output
    assert dict(snapshot(app).group_members["beta"]) == {}
    assert audit_log(app)[0].before == "ann@example.com, bob@example.com"


def test_a_group_name_is_created_once(runner, beta):
    """Creating an existing group fails with a message instead of silently merging."""
    result = gk(runner, "group", "create", "beta")
    assert result.exit_code == 1
    assert "Group beta already exists" in result.output


def test_an_empty_untargeted_group_is_deleted_and_audited_with_its_description(app, runner, beta):
    """`group delete` removes a group once it has no members and no flag targets it."""
    gk(runner, "group", "remove", "beta", "7", "8")
    result = gk(runner, "group", "delete", "beta")
    assert result.exit_code == 0, result.output
    assert "Group beta deleted." in result.output
    assert "beta" not in snapshot(app).groups
    deleted = audit_log(app)[0]
    assert (deleted.action, deleted.before) == ("delete_group", "Early testers")
    assert deleted.what == "group beta deleted"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (False, "Group beta has 2 members: remove them first"),
        (True, "Group beta is targeted by NEW_CHECKOUT"),
    ],
)
def test_a_group_with_members_or_targets_is_not_deleted(app, runner, beta, target, message):
    """Deleting a group would change who gets what with no change of its own in the log: refused."""
    if target:
        gk(runner, "group", "remove", "beta", "7", "8")
        gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    entries = len(audit_log(app))
    result = gk(runner, "group", "delete", "beta")
    assert result.exit_code == 1
    assert message in result.output
    assert "beta" in snapshot(app).groups
    assert len(audit_log(app)) == entries


def test_group_changes_are_audited(app, beta):
    """Creation and additions are in the audit log, by the CLI, with what changed."""
    added, created = audit_log(app)[:2]
    assert (created.action, created.target, created.actor) == ("create_group", "beta", "cli")
    assert (added.action, added.after) == ("add_members", "ann@example.com, bob@example.com")
    assert added.what == "added to group beta"


def test_a_targeted_group_gets_its_variant_and_explain_names_the_group(app, runner, beta):
    """`flask gk target FLAG GROUP VARIANT`: members get it, reason group_target, naming the group."""
    result = gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    assert result.exit_code == 0, result.output
    assert "NEW_CHECKOUT: group beta now gets ON" in result.output
    variant, reason, detail = explain(app, "NEW_CHECKOUT", 7)[1:]
    assert (variant, reason, detail) == ("ON", "group_target", "member of group beta")
    explained = gk(runner, "explain", "NEW_CHECKOUT", "--user", "ann@example.com").output
    assert "NEW_CHECKOUT = ON  because: group_target (member of group beta)" in explained


def test_users_outside_the_group_keep_the_rule(app, runner, beta):
    """A non-member's variant still comes from the rule."""
    gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    assert explain(app, "NEW_CHECKOUT", 9).reason == "rule"


def test_a_user_override_beats_a_group_target(app, runner, beta):
    """The evaluation order: a per-user override comes before the group target."""
    gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    gk(runner, "override", "NEW_CHECKOUT", "OFF", "--user", "ann@example.com")
    assert explain(app, "NEW_CHECKOUT", 7).reason == "user_override"
    assert explain(app, "NEW_CHECKOUT", 8).reason == "group_target"


def test_a_forced_variant_beats_a_group_target(app, runner, beta):
    """Forcing for everyone comes before group targets."""
    gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    gk(runner, "force", "NEW_CHECKOUT", "OFF")
    assert explain(app, "NEW_CHECKOUT", 7).variant == "OFF"


def test_untarget_brings_back_the_rule(app, runner, beta):
    """`flask gk untarget FLAG GROUP` removes the target; it is audited with the variant it had."""
    gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    result = gk(runner, "untarget", "NEW_CHECKOUT", "beta")
    assert "group beta no longer targeted (was ON)" in result.output
    assert explain(app, "NEW_CHECKOUT", 7).reason == "rule"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["target", "NEW_CHECKOUT", "nope", "ON"], "No group or segment 'nope'"),
        (["target", "NEW_CHECKOUT", "beta", "MAYBE"], "NEW_CHECKOUT has no variant 'MAYBE'"),
        (["target", "NEW_CHECKOU", "beta", "ON"], "Did you mean NEW_CHECKOUT?"),
        (["group", "add", "nope", "7"], "No group 'nope'"),
        (["group", "create", "no spaces"], "is not a group name"),
        (["group", "create", "admins"], "admins is a group defined in code"),
    ],
)
def test_bad_targeting_is_refused_with_a_message(app, runner, beta, args, message):
    """Unknown groups, flags and variants fail with a message that says what to do; nothing is written."""
    entries = len(audit_log(app))
    result = gk(runner, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert len(audit_log(app)) == entries


def test_a_code_group_is_targeted_like_a_stored_one(app, runner, admin, user):
    """The sample's code group `admins` (is_admin): admins get the targeted variant, others the rule."""
    gk(runner, "target", "NEW_CHECKOUT", "admins", "ON")
    evaluation = explain(app, "NEW_CHECKOUT", admin.id)
    assert (evaluation.variant, evaluation.detail) == ("ON", "in group admins (defined in code)")
    assert explain(app, "NEW_CHECKOUT", user.id).reason == "rule"


def test_a_code_group_sees_the_signed_in_user_in_a_request(app, client, runner, admin, login):
    """In a request the predicate gets the logged-in user object; the home page shows the group's variant."""
    gk(runner, "target", "NEW_CHECKOUT", "admins", "ON")
    login(client, admin)
    assert 'data-flag="NEW_CHECKOUT" data-variant="ON"' in client.get("/").text


def test_register_group_adds_a_code_group_to_an_app(app, runner, make_user):
    """`gatekeeper.register_group(name, predicate, description)` defines a group for flags to target."""
    make_user("staff@ourcompany.com", user_id=20)
    make_user("guest@example.com", user_id=21)
    with app.app_context():
        gatekeeper.register_group("staff", lambda user: user.email.endswith("@ourcompany.com"), "Our staff")
    gk(runner, "target", "NEW_CHECKOUT", "staff", "ON")
    assert explain(app, "NEW_CHECKOUT", 20).reason == "group_target"
    assert explain(app, "NEW_CHECKOUT", 21).reason == "rule"


def test_a_code_group_that_raises_counts_as_not_a_member(app, runner, user):
    """A predicate that fails is logged and treated as "not in the group", never an error."""
    with app.app_context():
        gatekeeper.register_group("broken", lambda user: 1 / 0)
    gk(runner, "target", "NEW_CHECKOUT", "broken", "ON")
    assert explain(app, "NEW_CHECKOUT", user.id).reason == "rule"


def test_a_target_naming_a_group_that_is_gone_is_ignored_and_shown_stale(app, runner, user):
    """A target an older deploy set on a code group this code lacks: ignored by flags, listed as stale."""
    old = another_process(app)
    with old.app.app_context():
        gatekeeper.register_group("vip", lambda user: True)
        targeting.target("NEW_CHECKOUT", "vip", "ON", actor="old deploy")
    assert explain(app, "NEW_CHECKOUT", user.id).reason == "rule"
    with app.app_context():
        [stale] = targeting.stale()
    assert (stale.flag, stale.name, stale.reason) == ("NEW_CHECKOUT", "vip", "group vip no longer exists")


def test_a_flag_check_reads_memberships_from_the_snapshot(app, runner, beta):
    """With groups, members and targets stored, checking flags for many users runs no SQL at all."""
    gk(runner, "target", "NEW_CHECKOUT", "beta", "ON")
    snapshot(app)
    with count_queries(app) as statements, app.test_request_context():
        variants = [Gatekeeper(user_id=user_id).ff_variant("NEW_CHECKOUT") for user_id in range(1, 200)]
    assert statements == []
    assert variants[6] == variants[7] == "ON"
