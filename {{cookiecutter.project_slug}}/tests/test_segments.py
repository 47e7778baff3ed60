"""Segments: named conditions on context attributes, made at runtime, that a flag targets like a group."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.segments import segments
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.store_helpers import audit_log, count_queries, snapshot


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def explain(app, flag, user_id):
    with app.app_context():
        return Gatekeeper(user_id=user_id).explain(flag)


@pytest.fixture
def example_segment(runner):
    """Segment "examples": email ends with @example.com, targeted by MY_NEW_FEATURE with VISIBLE."""
    assert gk(runner, "segment", "create", "examples").exit_code == 0
    assert gk(runner, "segment", "add", "examples", "email", "ends_with", "@example.com").exit_code == 0
    assert gk(runner, "target", "MY_NEW_FEATURE", "examples", "VISIBLE").exit_code == 0


def test_a_targeted_segment_gives_its_variant_to_users_who_match(app, example_segment, make_user):
    """The done-when story: a segment "email ends with @example.com" gets MY_NEW_FEATURE's VISIBLE."""
    ann = make_user("ann@example.com", user_id=50)
    bob = make_user("bob@example.org", user_id=51)
    evaluation = explain(app, "MY_NEW_FEATURE", ann.id)
    assert (evaluation.variant, evaluation.reason, evaluation.detail) == (
        "VISIBLE",
        "group_target",
        "in segment examples",
    )
    assert explain(app, "MY_NEW_FEATURE", bob.id).variant == "NOT_VISIBLE"


def test_a_signed_in_user_sees_the_segments_variant_on_the_home_page(
    client, example_segment, make_user, login
):
    login(client, make_user("ann@example.com", user_id=50))
    assert 'id="my-new-feature"' in client.get("/").get_data(as_text=True)


def test_explain_names_the_segment(runner, example_segment, make_user):
    make_user("ann@example.com", user_id=50)
    result = gk(runner, "explain", "MY_NEW_FEATURE", "--user", "ann@example.com")
    assert "MY_NEW_FEATURE = VISIBLE  because: group_target (in segment examples)" in result.output


def test_every_condition_must_hold(app, runner, example_segment, make_user):
    gk(runner, "segment", "add", "examples", "email", "starts_with", "ann")
    ann, amy = make_user("ann@example.com", user_id=50), make_user("amy@example.com", user_id=52)
    assert explain(app, "MY_NEW_FEATURE", ann.id).variant == "VISIBLE"
    assert explain(app, "MY_NEW_FEATURE", amy.id).variant == "NOT_VISIBLE"


def test_a_segment_without_conditions_matches_nobody(app, runner, make_user):
    gk(runner, "segment", "create", "empty")
    gk(runner, "target", "MY_NEW_FEATURE", "empty", "VISIBLE")
    assert (
        explain(app, "MY_NEW_FEATURE", make_user("ann@example.com", user_id=50).id).variant == "NOT_VISIBLE"
    )


ANN = {"key": "50", "email": "ann@example.com", "is_admin": False}  # a context as the default loader makes


