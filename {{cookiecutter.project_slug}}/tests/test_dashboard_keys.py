"""The dashboard's client keys page (OFREP's keys), through the test client: made, shown once, listed by
name and first characters only, revoked at once; admins only."""

from __future__ import annotations

import re

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control import tokens

BULK = "/ofrep/v1/evaluate/flags"
CONTEXT = {"context": {"targetingKey": "7"}}


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def shown_key(page: str) -> str:
    match = re.search(r'id="gk-new-key".*?<code>([^<]+)</code>', page, re.S)
    assert match, "the page shows the new key"
    return match.group(1)


def test_a_key_made_on_the_dashboard_is_shown_once_and_works(app, admin_client):
    made = admin_client.post("/gatekeeper/keys", data={"name": "mobile-app"}).get_data(as_text=True)
    key = shown_key(made)
    assert app.test_client().post(BULK, json=CONTEXT, headers={"X-API-Key": key}).status_code == 200
    listed = admin_client.get("/gatekeeper/keys").get_data(as_text=True)
    assert "mobile-app" in listed and key[:8] in listed and key not in listed
    with app.app_context():
        assert [info.created_by for info in tokens.list_tokens()] == ["admin@example.com"]


def test_a_key_revoked_on_the_dashboard_is_refused_at_once(app, admin_client):
    key = shown_key(admin_client.post("/gatekeeper/keys", data={"name": "old-app"}).get_data(as_text=True))
    answer = admin_client.post("/gatekeeper/keys/old-app/revoke", follow_redirects=True)
    assert "Revoked old-app" in answer.get_data(as_text=True)
    assert app.test_client().post(BULK, json=CONTEXT, headers={"X-API-Key": key}).status_code == 401


def test_a_bad_or_taken_name_says_why_and_makes_nothing(app, admin_client):
    admin_client.post("/gatekeeper/keys", data={"name": "taken"})
    for name in ("taken", "no spaces please", ""):
        answer = admin_client.post("/gatekeeper/keys", data={"name": name})
        assert answer.status_code == 400 and 'id="gk-new-key"' not in answer.get_data(as_text=True)
    with app.app_context():
        assert [info.name for info in tokens.list_tokens()] == ["taken"]


def test_only_admins_see_the_keys(client, user, login):
    login(client, user)
    assert client.get("/gatekeeper/keys").status_code == 403
    assert client.post("/gatekeeper/keys", data={"name": "sneaky"}).status_code == 403
