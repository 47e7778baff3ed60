"""Export and import (gatekeeper_control/transfer.py): `flask gk export` from one app and `flask gk import`
into another give the same answers for every user; a dry run changes nothing; a file of another version is
refused whole; what the app does not know is reported and the rest applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control import tokens
from {{ cookiecutter.package_name }}.gatekeeper_control.segments import segments
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from {{ cookiecutter.package_name }}.gatekeeper_control.targeting import targeting
from {{ cookiecutter.package_name }}.gatekeeper_control.transfer import VERSION, apply_state, export_state
from {{ cookiecutter.package_name }}.gatekeeper_control.values import values
from {{ cookiecutter.package_name }}.models import User

USERS = 1000
API = "/gatekeeper/api/v1"


def add_users(app: Flask, count: int = USERS) -> None:
    """`count` users, ids 1..count, in one insert (with a hash no test logs in with)."""
    with app.app_context():
        db.session.add_all(
            User(id=i, email=f"user{i}@{'corp.test' if i % 7 == 0 else 'example.com'}", password_hash="x")
            for i in range(1, count + 1)
        )
        db.session.commit()


def bake_state(app: Flask) -> None:
    """Some of every kind of runtime state, as admins would leave it on staging."""
    with app.app_context():
        targeting.set_weights("NEW_CHECKOUT", {"ON": "30", "OFF": "70"}, "staging")
        store.switch_off("MY_NEW_FEATURE", "staging")
        targeting.create_group("beta", "Early birds", "staging")
        targeting.add_members("beta", [str(i) for i in range(1, 101)], "staging")
        targeting.target("HOMEPAGE_EXPERIMENT", "beta", "VARIANT_A", "staging")
        segments.create("corp", "Company emails", "staging")
        segments.add_condition("corp", "email", "ends_with", "@corp.test", "staging")
        targeting.target("HOMEPAGE_EXPERIMENT", "corp", "VARIANT_B=50 CONTROL=50", "staging")
        for i in range(200, 250):
            store.set_user_override("NEW_CHECKOUT", str(i), "ON", "staging")
        values.set_value("WELCOME_MESSAGE", "SALE", '"Half price today"', "staging")


def answers(app: Flask) -> dict[tuple[str, int], tuple[str, object]]:
    """Every flag's variant and value for every user."""
    with app.app_context():
        store.snapshot(max_age=0)
        seen = {}
        for i in range(1, USERS + 1):
            gk = Gatekeeper(user_id=i)
            for flag in gk.get_config_map():
                seen[(flag, i)] = (gk.ff_variant(flag), gk.value(flag, None))
        return seen


def audit_total(app: Flask) -> int:
    with app.app_context():
        return store.audit_entries().total


@pytest.fixture(scope="module")
def staging(module_app: Flask) -> Flask:
    """Staging: 1,000 users and some of every kind of state (one app for the module: tests only read it)."""
    add_users(module_app)
    bake_state(module_app)
    return module_app


@pytest.fixture(scope="module")
def staging_answers(staging: Flask) -> dict[tuple[str, int], tuple[str, object]]:
    return answers(staging)