@pytest.mark.parametrize(
    ("attribute", "operator", "value", "matches"),
    [
        ("email", "equals", "ann@example.com", True),
        ("email", "not_equals", "ann@example.com", False),
        ("email", "in", "bob@example.com,ann@example.com", True),
        ("email", "not_in", '["ann@example.com"]', False),
        ("email", "starts_with", "ann@", True),
        ("email", "contains", "@exam", True),
        ("email", "matches", r"^[a-z]+@example\.(com|org)$", True),
        ("is_admin", "equals", "false", True),
        ("is_admin", "equals", "0", False),  # 0 is not false
        ("email", "is_set", None, True),
        ("country", "is_not_set", None, True),
        ("country", "equals", "FR", False),  # missing: false, never an error
        ("email", "gt", "3", False),  # mistyped: text is not a number, so false
        ("email", "semver_gt", "1.0", False),
        ("email", "before", "2030-01-01", False),
    ],
)
def test_operators(module_app, attribute, operator, value, matches):
    """Each operator, saved with `flask gk segment add`, on ann@example.com's default context."""
    runner, name = module_app.test_cli_runner(), f"{attribute}-{operator}-{abs(hash(value)) % 10**6}"
    gk(runner, "segment", "create", name)
    result = gk(runner, "segment", "add", name, attribute, operator, *([value] if value is not None else []))
    assert result.exit_code == 0, result.output
    with module_app.app_context():
        assert (name in segments.matching(ANN, store.snapshot(max_age=0))) is matches


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["email", "matches", "(a)\\1"], "is not a pattern RE2 accepts"),
        (["email", "matches", "(unclosed"], "is not a pattern RE2 accepts"),
        (["age", "gte", "eighteen"], "age gte: give a number, not 'eighteen'"),
        (["app_version", "semver_gt", "two"], "'two' is not a version like 2.1.0"),
        (["signed_up", "before", "soon"], "'soon' is not a date like 2027-01-31"),
        (["email", "ends_with"], "email ends_with needs a value"),
        (["country", "is_set", "FR"], "country is_set takes no value"),
    ],
)
def test_a_bad_condition_is_refused_with_its_reason_and_writes_nothing(module_app, args, message):
    runner, name = module_app.test_cli_runner(), f"bad-{args[0]}-{args[1]}-{len(args)}-{len(args[-1])}"
    gk(runner, "segment", "create", name)
    result = gk(runner, "segment", "add", name, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert snapshot(module_app).segments[name].conditions == ()


def test_conditions_are_listed_and_removed_by_number(app, runner):
    gk(runner, "segment", "create", "s")
    gk(runner, "segment", "add", "s", "email", "ends_with", "@example.com")
    gk(runner, "segment", "add", "s", "is_admin", "equals", "true")
    listing = gk(runner, "segment", "list").output
    assert '1. email ends with "@example.com"' in listing
    assert "2. is_admin equals true" in listing
    gk(runner, "segment", "remove", "s", "1")
    assert [str(c) for c in snapshot(app).segments["s"].conditions] == ["is_admin equals true"]


def test_segment_changes_are_audited(app, runner):
    gk(runner, "segment", "create", "s")
    gk(runner, "segment", "add", "s", "email", "ends_with", "@example.com")
    added, created = audit_log(app)[:2]
    assert (created.action, created.target) == ("create_segment", "s")
    assert (added.action, added.after, added.actor) == (
        "add_condition",
        'email ends with "@example.com"',
        "cli",
    )


def test_a_deleted_segment_leaves_a_stale_target_never_an_error(app, runner, example_segment, make_user):
    gk(runner, "segment", "delete", "examples")
    assert (
        explain(app, "MY_NEW_FEATURE", make_user("ann@example.com", user_id=50).id).variant == "NOT_VISIBLE"
    )
    with app.app_context():
        from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting

        [stale] = targeting.stale()
    assert (stale.name, stale.reason) == ("examples", "group examples no longer exists")


def test_check_says_whether_a_user_matches_and_why_not(app, runner, example_segment, make_user):
    make_user("bob@example.org", user_id=51)
    result = gk(runner, "segment", "check", "examples", "--user", "bob@example.org")
    assert "'email': 'bob@example.org'" in result.output
    assert 'does not match segment examples:\n    not email ends with "@example.com"' in result.output


def test_segment_checks_make_no_query(app, client, example_segment, make_user, login):
    login(client, make_user("ann@example.com", user_id=50))
    client.get("/")
    with count_queries(app) as statements:
        client.get("/")
    assert not [s for s in statements if "gatekeeper" in s]


def test_a_segment_target_can_split_its_members_stickily(app, runner):
    """`target FLAG SEGMENT VISIBLE=50,NOT_VISIBLE=50`: about half the segment each, the same every time."""
    gk(runner, "segment", "create", "examples")
    gk(runner, "segment", "add", "examples", "email", "ends_with", "@example.com")
    result = gk(runner, "target", "MY_NEW_FEATURE", "examples", "VISIBLE=50,NOT_VISIBLE=50")
    assert result.exit_code == 0, result.output
    with app.app_context():

        def evaluation(user_id, email):
            return Gatekeeper(user_id=user_id, context={"email": email}).explain("MY_NEW_FEATURE")

        members = [evaluation(user_id, f"u{user_id}@example.com") for user_id in range(100, 300)]
        again = [evaluation(user_id, f"u{user_id}@example.com") for user_id in range(100, 300)]
        outsider = evaluation(400, "u400@example.org")
    visible = sum(e.variant == "VISIBLE" for e in members)
    assert 70 <= visible <= 130
    assert [e.variant for e in members] == [e.variant for e in again]
    assert {e.reason for e in members} == {"group_target"}
    assert members[0].detail.startswith("in segment examples, ") and members[0].detail.endswith(
        "of its split"
    )
    assert outsider.reason == "rule"


def test_a_split_must_name_the_flags_variants_and_add_up(app, runner):
    gk(runner, "segment", "create", "examples")
    result = gk(runner, "target", "MY_NEW_FEATURE", "examples", "VISIBLE=50,HIDDEN=50")
    assert result.exit_code != 0
    assert "MY_NEW_FEATURE has no variant 'HIDDEN'" in result.output
    result = gk(runner, "target", "MY_NEW_FEATURE", "examples", "VISIBLE=50,NOT_VISIBLE=40")
    assert "the weights add up to 90, not 100" in result.output
    assert snapshot(app).group_targets == {}


def test_without_google_re2_a_pattern_is_refused_naming_the_package(app, runner, monkeypatch):
    """In an app that copied the folder without google-re2, `matches` cannot be saved (never a slow regex)."""
    from {{ cookiecutter.package_name }}.gatekeeper_control import conditions

    monkeypatch.setattr(conditions, "re2", None)
    gk(runner, "segment", "create", "s")
    result = gk(runner, "segment", "add", "s", "email", "matches", "@example")
    assert "patterns need the google-re2 package (pip install google-re2)" in result.output
    assert snapshot(app).segments["s"].conditions == ()


def test_groups_and_segments_do_not_share_a_name(app, runner):
    """Flags target both by name, so a name is a group's or a segment's, never both."""
    gk(runner, "segment", "create", "beta")
    assert "beta is a segment; choose another name" in gk(runner, "group", "create", "beta").output
    gk(runner, "group", "create", "testers")
    assert (
        "testers is a stored group: choose another name" in gk(runner, "segment", "create", "testers").output
    )
