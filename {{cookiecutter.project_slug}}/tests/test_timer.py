"""The timer and leases: due scheduled changes are made on time by a thread in each process, with no
traffic, exactly once however many processes run it; a lease lets one process at a time run a job."""

import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.gatekeeper_control import leases, timer
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import scheduler
from tests.store_helpers import another_process, audit_log, snapshot

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
WAIT = 15  # seconds a real timer thread gets to make a change due in one


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def timed_app(make_app):
    """An app whose timer is on (`GATEKEEPER_TIMER`) but not started: its jobs run when a test says so."""
    app = make_app(GATEKEEPER_TIMER=True)
    yield app
    timer.stop(app)


@pytest.fixture
def clock(timed_app):
    clock = Clock()
    timed_app.extensions["gatekeeper_store"].now = clock
    return clock


def schedule(app, when, action, *arguments, flag="NEW_CHECKOUT"):
    with app.app_context():
        return scheduler.schedule(flag, when, action, list(arguments), actor="ada@example.com")


def made_by_schedules(app, flag="NEW_CHECKOUT"):
    return [e for e in audit_log(app, flag) if e.actor.startswith("schedule #")]


def test_the_timer_job_makes_a_due_change_without_any_request(timed_app, clock):
    """With the timer on, reading the snapshot no longer makes due changes; the timer's job does."""
    schedule(timed_app, "+30m", "force", "ON")
    clock.now += timedelta(minutes=30)
    assert snapshot(timed_app).forced == {}
    timer.run_due(timed_app)
    assert snapshot(timed_app).forced == {"NEW_CHECKOUT": "ON"}
    assert [e.actor for e in made_by_schedules(timed_app)] == ["schedule #1 (set by ada@example.com)"]


def test_the_timer_job_leaves_changes_that_are_not_due(timed_app, clock):
    schedule(timed_app, "+2h", "off")
    clock.now += timedelta(hours=1)
    timer.run_due(timed_app)
    assert "NEW_CHECKOUT" not in snapshot(timed_app).disabled
    assert made_by_schedules(timed_app) == []


def test_two_apps_running_the_timer_job_at_once_make_each_change_once(timed_app, clock):
    """Two app instances on one database run the job at the same moment: each change is made and audited
    once (the lease lets one of them in, and each row is claimed by one transaction)."""
    for minutes in range(1, 6):
        schedule(timed_app, f"+{minutes}m", "rollout", f"ON={minutes * 10}", f"OFF={100 - minutes * 10}")
    other = another_process(timed_app)
    other.app.extensions["gatekeeper_store"].now = clock
    clock.now += timedelta(minutes=5)
    barrier = threading.Barrier(2)

    def run(app):
        barrier.wait()
        timer.run_due(app)

    threads = [threading.Thread(target=run, args=(app,)) for app in (timed_app, other.app)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    timer.run_due(other.app)  # whichever did not hold the lease finds nothing left to do
    actors = sorted(e.actor for e in made_by_schedules(timed_app))
    assert actors == [f"schedule #{n} (set by ada@example.com)" for n in range(1, 6)]
    assert dict(snapshot(timed_app).weights["NEW_CHECKOUT"]) == {"ON": 50, "OFF": 50}


def test_a_real_timer_thread_makes_a_due_change_with_no_request(timed_app):
    """The first request starts the timer; a change due a second later is made with no request after it."""
    timed_app.test_client().get("/")
    schedule(timed_app, "+1s", "force", "ON")
    deadline = time.monotonic() + WAIT
    while not made_by_schedules(timed_app) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [e.after for e in made_by_schedules(timed_app)] == ["ON"]


def test_once_the_timer_runs_later_requests_run_none_of_its_code(timed_app, monkeypatch):
    """The first request starts the thread and takes the timer's hook out of the app: a page pays nothing
    for the timer after that."""
    started = []
    start = timer.start
    monkeypatch.setattr(timer, "start", lambda app: (started.append(app), start(app)))
    client = timed_app.test_client()
    for _ in range(3):
        client.get("/")
    assert started == [timed_app]


def test_a_forked_child_starts_a_timer_of_its_own_on_its_first_request(timed_app):
    """gunicorn --preload: the parent's thread does not survive the fork; the child's first request starts
    one, which makes a change due a second later with no request after it."""
    timed_app.test_client().get("/")  # the parent's timer runs, and its hook has left the app
    timer.stop()  # no thread of the parent's may make the change instead of the child's
    engine = timed_app.extensions["gatekeeper_store"].engine
    leases.release(engine, "schedules", leases.process_holder())  # nor keep the child waiting 15 s for it
    pid = os.fork()
    if pid == 0:  # the child: its verdict is its exit code; never return into pytest
        code = 1
        try:
            schedule(timed_app, "+1s", "force", "ON")
            timed_app.test_client().get("/")
            deadline = time.monotonic() + WAIT
            while not made_by_schedules(timed_app) and time.monotonic() < deadline:
                time.sleep(0.1)
            code = 0 if made_by_schedules(timed_app) else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + WAIT + 30
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if ended[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert ended[0] == pid and os.waitstatus_to_exitcode(ended[1]) == 0


def test_an_app_made_for_tests_starts_no_timer_unless_it_asks_for_one(tmp_path):
    """`create_app({"TESTING": True, ...})` leaves the timer off (its jobs run with `run_due`); an app
    that sets GATEKEEPER_TIMER itself gets what it set."""
    url = f"sqlite:///{tmp_path / 'timer.db'}"
    assert not timer.enabled(create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url}))
    asked = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "GATEKEEPER_TIMER": True})
    assert timer.enabled(asked)


def test_a_failing_job_is_logged_and_runs_again(timed_app, caplog):
    calls = []

    def job():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    timer.every("test-failing-job", 0.05, job)
    try:
        timer.start(timed_app)
        deadline = time.monotonic() + WAIT
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        timer.remove("test-failing-job")
    assert len(calls) >= 2
    assert "gatekeeper timer job test-failing-job failed" in caplog.text


@pytest.fixture
def engine(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    yield engine
    engine.dispose()


def test_a_lease_has_one_holder_until_it_is_released(engine):
    assert leases.try_acquire(engine, "job", "a", 30)
    assert not leases.try_acquire(engine, "job", "b", 30)
    assert leases.try_acquire(engine, "job", "a", 30)  # its own: renewed
    leases.release(engine, "job", "b")  # not b's to release
    assert not leases.try_acquire(engine, "job", "b", 30)
    leases.release(engine, "job", "a")
    assert leases.try_acquire(engine, "job", "b", 30)


def test_a_lease_its_holder_stopped_renewing_goes_to_another(engine):
    assert leases.try_acquire(engine, "job", "a", 0.05)
    time.sleep(0.1)
    assert leases.try_acquire(engine, "job", "b", 30)
    assert not leases.try_acquire(engine, "job", "a", 30)


def test_holders_racing_for_a_free_lease_give_one_winner(app):
    holders = [f"holder-{n}" for n in range(6)]
    engines = [create_engine(app.config["SQLALCHEMY_DATABASE_URI"]) for _ in holders]
    barrier = threading.Barrier(len(holders))
    won = []

    def race(engine, holder):
        barrier.wait()
        if leases.try_acquire(engine, "race", holder, 30):
            won.append(holder)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(engines, holders, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert len(won) == 1


def _child_holder(pipe) -> None:
    pipe.send(leases.process_holder())


def test_a_forked_process_holds_leases_under_a_name_of_its_own():
    parent = leases.process_holder()
    assert leases.process_holder() == parent
    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child_holder, args=(send,))
    child.start()
    child.join(timeout=30)
    assert receive.recv() != parent
