"""The override store: writes, audit entries, the in-process snapshot, staleness and database outages."""

import threading

import pytest
from flask import request
from sqlalchemy import inspect, text

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.errors import (
    StoreError,
    StoreUnavailableError,
    UnknownFlagError,
    UnknownUserError,
    UnknownVariantError,
)
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.store_helpers import (
    STORE_TABLES,
    FakeClock,
    another_process,
    count_queries,
    drop_store_tables,
    write_stale_overrides,
)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def audit_log(flag=None):
    return store.audit_entries(page=1, per_page=100, flag=flag).entries


def variant_for(user_id, flag="MY_NEW_FEATURE"):
    evaluation = Gatekeeper(user_id=user_id).explain(flag)
    return evaluation.variant, evaluation.reason


# --- Tables -------------------------------------------------------------------------------------------------


def test_init_db_creates_the_store_tables(app, ctx):
    """The app's normal database set-up creates every gatekeeper table."""
    assert set(STORE_TABLES) <= set(inspect(db.engine).get_table_names())


def test_create_tables_twice_keeps_the_data(app, ctx):
    """Running the set-up again (a second `flask init-db`) loses no override."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    store.create_tables()
    assert store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_create_tables_in_an_alembic_database_without_them_says_to_migrate_and_creates_nothing(app, ctx):
    """In a database Alembic manages, creating gatekeeper's tables outside a migration would leave
    `flask db migrate` nothing to write: create_tables() refuses, names the tables and the recipe."""
    drop_store_tables(app)
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32))"))
    with pytest.raises(StoreError) as refused:
        store.create_tables()
    assert "managed by Alembic" in str(refused.value) and "gatekeeper_forced_variants" in str(refused.value)
    assert "gatekeeper_control.metadata" in str(refused.value) and "flask db upgrade" in str(refused.value)
    assert not set(STORE_TABLES) & set(inspect(db.engine).get_table_names())


# --- Forced variants ----------------------------------------------------------------------------------------


def test_a_fresh_store_has_no_overrides(app, ctx):
    """Before any change the snapshot is empty and the store is available."""
    snapshot = store.snapshot()
    assert snapshot.forced == {}
    assert snapshot.user_overrides == {}
    assert store.available


def test_forcing_a_variant_is_visible_at_once(app, ctx):
    """A write in this process is in the very next snapshot, without waiting for the TTL."""
    store.snapshot()
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_a_forced_variant_reaches_every_user(app, ctx):
    """The engine serves the forced variant to everyone, with the reason `forced`."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert variant_for(999) == ("VISIBLE", "forced")
    assert variant_for(None) == ("VISIBLE", "forced")


def test_unforce_gives_users_their_own_variant_again(app, ctx):
    """After unforce the rule decides again."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    store.unforce("MY_NEW_FEATURE", actor="test")
    assert store.snapshot().forced == {}
    assert variant_for(999) == ("NOT_VISIBLE", "rule")


def test_force_rejects_an_unknown_flag_and_writes_nothing(app, ctx):
    """A misspelt flag is refused with a suggestion; no override and no audit entry is written."""
    with pytest.raises(UnknownFlagError, match="Did you mean MY_NEW_FEATURE"):
        store.force("MY_NEW_FEATUR", "VISIBLE", actor="test")
    assert store.snapshot(max_age=0).forced == {}
    assert audit_log() == []


def test_force_rejects_an_unknown_variant_and_writes_nothing(app, ctx):
    """A variant the flag does not have is refused, naming the ones it has."""
    with pytest.raises(UnknownVariantError, match="use one of VISIBLE, NOT_VISIBLE"):
        store.force("MY_NEW_FEATURE", "ON", actor="test")
    assert store.snapshot(max_age=0).forced == {}
    assert audit_log() == []


def test_forcing_the_same_variant_again_changes_nothing(app, ctx):
    """A repeated force returns None and adds no audit entry."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert store.force("MY_NEW_FEATURE", "VISIBLE", actor="test") is None
    assert len(audit_log()) == 1


def test_unforcing_a_flag_that_is_not_forced_changes_nothing(app, ctx):
    """Unforce without a forced variant returns None and adds no audit entry."""
    assert store.unforce("MY_NEW_FEATURE", actor="test") is None
    assert audit_log() == []


# --- User overrides -----------------------------------------------------------------------------------------