@pytest.fixture(scope="module")
def state_file(staging: Flask, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`flask gk export > state.json` on staging."""
    result = staging.test_cli_runner().invoke(args=["gk", "export"])
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("export") / "state.json"
    path.write_text(result.stdout)
    return path


def test_an_export_imported_into_a_fresh_app_answers_alike_for_every_user(
    make_app, state_file, staging_answers
):
    """Production, given staging's export, gives each of 1,000 users the variant and value staging does."""
    production = make_app()
    add_users(production)
    assert answers(production) != staging_answers
    result = production.test_cli_runner().invoke(args=["gk", "import", str(state_file)])
    assert result.exit_code == 0, result.output
    assert answers(production) == staging_answers
    with production.app_context():
        assert {entry.actor for entry in store.audit_entries(per_page=500).entries} == {"cli"}


def test_a_dry_run_prints_the_changes_per_flag_and_changes_nothing(make_app, state_file):
    path = state_file
    production = make_app()
    add_users(production, 300)
    with production.app_context():
        version = store.snapshot(max_age=0).version
    result = production.test_cli_runner().invoke(args=["gk", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    expected = "NEW_CHECKOUT:\n  NEW_CHECKOUT: rolls out ON=30 OFF=70 now (was in code: ON=10 OFF=90)."
    assert expected in result.output
    assert "(dry run: nothing was written)" in result.output
    assert audit_total(production) == 0
    with production.app_context():
        assert store.snapshot(max_age=0).version == version
        assert not store.snapshot().weights


def test_importing_the_same_file_twice_changes_nothing_the_second_time(make_app, state_file):
    path = state_file
    production = make_app()
    add_users(production, 300)
    runner = production.test_cli_runner()
    runner.invoke(args=["gk", "import", str(path)])
    again = runner.invoke(args=["gk", "import", str(path)])
    assert "0 changes changed." in again.output


def test_a_file_of_another_version_is_refused_whole(make_app, tmp_path):
    app = make_app()
    with app.app_context():
        document = export_state()
    document["version"] = VERSION + 1
    path = tmp_path / "future.json"
    path.write_text(json.dumps(document))
    result = app.test_cli_runner().invoke(args=["gk", "import", str(path)])
    assert result.exit_code == 1
    assert f"version {VERSION + 1}" in result.output and f"reads version {VERSION}" in result.output


def test_unknown_flags_and_users_are_reported_and_the_rest_applied(make_app):
    app = make_app()
    add_users(app, 5)
    document = {
        "format": "gatekeeper-state",
        "version": VERSION,
        "flags": {
            "GONE_FLAG": {"off": True},
            "NEW_CHECKOUT": {
                "forced": "ON",
                "overrides": [
                    {"user_id": "2", "label": "user2@example.com", "variant": "OFF"},
                    {"user_id": "999", "label": "stranger@example.com", "variant": "OFF"},
                ],
            },
        },
    }
    with app.app_context():
        report = apply_state(document, "test")
        snapshot = store.snapshot(max_age=0)
    assert report.skipped == [
        "flag GONE_FLAG: not in this app's code",
        "user stranger@example.com (NEW_CHECKOUT): unknown",
    ]
    assert snapshot.forced == {"NEW_CHECKOUT": "ON"}
    assert snapshot.user_overrides == {"NEW_CHECKOUT": {"2": "OFF"}}


def test_an_import_that_fails_part_way_writes_nothing(make_app):
    """One transaction: a flag whose forced variant does not exist stops the whole import, including the
    changes to flags before it."""
    app = make_app()
    document = {
        "format": "gatekeeper-state",
        "version": VERSION,
        "flags": {"MY_NEW_FEATURE": {"off": True}, "NEW_CHECKOUT": {"forced": "MAYBE"}},
    }
    with app.app_context():
        with pytest.raises(Exception, match="MAYBE"):
            apply_state(document, "test")
        assert store.snapshot(max_age=0).disabled == frozenset()
    assert audit_total(app) == 0


def test_export_and_import_through_the_api(make_app, staging, staging_answers):
    production = make_app()
    add_users(production)
    with staging.app_context():
        read = tokens.create_token("backup", "read", actor="test")[1]
    with production.app_context():
        write = tokens.create_token("deploy", "write", actor="test")[1]
    exported = (
        staging.test_client().get(f"{API}/export", headers={"Authorization": f"Bearer {read}"}).get_json()
    )
    client, headers = production.test_client(), {"Authorization": f"Bearer {write}"}
    dry = client.post(f"{API}/import?dry_run=true", json=exported, headers=headers).get_json()
    assert dry["dry_run"] is True and dry["applied"] == 0 and dry["changes"]
    done = client.post(f"{API}/import", json=exported, headers=headers).get_json()
    assert done["applied"] == len(dry["changes"])
    assert answers(production) == staging_answers
    exported["version"] = 99
    refused = client.post(f"{API}/import", json=exported, headers=headers)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
