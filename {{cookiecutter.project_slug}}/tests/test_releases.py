"""Guarded releases: a release ramps a flag's treatment by milestones, each step an audited weights change,
and its due check rolls the treatment back when the request outcomes show a regression; request outcomes
are counted per variant, with the app's own metrics from `gatekeeper.track()`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import abort, request

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control import outcomes
from {{ cookiecutter.package_name }}.gatekeeper_control.errors import ReleaseError
from {{ cookiecutter.package_name }}.gatekeeper_control.guardrails import Plan
from {{ cookiecutter.package_name }}.gatekeeper_control.outcomes import ERRORS, LATENCY, Totals
from {{ cookiecutter.package_name }}.gatekeeper_control.releases import make_plan, releases
from tests.store_helpers import audit_log, snapshot

QUICK = {"min_seconds": 0, "min_sample": 100}


def start(app, flag="NEW_CHECKOUT", treatment="ON", control="OFF", actor="ada@example.com", **plan):
    with app.app_context():
        return releases.start(flag, treatment, control, actor, plan=make_plan(**{**QUICK, **plan}))


def serve(app, flag, variant, requests, errors=0, latency_ms=None, metric=None):
    """Add `requests` outcomes of `variant` now, as the request recorder's flush would."""
    minute = int(time.time() // 60)
    entries = {(flag, variant, minute, ERRORS): Totals(requests, float(errors), float(errors))}
    if latency_ms is not None:
        latency = Totals()
        for _ in range(requests):
            latency.add(latency_ms, histogram=True)
        entries[(flag, variant, minute, LATENCY)] = latency
    if metric is not None:
        name, value = metric
        entries[(flag, variant, minute, name)] = Totals(requests, value * requests, value * value * requests)
    with app.app_context():
        outcomes.add(app.extensions["gatekeeper_store"].engine, entries)


def check(app, now=None):
    with app.app_context():
        return releases.check_due(now)


def current(app, flag="NEW_CHECKOUT"):
    with app.app_context():
        return releases.current(flag)


def test_a_release_starts_at_its_first_milestone_with_an_audited_weights_change(app):
    release = start(app)
    assert (release.state, release.share) == ("running", 1.0)
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 1, "OFF": 99}
    rollout = [e for e in audit_log(app, "NEW_CHECKOUT") if e.action == "rollout"]
    assert [e.actor for e in rollout] == ["release #1 (started by ada@example.com)"]


def test_a_flag_whose_rule_does_not_roll_out_cannot_be_released(app):
    with pytest.raises(ReleaseError, match="does not roll out by weights"):
        start(app, flag="MY_NEW_FEATURE", treatment="VISIBLE", control="NOT_VISIBLE")


def test_a_second_release_of_the_same_flag_is_refused_while_one_runs(app):
    start(app)
    with pytest.raises(ReleaseError, match="already has release #1"):
        start(app)


def test_the_same_variant_as_treatment_and_control_is_refused(app):
    with pytest.raises(ReleaseError, match="must be two variants"):
        start(app, treatment="ON", control="ON")


def test_a_regressing_treatment_is_rolled_back_to_zero_with_the_evidence_audited(app, caplog):
    start(app)
    serve(app, "NEW_CHECKOUT", "OFF", 5_000, errors=50)
    serve(app, "NEW_CHECKOUT", "ON", 400, errors=60)
    [(_, decision)] = check(app)
    assert decision.action == "rollback"
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 0, "OFF": 100}
    release = current(app)
    assert release.state == "rolled_back"
    entry = audit_log(app, "NEW_CHECKOUT")[0]
    assert entry.actor == "release #1 (started by ada@example.com)"
    assert entry.after.startswith(
        "rolled back from 1%: errors: treatment 0.15 over 400, control 0.01 over 5,000"
    )
    assert "rolled back from 1%" in caplog.text


def test_outcomes_counted_before_a_release_began_do_not_count_for_it(app):
    serve(app, "NEW_CHECKOUT", "ON", 1_000, errors=300)  # an earlier, broken try, maybe in the same minute
    start(app, milestones=(50.0, 100.0))
    serve(app, "NEW_CHECKOUT", "OFF", 500, errors=5)
    serve(app, "NEW_CHECKOUT", "ON", 500, errors=5)
    [(_, decision)] = check(app)
    assert decision.action == "complete"


def test_a_step_counts_its_split_from_when_it_began_not_from_the_start_of_its_minute(app):
    start(app, milestones=(10.0, 50.0, 100.0))
    serve(app, "NEW_CHECKOUT", "OFF", 9_000, errors=90)
    serve(app, "NEW_CHECKOUT", "ON", 1_000, errors=10)
    assert [d.action for _, d in check(app)] == ["advance"]
    serve(app, "NEW_CHECKOUT", "OFF", 600, errors=6)
    serve(app, "NEW_CHECKOUT", "ON", 600, errors=6)
    [(_, decision)] = check(app)
    assert decision.action == "complete", decision.reason


