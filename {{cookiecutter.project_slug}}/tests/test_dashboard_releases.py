"""The flag page's guarded release card: start a release from the page, see its milestones, each arm's
evidence and the decisions in words, and pause, resume, advance or abort it (abort behind a confirmation)."""

import time

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control import outcomes
from {{ cookiecutter.package_name }}.gatekeeper_control.outcomes import ERRORS, Totals
from {{ cookiecutter.package_name }}.gatekeeper_control.releases import releases
from tests.store_helpers import snapshot

CHECKOUT = "/gatekeeper/flags/NEW_CHECKOUT"
START = {"treatment": "ON", "control": "OFF", "milestones": "1, 5, 25, 50, 100", "guard-errors": "yes"}


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def start(client, **form):
    return client.post(f"{CHECKOUT}/release", data={**START, **form})


def card(page):
    return page[page.index('id="release"') : page.index('id="schedules"')]


def test_a_flag_that_rolls_out_offers_to_start_a_release(admin_client):
    page = card(admin_client.get(CHECKOUT).text)
    assert '<span class="gk-part-status">none</span>' in page  # no release yet
    assert "Start the release" in page


def test_a_flag_without_weights_says_what_a_release_needs(admin_client):
    page = card(admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE").text)
    assert "give the flag a <code>ROLLOUT</code>" in page
    assert "Start the release" not in page


def test_starting_a_release_comes_back_to_its_card_with_the_first_milestone_current(admin_client, app):
    response = start(admin_client, reason="new payment form")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/gatekeeper/flags/NEW_CHECKOUT#release")
    page = admin_client.get(CHECKOUT).text
    assert "NEW_CHECKOUT: release #1 started, ON at 1% against OFF." in page
    assert '<li class="gk-track-step gk-track-current" aria-current="step">1%</li>' in card(page)
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 1, "OFF": 99}


def test_milestones_that_are_not_numbers_are_refused_beside_their_field(admin_client, app):
    response = start(admin_client, milestones="one, five")
    assert response.status_code == 422
    assert 'id="gk-error-release"' in response.text
    assert "Give the milestones as shares" in response.text
    with app.app_context():
        assert releases.current("NEW_CHECKOUT") is None


def test_a_plan_that_cannot_work_is_refused_and_nothing_starts(admin_client, app):
    response = start(admin_client, milestones="5, 1, 100")
    assert response.status_code == 422
    assert "milestones must rise" in response.text
    with app.app_context():
        assert releases.current("NEW_CHECKOUT") is None


def test_the_card_shows_each_arms_evidence_and_the_decisions_in_words(admin_client, app):
    start(admin_client, min_sample="100", min_minutes="0")
    minute = int(time.time() // 60)
    with app.app_context():
        outcomes.add(
            app.extensions["gatekeeper_store"].engine,
            {
                ("NEW_CHECKOUT", "OFF", minute, ERRORS): Totals(5_000, 50.0, 50.0),
                ("NEW_CHECKOUT", "ON", minute, ERRORS): Totals(400, 60.0, 60.0),
            },
        )
        releases.check_due()
    page = card(admin_client.get(CHECKOUT).text)
    assert "#1 rolled back, ON at 0%" in page
    assert "0.15 over 400" in page
    assert "0.01 over 5,000" in page
    assert "rolled back from 1%: errors: treatment 0.15 over 400" in page


def test_pause_then_resume_from_the_card(admin_client, app):
    start(admin_client)
    admin_client.post(f"{CHECKOUT}/release/pause")
    assert "#1 paused" in card(admin_client.get(CHECKOUT).text)
    admin_client.post(f"{CHECKOUT}/release/resume")
    assert "#1 running" in card(admin_client.get(CHECKOUT).text)


def test_advance_now_moves_to_the_next_milestone(admin_client, app):
    start(admin_client)
    admin_client.post(f"{CHECKOUT}/release/advance")
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 5, "OFF": 95}


def test_abort_needs_the_confirmation_box(admin_client, app):
    start(admin_client)
    refused = admin_client.post(f"{CHECKOUT}/release/abort")
    assert refused.status_code == 422
    assert "Tick the box to confirm" in refused.text
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 1, "OFF": 99}
    admin_client.post(f"{CHECKOUT}/release/abort", data={"confirm": "yes"})
    assert snapshot(app).weights["NEW_CHECKOUT"] == {"ON": 0, "OFF": 100}
