"""Security headers on every response, trusted hosts, and templates a strict CSP allows."""

import re
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }}
from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import ConfigError, Settings

TEMPLATES = Path({{ cookiecutter.package_name }}.__file__).parent / "templates"


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def csp_directives(response):
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


PAGES = [
    "/",
    "/auth/login",
    "/no/such/page",
    "/gatekeeper/",
    "/gatekeeper/flags/MY_NEW_FEATURE",
    "/gatekeeper/audit",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_the_security_headers(admin_client, path):
    """App, dashboard and error pages carry the CSP, no framing, nosniff and a strict Referrer-Policy."""
    response = admin_client.get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    directives = csp_directives(response)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]


def test_the_csp_allows_no_inline_code_at_all(client):
    """Neither 'unsafe-inline', 'unsafe-eval' nor a wildcard appears anywhere in the policy."""
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "unsafe" not in policy
    assert "*" not in policy
    assert "data:" not in policy


def test_hsts_is_sent_over_https_only(client):
    """Strict-Transport-Security over https; never over http, where it would be meaningless."""
    assert "Strict-Transport-Security" not in client.get("/").headers
    assert (
        client.get("/", base_url="https://localhost")
        .headers["Strict-Transport-Security"]
        .startswith("max-age=")
    )


def test_static_files_carry_nosniff(client):
    """Even the CSS is served with nosniff, so a browser never runs it as something else."""
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "inline style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_needs_what_the_csp_forbids(template):
    """No template (the dashboard's included) has inline script, a style element or attribute, an on*
    handler or a javascript: URL, any of which the strict CSP would block."""
    text = template.read_text(encoding="utf-8")
    found = [what for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, f"{template.name}: {', '.join(found)}"


def test_trusted_hosts_comes_from_the_environment():
    """TRUSTED_HOSTS=a,b becomes Flask's own TRUSTED_HOSTS setting."""
    settings = Settings.from_env("/srv/instance", {"TRUSTED_HOSTS": "shop.example, .shop.example"})
    assert settings.TRUSTED_HOSTS == ("shop.example", ".shop.example")
    assert Settings.from_env("/srv/instance", {}).TRUSTED_HOSTS is None


def test_a_host_that_is_not_trusted_gets_400_not_a_redirect_to_it(make_app):
    """With TRUSTED_HOSTS set, `Host: evil.example` is refused instead of redirected to http://evil.example/."""
    client = make_app(TRUSTED_HOSTS=["shop.example"]).test_client()
    response = client.get("/gatekeeper", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.headers.get("Location", "")
    assert client.get("/", headers={"Host": "shop.example"}).status_code == 200


def test_create_app_reads_trusted_hosts_and_proxy_count_from_the_environment(monkeypatch, tmp_path):
    """The factory applies TRUSTED_HOSTS and PROXY_COUNT as read from the process environment."""
    monkeypatch.setenv("TRUSTED_HOSTS", "shop.example")
    monkeypatch.setenv("PROXY_COUNT", "1")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    app = create_app({"TESTING": True})
    client = app.test_client()
    assert client.get("/auth/login", headers={"Host": "evil.example"}).status_code == 400
    behind_proxy = client.get("/auth/login", headers={"Host": "shop.example", "X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in behind_proxy.headers


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_bad_proxy_count_is_a_clear_error(value):
    """PROXY_COUNT must be a whole number; anything else stops the app naming the variable."""
    with pytest.raises(ConfigError, match="PROXY_COUNT"):
        Settings.from_env("/srv/instance", {"PROXY_COUNT": value})