def test_a_healthy_step_with_its_sample_advances_to_the_next_milestone(app):
    start(app)
    serve(app, "NEW_CHECKOUT", "OFF", 14_850, errors=150)
    serve(app, "NEW_CHECKOUT", "ON", 150, errors=1)
    [(_, decision)] = check(app)
    assert decision.action == "advance"
    assert current(app).share == 5.0
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 5, "OFF": 95}


def test_a_step_short_of_its_sample_holds_and_says_so_once(app):
    start(app)
    serve(app, "NEW_CHECKOUT", "OFF", 3_960)
    serve(app, "NEW_CHECKOUT", "ON", 40)
    check(app)
    check(app)
    with app.app_context():
        decisions = releases.decisions(current(app).id)
    holds = [d for d in decisions if d.action == "hold"]
    assert [d.reason for d in holds] == ["holding at 1%: 40 of 100 requests in the smaller arm"]


def test_the_step_waits_for_its_minimum_time(app):
    start(app, min_seconds=600)
    serve(app, "NEW_CHECKOUT", "OFF", 49_500)
    serve(app, "NEW_CHECKOUT", "ON", 500)
    [(_, decision)] = check(app)
    assert decision.action == "hold"
    assert "of 10 min at this step" in decision.reason
    [(_, later)] = check(app, datetime.now(UTC) + timedelta(minutes=11))
    assert later.action == "advance"


def test_a_split_that_does_not_match_the_weights_holds_the_release_and_says_why(app):
    start(app)
    serve(app, "NEW_CHECKOUT", "OFF", 5_000)
    serve(app, "NEW_CHECKOUT", "ON", 500)
    [(_, decision)] = check(app)
    assert decision.action == "hold"
    assert "the split does not match the weights (500 treatment and 5,000 control requests" in decision.reason


def test_the_last_step_completes_the_release_at_100_percent(app):
    start(app, milestones=[50, 100])
    serve(app, "NEW_CHECKOUT", "OFF", 500)
    serve(app, "NEW_CHECKOUT", "ON", 500)
    [(_, decision)] = check(app)
    assert decision.action == "complete"
    assert current(app).state == "completed"
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 100, "OFF": 0}


def test_a_decision_is_applied_once_when_two_processes_check_at_once(make_app):
    first = make_app()
    second = make_app(SQLALCHEMY_DATABASE_URI=first.config["SQLALCHEMY_DATABASE_URI"])
    start(first)
    serve(first, "NEW_CHECKOUT", "OFF", 14_850)
    serve(first, "NEW_CHECKOUT", "ON", 150)
    with first.app_context():
        running = releases.current("NEW_CHECKOUT")
        judged = releases._judge(running, datetime.now(UTC))
    for app in (first, second):
        with app.app_context():
            releases._apply(running, judged, datetime.now(UTC))
    assert current(first).share == 5.0
    advances = [e for e in audit_log(first, "NEW_CHECKOUT") if e.action == "rollout"]
    assert len(advances) == 2  # the start and one advance, not two


def test_pause_holds_a_regressing_release_until_it_is_resumed(app):
    start(app)
    with app.app_context():
        releases.pause("NEW_CHECKOUT", "ada@example.com")
    serve(app, "NEW_CHECKOUT", "OFF", 5_000, errors=50)
    serve(app, "NEW_CHECKOUT", "ON", 400, errors=60)
    assert check(app) == []
    with app.app_context():
        releases.resume("NEW_CHECKOUT", "ada@example.com")
    [(_, decision)] = check(app)
    assert decision.action == "rollback"


def test_abort_gives_everyone_the_control(app):
    start(app)
    with app.app_context():
        releases.abort("NEW_CHECKOUT", "ada@example.com", reason="wrong build")
    assert current(app).state == "aborted"
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 0, "OFF": 100}
    assert audit_log(app, "NEW_CHECKOUT")[0].reason == "wrong build"


def test_users_served_the_treatment_keep_it_as_the_ramp_rises(app):
    start(app)
    users = [f"user-{n}" for n in range(2_000)]

    def treated():
        with app.test_request_context():
            return {u for u in users if gatekeeper.Gatekeeper(user_id=u).ff("NEW_CHECKOUT", "ON")}

    at_one = treated()
    with app.app_context():
        releases.advance("NEW_CHECKOUT", "ada@example.com")
        releases.advance("NEW_CHECKOUT", "ada@example.com")
    at_twenty_five = treated()
    assert at_one and at_one <= at_twenty_five
    assert 0.2 < len(at_twenty_five) / len(users) < 0.3


