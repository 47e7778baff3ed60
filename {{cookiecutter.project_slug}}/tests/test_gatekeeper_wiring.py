"""How flags reach views, templates and the command line."""

import gc
import weakref
from dataclasses import dataclass

from flask import request

from {{ cookiecutter.package_name }} import gatekeeper
from tests.bare_app import StaticStore, make_app


def test_jinja_globals_ff_and_gk_answer_for_the_current_user():
    """Templates get `ff(flag, variant)` and `gk` without passing anything in."""
    app = make_app()
    assert app.test_client().get("/template/ON_OFF/OFF").text == "True OFF True"


def test_flag_required_serves_users_in_the_variant():
    """A view behind `@flag_required` answers users who get the variant..."""
    app = make_app()

    @app.get("/beta")
    @gatekeeper.flag_required("ON_OFF", "OFF")
    def beta():
        return "beta"

    assert app.test_client().get("/beta").text == "beta"


def test_flag_required_answers_404_to_everyone_else():
    """...and is a 404 for everyone else, so a gated page does not reveal that it exists."""
    app = make_app()

    @app.get("/beta")
    @gatekeeper.flag_required("ON_OFF", "ON")
    def beta():
        return "beta"

    assert app.test_client().get("/beta").status_code == 404


def test_gk_list_shows_every_flag():
    """`flask gk list` prints each flag with its variants, default and description."""
    result = make_app().test_cli_runner().invoke(args=["gk", "list"])
    assert result.exit_code == 0
    assert "ON_OFF  [ON OFF]  default=OFF" in result.output
    assert "On for user 7" in result.output
    assert "HALF" in result.output


def test_gk_explain_gives_variant_and_reason_for_a_user():
    """`flask gk explain FLAG --user ID` says what that user gets and why."""
    runner = make_app().test_cli_runner()
    assert (
        "ON_OFF = ON  because: rule" in runner.invoke(args=["gk", "explain", "ON_OFF", "--user", "7"]).output
    )
    assert "ON_OFF = OFF  because: rule" in runner.invoke(args=["gk", "explain", "ON_OFF"]).output


def test_explain_says_a_user_was_taken_as_an_unchecked_id_without_a_user_lookup():
    """With no store's user_lookup, `--user ann` is answered for the id "ann", and the output says so."""
    output = make_app().test_cli_runner().invoke(args=["gk", "explain", "ON_OFF", "--user", "ann"]).output
    assert "ON_OFF = OFF  because: rule" in output
    assert "'ann' was taken as an unchecked user id" in output


def test_gk_explain_reports_a_broken_rule():
    """A rule that raises is explained as the default, with what went wrong."""
    output = make_app().test_cli_runner().invoke(args=["gk", "explain", "BROKEN"]).output
    assert "BROKEN = OLD  because: default (rule raised RuntimeError)" in output


def test_gk_explain_rejects_an_unknown_flag():
    """An unknown flag is a usage error that lists the known flags."""
    result = make_app().test_cli_runner().invoke(args=["gk", "explain", "NOPE"])
    assert result.exit_code == 2
    assert "ON_OFF" in result.output


def test_on_response_hands_over_the_response_of_a_request_that_asked_a_flag():
    """`on_response(app, f)`: `f(gk, response, started)` once, after the view, for the request's own
    Gatekeeper, with the evaluations it made."""
    app = make_app()
    seen = []
    gatekeeper.on_response(
        app, lambda gk, response, started: seen.append((gk.evaluations(), response.status))
    )
    app.test_client().get("/explain/ON_OFF")
    [(evaluations, status)] = seen
    assert [e.flag for e in evaluations] == ["ON_OFF"]
    assert status == "200 OK"


def test_a_request_that_asked_a_flag_is_freed_when_it_ends_without_the_garbage_collector():
    """`request.gk` refers to its request; the request lets go of it when it closes, so the pair (and the
    request's environ) is freed at once, as a request that asked nothing is, not left for a collection."""
    app = make_app()
    seen = []

    @app.get("/asks")
    def asks():
        seen.append(weakref.ref(request._get_current_object()))
        return str(request.gk.ff("ON_OFF", "ON"))

    gc.disable()
    try:
        assert app.test_client().get("/asks").status_code == 200
        assert seen[0]() is None
    finally:
        gc.enable()