def test_a_user_override_by_email_is_stored_under_the_user_id(app, ctx, user):
    """An admin types an email; the override is keyed by the id the engine matches on."""
    store.set_user_override("MY_NEW_FEATURE", user.email, "VISIBLE", actor="test")
    snapshot = store.snapshot()
    assert snapshot.user_overrides == {"MY_NEW_FEATURE": {str(user.id): "VISIBLE"}}
    assert snapshot.user_labels[str(user.id)] == user.email


def test_a_user_override_by_id_reaches_that_user_only(app, ctx, user):
    """The overridden user gets the variant with reason `user_override`; others keep the rule."""
    store.set_user_override("MY_NEW_FEATURE", str(user.id), "NOT_VISIBLE", actor="test")
    assert variant_for(user.id) == ("NOT_VISIBLE", "user_override")
    assert variant_for(999) == ("NOT_VISIBLE", "rule")


def test_an_unknown_user_is_refused_and_nothing_is_written(app, ctx):
    """No user with that email: a clear error, no override, no audit entry."""
    with pytest.raises(UnknownUserError, match=r"No user matches 'nobody@example\.com'"):
        store.set_user_override("MY_NEW_FEATURE", "nobody@example.com", "VISIBLE", actor="test")
    assert store.snapshot(max_age=0).user_overrides == {}
    assert audit_log() == []


def test_a_blank_user_is_refused(app, ctx):
    """An empty user field is an unknown user, not an override for the empty string."""
    with pytest.raises(UnknownUserError):
        store.set_user_override("MY_NEW_FEATURE", "   ", "VISIBLE", actor="test")


def test_a_user_override_for_an_unknown_variant_is_refused(app, ctx, user):
    """The variant is checked before anything is written."""
    with pytest.raises(UnknownVariantError):
        store.set_user_override("MY_NEW_FEATURE", user.email, "MAYBE", actor="test")
    assert audit_log() == []


def test_clearing_a_user_override_removes_it(app, ctx, user):
    """After clearing, the user gets the rule's variant again."""
    store.set_user_override("MY_NEW_FEATURE", user.email, "NOT_VISIBLE", actor="test")
    store.clear_user_override("MY_NEW_FEATURE", str(user.id), actor="test")
    assert store.snapshot().user_overrides == {}
    assert variant_for(user.id)[1] == "rule"


def test_clearing_a_missing_user_override_changes_nothing(app, ctx):
    """Clearing an override that does not exist returns None and adds no audit entry."""
    assert store.clear_user_override("MY_NEW_FEATURE", "12345", actor="test") is None
    assert audit_log() == []


# --- Audit log ----------------------------------------------------------------------------------------------


def test_every_change_writes_one_audit_entry(app, ctx, user):
    """force, unforce, set and clear each record who, which flag, what, before and after."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="ada@example.com")
    store.force("MY_NEW_FEATURE", "NOT_VISIBLE", actor="ada@example.com")
    store.unforce("MY_NEW_FEATURE", actor="cli")
    store.set_user_override("MY_NEW_FEATURE", user.email, "VISIBLE", actor="bob@example.com")
    store.clear_user_override("MY_NEW_FEATURE", str(user.id), actor="bob@example.com")
    rows = [(e.actor, e.flag, e.action, e.target, e.before, e.after) for e in reversed(audit_log())]
    assert rows == [
        ("ada@example.com", "MY_NEW_FEATURE", "force", "everyone", None, "VISIBLE"),
        ("ada@example.com", "MY_NEW_FEATURE", "force", "everyone", "VISIBLE", "NOT_VISIBLE"),
        ("cli", "MY_NEW_FEATURE", "unforce", "everyone", "NOT_VISIBLE", None),
        ("bob@example.com", "MY_NEW_FEATURE", "user_override", user.email, None, "VISIBLE"),
        ("bob@example.com", "MY_NEW_FEATURE", "clear_user_override", user.email, "VISIBLE", None),
    ]


def test_audit_times_are_in_utc(app, ctx):
    """Entries carry an aware UTC time, whatever the database does with time zones."""
    entry = store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert entry.at.utcoffset().total_seconds() == 0
    assert audit_log()[0].at.utcoffset().total_seconds() == 0


def test_the_audit_log_is_newest_first_and_paginated(app, ctx):
    """Pages hold `per_page` entries, the newest on page one."""
    for _ in range(3):
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
        store.unforce("MY_NEW_FEATURE", actor="test")
    first = store.audit_entries(page=1, per_page=4)
    second = store.audit_entries(page=2, per_page=4)
    assert (first.total, first.pages, len(first.entries), len(second.entries)) == (6, 2, 4, 2)
    assert first.entries[0].action == "unforce"
    assert second.entries[-1].action == "force"
    ids = [entry.id for entry in first.entries + second.entries]
    assert ids == sorted(ids, reverse=True)


def test_a_page_past_the_end_gives_the_last_page(app, ctx):
    """An old link to page 9 of a log that now has one page shows that page."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    page = store.audit_entries(page=9, per_page=10)
    assert (page.page, len(page.entries)) == (1, 1)