def test_a_saved_template_starts_a_release_with_its_plan(app, runner):
    result = runner.invoke(args=["gk", "release", "save-template", "careful", "--milestones", "10,100"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=[
            "gk",
            "release",
            "start",
            "NEW_CHECKOUT",
            "--treatment",
            "ON",
            "--control",
            "OFF",
            "--template",
            "careful",
        ]
    )
    assert result.exit_code == 0, result.output
    assert current(app).plan.milestones == (10.0, 100.0)


def test_the_cli_refuses_a_plan_that_cannot_work_and_starts_nothing(app, runner):
    result = runner.invoke(
        args=[
            "gk",
            "release",
            "start",
            "NEW_CHECKOUT",
            "--treatment",
            "ON",
            "--control",
            "OFF",
            "--milestones",
            "5,1",
        ]
    )
    assert result.exit_code != 0
    assert "milestones must rise" in result.output
    assert current(app) is None


def test_the_cli_shows_a_release_and_its_evidence(app, runner):
    start(app)
    serve(app, "NEW_CHECKOUT", "OFF", 1_000, errors=10, latency_ms=40)
    serve(app, "NEW_CHECKOUT", "ON", 60, errors=1, latency_ms=90)
    result = runner.invoke(args=["gk", "release", "status", "NEW_CHECKOUT"])
    assert result.exit_code == 0, result.output
    assert "release #1 running, ON at 1% against OFF; [1%] > 5% > 25% > 50% > 100%" in result.output
    assert "errors: ON 0.01667 over 60, OFF 0.01 over 1,000" in result.output


def test_a_request_that_asked_no_flag_under_a_release_counts_nothing(app, client):
    """Outcomes are kept for releases alone: with none under way, a page that asks flags records nothing."""
    client.get("/")
    assert outcomes.recorder(app).pending == 0


def test_a_request_that_asked_a_flag_counts_its_outcome_against_the_variant_served(app, client):
    start(app)
    client.get("/")
    recorder = outcomes.recorder(app)
    with app.app_context():
        assert recorder.flush() > 0
        found = outcomes.totals(
            app.extensions["gatekeeper_store"].engine,
            "NEW_CHECKOUT",
            ("ON", "OFF"),
            ERRORS,
            datetime.now(UTC) - timedelta(minutes=1),
        )
    assert found["ON"].stats.n + found["OFF"].stats.n == 1
    assert found["ON"].stats.total + found["OFF"].stats.total == 0


def test_an_error_response_and_a_tracked_metric_count_against_the_variants_served(app):
    @app.get("/checkout-test")
    def checkout_test():
        request.gk.ff("NEW_CHECKOUT", "ON")
        gatekeeper.track("checkout_completed", 2.5)
        abort(503)

    start(app)
    app.test_client().get("/checkout-test")
    recorder = outcomes.recorder(app)
    with app.app_context():
        recorder.flush()
        engine = app.extensions["gatekeeper_store"].engine
        since = datetime.now(UTC) - timedelta(minutes=1)
        errors = outcomes.totals(engine, "NEW_CHECKOUT", ("ON", "OFF"), ERRORS, since)
        tracked = outcomes.totals(engine, "NEW_CHECKOUT", ("ON", "OFF"), "checkout_completed", since)
    assert sum(a.stats.total for a in errors.values()) == 1
    assert sum(a.stats.total for a in tracked.values()) == 2.5


def test_an_unhandled_exception_counts_as_an_error_against_the_variants_served(app):
    """In production Flask answers an unhandled exception with a 500, and that response is counted."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/checkout-crash")
    def checkout_crash():
        request.gk.ff("NEW_CHECKOUT", "ON")
        raise RuntimeError("the new checkout broke")

    start(app)
    assert app.test_client().get("/checkout-crash").status_code == 500
    with app.app_context():
        outcomes.recorder(app).flush()
        since = datetime.now(UTC) - timedelta(minutes=1)
        engine = app.extensions["gatekeeper_store"].engine
        errors = outcomes.totals(engine, "NEW_CHECKOUT", ("ON", "OFF"), ERRORS, since)
    assert sum(a.stats.total for a in errors.values()) == 1


def test_outcome_recording_adds_no_request_hook_a_page_without_flags_would_run(app):
    """The recorder rides the engine's `on_response` (registered at a request's first flag under a
    release): the app's before, after and teardown lists hold nothing of it."""
    recorder = outcomes.recorder(app)
    hooks = [
        hook
        for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
        for functions in table.values()
        for hook in functions
    ]
    assert recorder is not None
    assert not [hook for hook in hooks if getattr(hook, "__self__", None) is recorder]


def test_track_refuses_a_name_it_cannot_store():
    with pytest.raises(ValueError, match="not a metric name"):
        gatekeeper.track("a#b")
    with pytest.raises(ValueError, match="finite number"):
        gatekeeper.track("revenue", float("nan"))


def test_the_latency_histogram_gives_an_upper_bound_of_the_p95(app):
    serve(app, "NEW_CHECKOUT", "ON", 100, latency_ms=90)
    with app.app_context():
        engine = app.extensions["gatekeeper_store"].engine
        found = outcomes.totals(
            engine, "NEW_CHECKOUT", ("ON",), LATENCY, datetime.now(UTC) - timedelta(minutes=1)
        )
    assert found["ON"].p95 == 128.0
    assert found["ON"].stats.mean == pytest.approx(90.0)


def test_a_plan_made_without_options_uses_the_apps_defaults(app):
    app.config.update(GATEKEEPER_RELEASE_MIN_SECONDS=30, GATEKEEPER_RELEASE_MIN_SAMPLE=50)
    with app.app_context():
        plan = make_plan()
    assert plan == Plan(min_seconds=30.0, min_sample=50)
