"""Scheduled changes: made at their time by whichever process notices first, exactly once, audited once."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import scheduler
from tests.store_helpers import OLD_CONFIG_MAP, another_process, audit_log, snapshot, wait_for_refresh

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class Clock:
    """The wall clock a store uses for scheduled changes, moved by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def use_clock(app, clock):
    """Give `app`'s store (the AppStore that `store.init_app` returned) the hand-moved wall clock."""
    app.extensions["gatekeeper_store"].now = clock


@pytest.fixture
def clock(app):
    clock = Clock()
    use_clock(app, clock)
    return clock


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def variant(app, flag, user_id=42):
    """What `user_id` gets, outside a request: the snapshot is brought up to date in this thread first."""
    with app.app_context():
        return Gatekeeper(user_id=user_id).ff_variant(flag)


def test_a_scheduled_change_waits_for_its_time(app, runner, clock):
    """`flask gk schedule FLAG +2h force ON` is listed as pending and changes nothing yet."""
    result = gk(runner, "schedule", "NEW_CHECKOUT", "+2h", "force", "ON")
    assert result.exit_code == 0, result.output
    assert "NEW_CHECKOUT: force ON scheduled #1 at 2030-01-07 11:00:00 UTC." in result.output
    listed = gk(runner, "schedule", "list").output
    assert "#1  2030-01-07 11:00:00 UTC  NEW_CHECKOUT  force ON  pending  by cli" in listed
    clock.now += timedelta(hours=1, minutes=59)
    assert snapshot(app).forced == {}


def test_a_due_change_is_made_on_the_next_flag_check_and_audited_as_the_schedule(app, client, runner, clock):
    """Once due, the next request's snapshot read makes it, off the request path (no cron, no worker), and
    the requests after it serve it; audited as the schedule."""
    gk(runner, "schedule", "NEW_CHECKOUT", "+30m", "force", "ON")
    clock.now += timedelta(minutes=30)
    client.get("/")
    wait_for_refresh(app)
    assert 'data-flag="NEW_CHECKOUT" data-variant="ON"' in client.get("/").text
    entry = audit_log(app, "NEW_CHECKOUT")[0]
    assert (entry.actor, entry.action, entry.after) == ("schedule #1 (set by cli)", "force", "ON")
    assert "applied" in gk(runner, "schedule", "list").output


def test_the_snapshot_carries_the_next_due_time(app, runner, clock):
    """Every process learns when to look again from the snapshot, so no process polls the schedule table."""
    gk(runner, "schedule", "NEW_CHECKOUT", "+1d", "unforce")
    gk(runner, "schedule", "NEW_CHECKOUT", "2030-01-07T12:00:00+00:00", "force", "ON")
    assert snapshot(app).next_due == datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


def test_a_ramp_is_a_few_scheduled_changes(app, runner, clock):
    """5% now, 25% tomorrow, 100% the day after: each rollout step lands at its time, in order."""
    gk(runner, "rollout", "NEW_CHECKOUT", "ON=5", "OFF=95")
    gk(runner, "schedule", "NEW_CHECKOUT", "+1d", "rollout", "ON=25", "OFF=75")
    gk(runner, "schedule", "NEW_CHECKOUT", "+2d", "rollout", "ON=100", "OFF=0")
    clock.now += timedelta(days=1)
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 25, "OFF": 75}
    clock.now += timedelta(days=1)
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 100, "OFF": 0}
    assert variant(app, "NEW_CHECKOUT") == "ON"


def test_group_targets_can_be_scheduled(app, runner, clock, make_user):
    """`schedule FLAG WHEN target GROUP VARIANT` and `untarget GROUP` are changes like any other."""
    make_user("ann@example.com", user_id=7)
    gk(runner, "group", "create", "beta")
    gk(runner, "group", "add", "beta", "7")
    gk(runner, "schedule", "NEW_CHECKOUT", "+1h", "target", "beta", "ON")
    gk(runner, "schedule", "NEW_CHECKOUT", "+2h", "untarget", "beta")
    clock.now += timedelta(hours=1)
    assert variant(app, "NEW_CHECKOUT", 7) == "ON"
    clock.now += timedelta(hours=1)
    assert snapshot(app).group_targets == {}