def test_the_audit_log_can_be_read_for_one_flag(app, ctx):
    """`flag=` keeps only that flag's entries."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    store.force("HOMEPAGE_EXPERIMENT", "CONTROL", actor="test")
    assert [entry.flag for entry in audit_log(flag="HOMEPAGE_EXPERIMENT")] == ["HOMEPAGE_EXPERIMENT"]


def test_last_changes_gives_the_newest_entry_per_flag(app, ctx):
    """The flag list's "last change" column: one entry per flag, the newest."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="first")
    store.unforce("MY_NEW_FEATURE", actor="second")
    store.force("HOMEPAGE_EXPERIMENT", "CONTROL", actor="third")
    changes = store.last_changes()
    assert {flag: entry.actor for flag, entry in changes.items()} == {
        "MY_NEW_FEATURE": "second",
        "HOMEPAGE_EXPERIMENT": "third",
    }


# --- Stale overrides ----------------------------------------------------------------------------------------


def test_overrides_for_removed_flags_and_variants_are_reported_stale(app, ctx):
    """Overrides an older deploy left behind are listed with the reason they no longer apply."""
    write_stale_overrides(app)
    stale = store.stale_overrides(store.snapshot(max_age=0))
    assert [(s.flag, s.variant, s.user_id) for s in stale] == [
        ("REMOVED_FLAG", "ON", None),
        ("MY_NEW_FEATURE", "RETIRED", "8"),
        ("REMOVED_FLAG", "ON", "7"),
    ]
    assert "no longer in the code" in stale[0].reason
    assert "RETIRED is no longer one of VISIBLE, NOT_VISIBLE" in stale[1].reason


def test_the_engine_ignores_stale_overrides(app, ctx):
    """A stored variant that no longer exists falls through to the rule, never an error."""
    write_stale_overrides(app)
    store.snapshot(max_age=0)
    assert variant_for(8) == ("NOT_VISIBLE", "rule")


def test_stale_overrides_can_be_cleared(app, ctx):
    """Unforce and clear work on flags the code no longer has, so stale rows can be tidied up."""
    write_stale_overrides(app)
    store.unforce("REMOVED_FLAG", actor="test")
    store.clear_user_override("REMOVED_FLAG", "7", actor="test")
    store.clear_user_override("MY_NEW_FEATURE", "8", actor="test")
    assert store.stale_overrides() == []


# --- The snapshot: no database on the hot path, bounded staleness -------------------------------------------


