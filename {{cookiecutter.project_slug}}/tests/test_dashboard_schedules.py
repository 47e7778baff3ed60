"""The dashboard's scheduled changes: a structured form (the action, then what it needs) whose date-time is
read in the viewer's time zone and stored in UTC, a ramp in one form, and the Upcoming page."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control.dashboard import relative_time
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import scheduler
from tests.store_helpers import audit_log, snapshot

CHECKOUT = "/gatekeeper/flags/NEW_CHECKOUT"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def local(moment):
    """What a datetime-local input sends: no zone, to the minute."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def soon(hours=3):
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


def pending(app, flag="NEW_CHECKOUT"):
    with app.app_context():
        return [(c.due_at, c.description) for c in scheduler.schedules(flag, pending_only=True)]


def flashes(page):
    return re.sub(r"\s+", " ", " ".join(re.findall(r'class="gk-alert[^"]*"[^>]*>(.*?)</div>', page, re.S)))


def test_a_time_typed_in_the_viewers_zone_is_stored_in_utc(app, admin_client):
    """The page's script sends the browser's offset (JavaScript's minutes behind UTC: -120 is UTC+2): 14:00
    typed there is 12:00 UTC."""
    due = soon(hours=30)
    typed = due + timedelta(hours=2)
    data = {"action": "force", "variant": "ON", "at": local(typed), "tz_offset": "-120"}
    admin_client.post(f"{CHECKOUT}/schedules", data=data)
    assert pending(app) == [(due, "force ON")]


def test_without_javascript_the_time_is_read_in_utc_and_the_form_says_so(app, admin_client):
    due = soon(hours=30)
    admin_client.post(f"{CHECKOUT}/schedules", data={"action": "off", "at": local(due), "tz_offset": ""})
    assert pending(app) == [(due, "off")]
    form = admin_client.get(CHECKOUT).text
    assert re.search(r'<span class="gk-muted" id="gk-schedule-zone" data-gk-zone>in UTC</span>', form)


def test_each_action_takes_its_own_fields(app, admin_client):
    """Shares for a rollout, a group and a variant for a target, a group to untarget: no grammar to learn."""
    at = local(soon(hours=30))
    admin_client.post("/gatekeeper/groups", data={"name": "beta"})
    posts = [
        {"action": "rollout", "share-ON": "25", "share-OFF": "75"},
        {"action": "target", "group": "beta", "variant": "ON"},
        {"action": "untarget", "group": "beta"},
    ]
    for data in posts:
        data = {"variant": "OFF", **data, "at": at}
        admin_client.post(f"{CHECKOUT}/schedules", data=data)
    described = [description for _due, description in pending(app)]
    assert described == ["rollout ON=25 OFF=75", "target beta ON", "untarget beta"]


def test_a_target_without_a_group_is_refused_in_the_forms_words(app, admin_client):
    data = {"action": "target", "group": "", "variant": "ON", "at": local(soon())}
    response = admin_client.post(f"{CHECKOUT}/schedules", data=data)
    assert response.status_code == 422
    assert "Choose the group or segment; nothing was scheduled." in response.text
    assert pending(app) == []


def test_a_refused_schedule_comes_back_open_with_what_was_typed(admin_client):
    """The form that saved nothing is shown again, unfolded, with its choices and time kept."""
    data = {"action": "force", "variant": "OFF", "at": "2000-01-01T09:00", "tz_offset": "0", "reason": "why"}
    page = admin_client.post(f"{CHECKOUT}/schedules", data=data).text
    form = page.split("<summary>Schedule a change</summary>")[0].rsplit("<details", 1)[1]
    assert "open" in form
    assert '<option value="force" selected>' in page
    assert '<option value="OFF" selected>' in page
    assert 'value="2000-01-01T09:00"' in page
    assert 'role="alert"' in page


def test_a_bad_date_is_refused_and_nothing_is_scheduled(app, admin_client):
    data = {"action": "off", "at": "31/01/2030 9am", "tz_offset": "0"}
    assert "is not a time" in admin_client.post(f"{CHECKOUT}/schedules", data=data).text
    assert pending(app) == []


