"""Tokens (gatekeeper_control/tokens.py): made with `flask gk tokens|keys` or on the dashboard, shown once,
stored hashed, listed with their last use, revoked at once."""

from __future__ import annotations

import re

from sqlalchemy import select

from {{ cookiecutter.package_name }}.gatekeeper_control import tokens
from {{ cookiecutter.package_name }}.gatekeeper_control.store import current_state, store
from {{ cookiecutter.package_name }}.gatekeeper_control.tables import TokenRow

RAW = re.compile(r"^gk_[A-Za-z0-9_-]{43}$", re.MULTILINE)


def test_a_token_made_on_the_command_line_is_printed_once_and_stored_hashed(app, runner):
    result = runner.invoke(
        args=["gk", "tokens", "create", "deploy", "--scope", "write", "--expires", "2099-12-31"]
    )
    assert result.exit_code == 0, result.output
    raw = RAW.search(result.stdout).group()
    with app.app_context():
        with current_state().engine.connect() as connection:
            stored = connection.execute(select(TokenRow.token_hash, TokenRow.prefix)).one()
        assert stored.token_hash == tokens.hash_token(raw) and raw not in stored
        assert tokens.authenticate(raw, ["read"]).name == "deploy"
        assert store.audit_entries().entries[0].action == "create_token"
    listed = runner.invoke(args=["gk", "tokens", "list"]).output
    assert "deploy  write" in listed and "last used" in listed and raw not in listed


def test_a_revoked_token_no_longer_authenticates(app, runner):
    raw = RAW.search(runner.invoke(args=["gk", "tokens", "create", "ci", "--scope", "read"]).stdout).group()
    assert runner.invoke(args=["gk", "tokens", "revoke", "ci"]).exit_code == 0
    with app.app_context():
        assert tokens.authenticate(raw, ["read"]) is None
        assert tokens.list_tokens()[0].state == "revoked"


def test_a_duplicate_name_a_bad_scope_and_a_past_date_are_refused(runner):
    runner.invoke(args=["gk", "tokens", "create", "ci", "--scope", "read"])
    duplicate = runner.invoke(args=["gk", "tokens", "create", "ci", "--scope", "read"])
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output
    past = runner.invoke(args=["gk", "tokens", "create", "old", "--scope", "read", "--expires", "2001-01-01"])
    assert past.exit_code == 1 and "in the past" in past.output
    assert runner.invoke(args=["gk", "tokens", "create", "x", "--scope", "admin"]).exit_code == 2


def test_client_keys_are_tokens_of_scope_evaluate(app, runner):
    raw = RAW.search(runner.invoke(args=["gk", "keys", "create", "web"]).stdout).group()
    with app.app_context():
        assert tokens.authenticate(raw, ["evaluate"]).scope == "evaluate"
        assert tokens.authenticate(raw, ["read"]) is None
    assert "web  evaluate" in runner.invoke(args=["gk", "keys", "list"]).output


def test_the_dashboard_makes_a_token_shows_it_once_and_revokes_it_with_confirmation(
    app, client, admin, login
):
    login(client, admin)
    made = client.post("/gatekeeper/tokens", data={"name": "deploy", "scope": "write"})
    raw = re.search(r'<code class="gk-token">(gk_[^<]+)</code>', made.get_data(as_text=True)).group(1)
    page = client.get("/gatekeeper/tokens").get_data(as_text=True)
    assert "deploy" in page and raw not in page and "Client keys (OFREP)" in page
    unconfirmed = client.post("/gatekeeper/tokens/deploy/revoke", data={}, follow_redirects=True)
    assert "Tick the box" in unconfirmed.get_data(as_text=True)
    with app.app_context():
        assert tokens.authenticate(raw, ["write"]) is not None
    client.post("/gatekeeper/tokens/deploy/revoke", data={"confirm": "yes"})
    with app.app_context():
        assert tokens.authenticate(raw, ["write"]) is None


def test_the_tokens_page_is_for_admins_only(client, user, login):
    login(client, user)
    assert client.get("/gatekeeper/tokens").status_code == 403
