"""`gk.bootstrap()` in a template: the signed-in user's CLIENT_SIDE flags as JSON data for the browser client
(static/gatekeeper-client.js), so a page knows its flags before any request, under the strict CSP. The page
here is the folder's `gatekeeper/client.html`, the include the README tells pages to use."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask, render_template

from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from tests.conftest import add_user

ELEMENT = re.compile(r'<script type="application/json" id="gatekeeper-bootstrap">(.*?)</script>', re.S)
HOSTILE = "</script><script>alert(1)</script><!--"


class BannerFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BANNER"
    VARIANTS_ENUM_STR = "PLAIN LOUD"
    DEFAULT_VARIANT = "LOUD"
    VALUES = {"PLAIN": "hello", "LOUD": HOSTILE}  # noqa: RUF012 (read only)
    CLIENT_SIDE = True


@pytest.fixture
def page_app(make_app) -> Flask:
    app = make_app()
    app.add_url_rule("/page", "page", lambda: render_template("gatekeeper/client.html"))
    return app


def bootstrap_of(html: str) -> dict[str, Any]:
    found = ELEMENT.findall(html)
    assert len(found) == 1, "one bootstrap element"
    return json.loads(found[0])


def test_the_page_holds_the_signed_in_users_client_side_flags(page_app, login):
    """The element holds the CLIENT_SIDE flags as the bulk endpoint answers them, for this user."""
    user = add_user(page_app, "ann@example.com", user_id=42)
    client = page_app.test_client()
    login(client, user)
    data = bootstrap_of(client.get("/page").get_data(as_text=True))
    with page_app.app_context():
        expected = Gatekeeper(user_id=42).ff_variant("NEW_CHECKOUT")
    assert [(item["key"], item["variant"]) for item in data["flags"]] == [("NEW_CHECKOUT", expected)]
    assert data["url"] == "/ofrep/v1/evaluate/flags"


def test_a_flag_without_client_side_never_reaches_the_page(page_app):
    """No name, variant or value of another flag is in the page's source."""
    html = page_app.test_client().get("/page").get_data(as_text=True)
    for flag, config in FF_CONFIG_MAP.items():
        if not config.CLIENT_SIDE:
            assert flag not in html
            assert not any(variant in html for variant in config.get_variants() if len(variant) > 3)


def test_a_value_cannot_close_the_element(page_app, monkeypatch):
    """A value holding `</script>` stays inside the JSON: escaped in the page, the same value once parsed."""
    monkeypatch.setitem(FF_CONFIG_MAP, "BANNER", BannerFFConfig())
    html = page_app.test_client().get("/page").get_data(as_text=True)
    assert "</script><script>" not in html and "<!--" not in html
    values = {item["key"]: item["value"] for item in bootstrap_of(html)["flags"]}
    assert values["BANNER"] == HOSTILE


def test_its_etag_is_the_bulk_endpoints_so_a_refresh_gets_304(page_app):
    """A same-origin refresh that sends the bootstrap's ETag is told nothing changed."""
    client = page_app.test_client()
    data = bootstrap_of(client.get("/page").get_data(as_text=True))
    answer = client.post(
        data["url"],
        json={"context": {}},
        headers={"Sec-Fetch-Site": "same-origin", "If-None-Match": f'"{data["etag"]}"'},
    )
    assert answer.status_code == 304


def test_the_page_needs_no_inline_script(page_app):
    """The element is data (application/json) and the client a file of the site's own, so the strict CSP
    (script-src 'self') stays as it is."""
    response = page_app.test_client().get("/page")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    tags = re.findall(r"<script[^>]*>", response.get_data(as_text=True))
    assert tags[1:] == ['<script src="/gatekeeper/static/gatekeeper-client.js">']
    assert 'type="application/json"' in tags[0]
    script = page_app.test_client().get("/gatekeeper/static/gatekeeper-client.js")
    assert script.status_code == 200 and "window.gatekeeper" in script.get_data(as_text=True)