def test_a_change_due_later_reads_in_so_many_hours(app, admin_client):
    at = local(soon(hours=3) + timedelta(minutes=1))
    admin_client.post(f"{CHECKOUT}/schedules", data={"action": "off", "at": at})
    page = admin_client.get(CHECKOUT).text
    assert re.search(r'<tr data-state="pending">.*?<span class="gk-muted gk-ago">in 3 h</span>', page, re.S)
    assert "just now" not in page.split('id="gk-schedule-list"')[1].split("</table>")[0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "in 5 s"), (-3 * 3600 + 2, "in 3 h"), (-86400, "in 1 day"), (5, "just now")],
)
def test_relative_time_says_how_far_ahead_in_a_few_words(seconds, text):
    now = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=seconds), now) == text


def test_a_ramp_is_made_in_one_form(app, admin_client):
    """5% now, 25% tomorrow, 100% on Friday: the first step is set at once, the others wait for their time."""
    tomorrow, friday = soon(hours=24), soon(hours=96)
    data = {"variant": "ON", "rest": "OFF", "share-1": "5", "share-2": "25", "step-2-at": local(tomorrow)}
    data |= {"share-3": "100", "step-3-at": local(friday), "tz_offset": "0"}
    admin_client.post(f"{CHECKOUT}/ramp", data=data)
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 5, "OFF": 95}
    assert pending(app) == [(tomorrow, "rollout ON=25 OFF=75"), (friday, "rollout ON=100 OFF=0")]
    assert "a ramp of 3 steps saved" in flashes(admin_client.get(CHECKOUT).text)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ({"share-1": "5", "share-2": "150", "step-2-at": 24}, "is more than 100 percent"),
        (
            {"share-1": "5", "share-2": "25", "step-2-at": 48, "share-3": "5", "step-3-at": 9},
            "not after step",
        ),
        ({"share-1": "5", "share-2": "25"}, "Step 2 has no time"),
    ],
)
def test_a_ramp_with_one_bad_step_saves_nothing(app, admin_client, steps, message):
    data = {key: local(soon(hours=value)) if key.endswith("-at") else value for key, value in steps.items()}
    response = admin_client.post(f"{CHECKOUT}/ramp", data={"variant": "ON", "rest": "OFF", **data})
    assert response.status_code == 422
    assert message in response.text
    assert "NEW_CHECKOUT" not in snapshot(app).weights
    assert pending(app) == []


def test_the_upcoming_page_lists_every_flags_pending_changes_soonest_first(app, admin_client):
    admin_client.post(f"{CHECKOUT}/schedules", data={"action": "off", "at": local(soon(hours=5))})
    data = {"action": "force", "variant": "VARIANT_B", "at": local(soon(hours=2))}
    admin_client.post("/gatekeeper/flags/HOMEPAGE_EXPERIMENT/schedules", data=data)
    page = admin_client.get("/gatekeeper/schedules").text
    flags = re.findall(r'<td data-label="Flag"><a href="[^"]*">(\w+)</a>', page)
    assert flags == ["HOMEPAGE_EXPERIMENT", "NEW_CHECKOUT"]
    assert "2 pending changes." in page
    assert '<a href="/gatekeeper/schedules" aria-current="page">Upcoming</a>' in page


def test_cancelling_from_the_upcoming_page_comes_back_to_it(app, admin_client):
    admin_client.post(f"{CHECKOUT}/schedules", data={"action": "off", "at": local(soon(hours=5))})
    response = admin_client.post(f"{CHECKOUT}/schedules/1/cancel", data={"back": "upcoming"})
    assert response.headers["Location"].endswith("/gatekeeper/schedules")
    assert "Nothing is scheduled." in admin_client.get("/gatekeeper/schedules").text
    assert [entry.action for entry in audit_log(app)] == ["cancel_schedule", "schedule"]