def test_a_fresh_snapshot_does_not_touch_the_database(app, ctx):
    """Within the TTL, asking for the snapshot a thousand times runs no SQL."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    with count_queries(app) as statements:
        for _ in range(1000):
            store.snapshot()
    assert statements == []


def test_flag_checks_do_not_query_the_database(app, user):
    """Hundreds of flag checks, for many users and in a request, run no SQL once the snapshot is loaded."""
    with app.app_context():
        store.set_user_override("MY_NEW_FEATURE", user.email, "VISIBLE", actor="test")
        store.force("HOMEPAGE_EXPERIMENT", "VARIANT_A", actor="test")
    with app.test_request_context("/"), count_queries(app) as statements:
        app.preprocess_request()
        for _ in range(100):
            request.gk.ff("MY_NEW_FEATURE", "VISIBLE")
            request.gk.ff("HOMEPAGE_EXPERIMENT", "CONTROL")
        for user_id in range(500):
            Gatekeeper(user_id=user_id).explain("MY_NEW_FEATURE")
    assert statements == []


def test_another_process_sees_a_change_only_after_the_ttl(app):
    """A second worker keeps its snapshot until GATEKEEPER_STORE_TTL passes, then picks the change up."""
    clock = FakeClock()
    other = another_process(app, clock=clock, ttl=5)
    with other.app.app_context():
        assert other.store.snapshot().forced == {}
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    with other.app.app_context():
        clock.advance(4.9)
        assert other.store.snapshot().forced == {}
        clock.advance(0.2)
        assert other.store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_an_expired_snapshot_costs_one_query_when_nothing_changed(app):
    """After the TTL, an unchanged version counter means one small query and no reload."""
    clock = FakeClock()
    other = another_process(app, clock=clock, ttl=5)
    with other.app.app_context():
        before = other.store.snapshot()
        clock.advance(10)
        with count_queries(other.engine) as statements:
            after = other.store.snapshot()
    assert len(statements) == 1
    assert after is before


def test_max_age_zero_checks_the_database_now(app):
    """The dashboard asks for `max_age=0` so admins see other processes' changes straight away."""
    other = another_process(app, clock=FakeClock(), ttl=3600)
    with other.app.app_context():
        other.store.snapshot()
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    with other.app.app_context():
        assert other.store.snapshot().forced == {}
        assert other.store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_snapshots_are_immutable(app, ctx):
    """Nobody can change the overrides the engine reads by mutating a snapshot."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    snapshot = store.snapshot()
    with pytest.raises(TypeError):
        snapshot.forced["MY_NEW_FEATURE"] = "NOT_VISIBLE"


def test_concurrent_readers_and_writers_agree_on_the_final_state(app, user):
    """Threads reading the snapshot while others write never fail, and all writes end up visible."""
    errors = []

    def read():
        with app.app_context():
            for _ in range(200):
                try:
                    store.snapshot(max_age=0)
                except Exception as exc:  # any exception fails the test below
                    errors.append(exc)

    def write(flag, variant):
        with app.app_context():
            store.force(flag, variant, actor="thread")

    threads = [threading.Thread(target=read) for _ in range(4)]
    threads += [
        threading.Thread(target=write, args=("MY_NEW_FEATURE", "VISIBLE")),
        threading.Thread(target=write, args=("HOMEPAGE_EXPERIMENT", "VARIANT_B")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        assert store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE", "HOMEPAGE_EXPERIMENT": "VARIANT_B"}


# --- Database outages ---------------------------------------------------------------------------------------


def test_an_outage_keeps_the_last_snapshot_serving(app, ctx):
    """With the tables gone, flags keep the overrides last loaded and the store says why."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    drop_store_tables(app)
    assert store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}
    assert not store.available
    assert "gatekeeper_version" in store.error  # the database's own words: "no such table: ..." or similar
    assert variant_for(999) == ("VISIBLE", "forced")


def test_writes_during_an_outage_raise_a_clear_error(app, ctx):
    """A change that cannot be saved says so; the snapshot keeps what it had."""
    store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    drop_store_tables(app)
    with pytest.raises(StoreUnavailableError, match="nothing was changed"):
        store.unforce("MY_NEW_FEATURE", actor="test")
    assert store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_reading_the_audit_log_during_an_outage_raises_a_clear_error(app, ctx):
    """The audit log cannot be served from memory; the error names the problem."""
    drop_store_tables(app)
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        store.audit_entries()


def test_the_store_recovers_when_the_database_is_back(app, ctx):
    """Once the tables exist again, the next check marks the store available."""
    drop_store_tables(app)
    store.snapshot(max_age=0)
    store.create_tables()
    store.snapshot(max_age=0)
    assert store.available
    assert store.error is None


def test_a_database_that_never_answered_gives_an_empty_snapshot(app, tmp_path):
    """A process whose database cannot be opened still evaluates flags from the code rules."""
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'app.db'}"
    other = another_process(app, database_url=url)
    with other.app.app_context():
        assert other.store.snapshot().forced == {}
        assert not other.store.available
        assert Gatekeeper(user_id=999).explain("MY_NEW_FEATURE").reason == "rule"


def test_an_outage_is_checked_again_only_after_the_ttl(app):
    """A broken database is not hammered: within the TTL the failed check is not repeated."""
    clock = FakeClock()
    other = another_process(app, clock=clock, ttl=5)
    drop_store_tables(app)
    with other.app.app_context():
        other.store.snapshot()
        with count_queries(other.engine) as statements:
            other.store.snapshot()
            clock.advance(6)
            other.store.snapshot()
        assert not other.store.available
    assert len(statements) == 1