def test_on_response_runs_nothing_for_a_request_that_asked_no_flag():
    app = make_app()
    seen = []
    gatekeeper.on_response(app, lambda gk, response, started: seen.append(gk))

    @app.get("/plain")
    def plain():
        return "no flag here"

    app.test_client().get("/plain")
    assert seen == []


def test_on_evaluation_is_told_each_flag_once_per_request_with_its_evaluation():
    """`on_evaluation(app, f)`: `f(gk, evaluation)` at a flag's first evaluation in a request; the same
    flag asked again is memoised and tells nothing; another request tells again."""
    app = make_app()
    seen = []
    gatekeeper.on_evaluation(app, lambda gk, evaluation: seen.append((gk is request.gk, evaluation)))

    @app.get("/thrice")
    def thrice():
        gk = request.gk
        return f"{gk.ff_variant('ON_OFF')} {gk.ff('ON_OFF', 'ON')} {gk.ff_variant('HALF')}"

    client = app.test_client()
    on_off, _, half = client.get("/thrice").text.split()
    assert [(own, e.flag, e.variant) for own, e in seen] == [(True, "ON_OFF", on_off), (True, "HALF", half)]
    client.get("/thrice")
    assert [e.flag for _, e in seen] == ["ON_OFF", "HALF", "ON_OFF", "HALF"]


def test_on_evaluation_tells_evaluations_outside_a_request_and_counts_a_function_once():
    """A job's Gatekeeper tells its evaluations too; a function registered twice is called once."""
    app = make_app()
    seen = []

    def note(gk, evaluation):
        seen.append(evaluation.flag)

    gatekeeper.on_evaluation(app, note)
    gatekeeper.on_evaluation(app, note)
    with app.app_context():
        gatekeeper.Gatekeeper(user_id=7).ff_variant("ON_OFF")
    assert seen == ["ON_OFF"]


def test_a_failing_on_evaluation_function_is_logged_and_the_flag_still_answers(caplog):
    app = make_app()

    def broken(gk, evaluation):
        raise RuntimeError("telling failed")

    gatekeeper.on_evaluation(app, broken)
    response = app.test_client().get("/explain/ON_OFF")
    assert response.status_code == 200
    assert "failed on the evaluation of ON_OFF" in caplog.text


def test_what_runs_at_a_requests_end_reads_its_cookies_from_the_gatekeeper():
    """`gk.request_cookies` keeps the cookies the first flag read, for `on_request_end` and the like, which
    read one with `cookie_in` after the request is let go."""
    app = make_app()
    seen = []
    gatekeeper.on_request_end(
        app, lambda gk, request: seen.append(gatekeeper.cookie_in(gk.request_cookies, "theme"))
    )
    client = app.test_client()
    client.set_cookie("theme", "dark")
    client.get("/explain/ON_OFF")
    assert seen == ["dark"]


def test_a_gatekeeper_that_asked_no_flag_has_no_request_cookies_yet():
    app = make_app()

    @app.get("/unasked")
    def unasked():
        return str(request.gk.request_cookies)

    assert app.test_client().get("/unasked").text == "None"


@dataclass
class WatchingStore(StaticStore):
    """A store whose snapshot names the flags whose requests `on_response` functions see."""

    watched: frozenset[str] = frozenset()


def test_on_response_sees_only_requests_that_asked_a_flag_the_store_watches():
    """With a `watched` set in the snapshot (gatekeeper_control: the flags under a release), a request that
    asked only other flags runs nothing; one that asked a watched flag, even after others, is handed over."""
    app = make_app(store=WatchingStore(watched=frozenset({"HALF"})))
    seen = []
    gatekeeper.on_response(app, lambda gk, response, started: seen.append(gk.evaluations()))

    @app.get("/two")
    def two():
        return f"{request.gk.ff_variant('ON_OFF')} {request.gk.ff_variant('HALF')}"

    client = app.test_client()
    client.get("/explain/ON_OFF")
    assert seen == []
    client.get("/two")
    [evaluations] = seen
    assert [e.flag for e in evaluations] == ["ON_OFF", "HALF"]


def test_a_failing_on_response_function_is_logged_and_the_response_still_goes_out(caplog):
    app = make_app()

    def broken(gk, response, started):
        raise RuntimeError("counting failed")

    gatekeeper.on_response(app, broken)
    response = app.test_client().get("/explain/ON_OFF")
    assert response.status_code == 200
    assert "failed on a response" in caplog.text