def test_a_cancelled_change_is_never_made(app, runner, clock):
    """`schedule cancel ID` stops a pending change; it is audited, and the due time passes without effect."""
    gk(runner, "schedule", "NEW_CHECKOUT", "+1h", "force", "ON")
    result = gk(runner, "schedule", "cancel", "1")
    assert "scheduled change #1 (force ON) cancelled" in result.output
    clock.now += timedelta(hours=2)
    assert snapshot(app).forced == {}
    assert "cancelled" in gk(runner, "schedule", "list").output
    assert "not pending" in gk(runner, "schedule", "cancel", "1").output


def test_two_processes_noticing_a_due_change_make_it_once(app, runner, clock):
    """Two apps on one SQLite file both pass the due time: the change is made and audited exactly once."""
    gk(runner, "schedule", "NEW_CHECKOUT", "+1h", "force", "ON")
    other = another_process(app)
    use_clock(other.app, clock)
    with other.app.app_context():
        other.store.snapshot(max_age=0)
    clock.now += timedelta(hours=1)
    with other.app.app_context():
        assert other.store.snapshot().forced == {"NEW_CHECKOUT": "ON"}
    assert snapshot(app).forced == {"NEW_CHECKOUT": "ON"}
    assert [e.action for e in audit_log(app, "NEW_CHECKOUT")] == ["force", "schedule"]


def test_processes_racing_for_due_changes_make_each_exactly_once(app, runner, clock):
    """Four processes refresh at the same moment on the same SQLite file: every change lands once."""
    for minutes in range(1, 6):
        on = minutes * 10
        gk(runner, "schedule", "NEW_CHECKOUT", f"+{minutes}m", "rollout", f"ON={on}", f"OFF={100 - on}")
    processes = [another_process(app) for _ in range(4)]
    for process in processes:
        use_clock(process.app, clock)
        with process.app.app_context():
            process.store.snapshot(max_age=0)
    clock.now += timedelta(minutes=5)
    barrier = threading.Barrier(len(processes))

    def refresh(process):
        with process.app.app_context():
            barrier.wait()
            process.store.snapshot(max_age=0)

    threads = [threading.Thread(target=refresh, args=(process,)) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    applied = [e for e in audit_log(app, "NEW_CHECKOUT") if e.action == "rollout"]
    assert sorted(e.actor for e in applied) == [f"schedule #{n} (set by cli)" for n in range(1, 6)]
    assert dict(snapshot(app).weights["NEW_CHECKOUT"]) == {"ON": 50, "OFF": 50}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["+2x", "force", "ON"], "'+2x' is not a time"),
        (["2020-01-01T00:00:00Z", "force", "ON"], "is in the past"),
        (["+1h", "explode"], "'explode' is not an action"),
        (["+1h", "force", "MAYBE"], "NEW_CHECKOUT has no variant 'MAYBE'"),
        (["+1h", "force"], "Write it as `force VARIANT`"),
        (["+1h", "rollout", "ON=50", "OFF=60"], "add up to 110, not 100"),
        (["+1h", "target", "nope", "ON"], "No group or segment 'nope'"),
    ],
)
def test_a_bad_schedule_is_refused_and_nothing_is_written(app, runner, clock, args, message):
    """Times and actions are checked when scheduled, with a message; nothing is stored or audited."""
    result = gk(runner, "schedule", "NEW_CHECKOUT", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert audit_log(app) == []
    assert "Nothing scheduled." in gk(runner, "schedule", "list").output


def test_a_change_that_no_longer_fits_is_marked_failed_and_audited(app, runner, clock):
    """A change an older deploy scheduled for a variant this code dropped: not made, and the log says so."""
    old = another_process(app, config_map=OLD_CONFIG_MAP)
    use_clock(old.app, clock)
    with old.app.app_context():
        scheduler.schedule("MY_NEW_FEATURE", "+1h", "force", ["RETIRED"], actor="ann@example.com")
    clock.now += timedelta(hours=1)
    assert snapshot(app).forced == {}
    entry = audit_log(app, "MY_NEW_FEATURE")[0]
    assert (entry.actor, entry.action) == ("schedule #1 (set by ann@example.com)", "schedule_failed")
    assert "failed" in gk(runner, "schedule", "list").output
