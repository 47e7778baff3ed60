"""OFREP against real clients: the defaults bake served by gunicorn on 127.0.0.1, asked by the real Python
OFREP provider (`openfeature-provider-ofrep`) with a client key, and, in headless Chromium, by OpenFeature's
web SDK with its OFREP provider (the npm packages, bundled for the test with esbuild) through the signed-in
user's session; and `gk.bootstrap()` with the shipped gatekeeper-client.js, which knows the user's flags
before any request. One server for the module; the copied project gets a few more flags (one per value
type) and a page that bootstraps, as an app of its own would.

npm packages are installed once per machine into the user's cache (~/.cache/flask-gatekeeper/npm-ofrep-*,
as the Makefile's other tools); the baked project's own tests never use npm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import copy_project, gunicorn, run
from test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, record_csp_violation

pytestmark = pytest.mark.slow

ofrep = pytest.importorskip("openfeature.contrib.provider.ofrep")
playwright_api = pytest.importorskip("playwright.sync_api")
from openfeature import api  # noqa: E402 (after the skip: the provider package brings the SDK)
from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.exception import ErrorCode  # noqa: E402

USER = "ann@example.com"  # id 1
OTHER = "bob@example.com"  # id 2
NPM_PACKAGES = ("@openfeature/web-sdk@1.10.0", "@openfeature/ofrep-web-provider@0.4.3", "esbuild@0.28.2")

MORE_FLAGS = """

class SeatsFFConfig(FeatureFlagConfig):
    FLAG_NAME = "SEATS"
    VARIANTS_ENUM_STR = "FEW MANY"
    DEFAULT_VARIANT = "FEW"
    VALUES = {"FEW": 3, "MANY": 30}


class PriceFFConfig(FeatureFlagConfig):
    FLAG_NAME = "PRICE"
    VARIANTS_ENUM_STR = "LOW HIGH"
    DEFAULT_VARIANT = "LOW"
    VALUES = {"LOW": 1.5, "HIGH": 2.25}


class ThemeFFConfig(FeatureFlagConfig):
    FLAG_NAME = "THEME"
    VARIANTS_ENUM_STR = "LIGHT DARK"
    DEFAULT_VARIANT = "LIGHT"
    VALUES = {"LIGHT": {"color": "white"}, "DARK": {"color": "black"}}


class ByEmailFFConfig(FeatureFlagConfig):
    FLAG_NAME = "BY_EMAIL"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
        return "ON" if str(context.get("email", "")).endswith("@example.com") else "OFF"


FF_CONFIG_MAP.update(
    SEATS=SeatsFFConfig(), PRICE=PriceFFConfig(), THEME=ThemeFFConfig(), BY_EMAIL=ByEmailFFConfig()
)
"""

BOOTSTRAP_VIEW = """

@bp.get("/bootstrapped")
def bootstrapped() -> str:
    return render_template("bootstrapped.html")
"""

BOOTSTRAP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bootstrapped</title></head>
<body>
<p id="flag">waiting</p>
{% include "gatekeeper/client.html" %}
<script src="{{ url_for('static', filename='show-flag.js') }}"></script>
</body></html>
"""

SHOW_FLAG = """
var flag = document.getElementById("flag");
flag.dataset.variant = gatekeeper.variant("NEW_CHECKOUT");
flag.dataset.value = String(gatekeeper.value("NEW_CHECKOUT"));
flag.dataset.hidden = String(gatekeeper.variant("MY_NEW_FEATURE"));
flag.textContent = "ready";
"""

SDK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>web sdk</title></head>
<body><p id="result">waiting</p><script src="/static/ofrep-web-sdk.js"></script></body></html>
"""

SDK_ENTRY = """
import { OpenFeature } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";

async function main() {
  const out = document.getElementById("result");
  const claim = new URLSearchParams(location.search).get("claim");
  await OpenFeature.setContext(claim ? { targetingKey: claim } : {});
  try {
    await OpenFeature.setProviderAndWait(new OFREPWebProvider({ baseUrl: location.origin }));
  } catch (error) {
    out.dataset.state = "refused";
    out.textContent = String(error);
    return;
  }
  const client = OpenFeature.getClient();
  const details = client.getBooleanDetails("NEW_CHECKOUT", false);
  out.dataset.variant = details.variant;
  out.dataset.value = String(details.value);
  out.dataset.hidden = client.getBooleanDetails("MY_NEW_FEATURE", false).errorCode || "";
  out.dataset.state = "ready";
}

main();
"""


# -- the server, a client key, the npm bundle ----------------------------------------------------------------


@pytest.fixture(scope="module")
def project(baked_project, tmp_path_factory) -> Path:
    """A copy of the defaults bake with more flags, a bootstrapped page and the web SDK's test page."""
    project = copy_project(baked_project, tmp_path_factory.mktemp("ofrep"))
    package = project / project.name
    with (package / "gatekeeper_config.py").open("a", encoding="utf-8") as config:
        config.write(MORE_FLAGS)
    with (package / "views.py").open("a", encoding="utf-8") as views:
        views.write(BOOTSTRAP_VIEW)
    (package / "templates" / "bootstrapped.html").write_text(BOOTSTRAP_PAGE, encoding="utf-8")
    (package / "static" / "show-flag.js").write_text(SHOW_FLAG, encoding="utf-8")
    (package / "static" / "ofrep-web-sdk.html").write_text(SDK_PAGE, encoding="utf-8")
    return project


# The set-up's `flask` commands in one process (each `flask` run imports the app again): the database, two
# users, and a client key made with `flask gk keys create` (the key is printed last).
SET_UP = """
import json, sys
from {package} import create_app

runner = create_app().test_cli_runner()
for args in json.loads(sys.argv[1]):
    result = runner.invoke(args=args)
    assert result.exit_code == 0, (args, result.output)
print(result.output.split()[-1])
"""


@pytest.fixture(scope="module")
def served(project, baked_env) -> Iterator[tuple[str, str]]:
    """The URL of the project under gunicorn, and a client key made with `flask gk keys create`."""
    env = {**baked_env(), "DATABASE_URL": f"sqlite:///{project / 'ofrep.db'}"}
    commands = [
        ["init-db"],
        ["users", "create", USER, "--password", PASSWORD],
        ["users", "create", OTHER, "--password", PASSWORD],
        ["gk", "keys", "create", "served-tests"],
    ]
    script = SET_UP.format(package=project.name)
    key = run(["python", "-c", script, json.dumps(commands)], cwd=project, env=env).stdout.split()[-1]
    with gunicorn(project, env, "--workers", "1", "--threads", "4") as url:
        yield url, key


@pytest.fixture
def of_client(served):
    url, key = served
    provider = ofrep.OFREPProvider(url, headers_factory=lambda: {"Authorization": f"Bearer {key}"})
    api.set_provider(provider, domain="ofrep-served")
    yield api.get_client("ofrep-served")
    api.clear_providers()


# -- the Python OFREP provider, with a key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "flag", "default", "value", "variant"),
    [
        ("boolean", "MY_NEW_FEATURE", False, True, "VISIBLE"),  # user 1 is on the team
        ("string", "WELCOME_MESSAGE", "", None, "STANDARD"),
        ("integer", "SEATS", 0, 3, "FEW"),
        ("float", "PRICE", 0.0, 1.5, "LOW"),
        ("object", "THEME", {}, {"color": "white"}, "LIGHT"),
    ],
)
def test_the_python_provider_reads_every_type(of_client, kind, flag, default, value, variant):
    details = getattr(of_client, f"get_{kind}_details")(flag, default, EvaluationContext("1"))
    assert details.error_code is None, details.error_message
    assert details.variant == variant
    if value is not None:
        assert details.value == value
    assert isinstance(details.value, type(default))


def test_the_python_provider_targets_with_attributes(of_client):
    ann = of_client.get_boolean_details("BY_EMAIL", False, EvaluationContext("1", {"email": "a@example.com"}))
    bob = of_client.get_boolean_details(
        "BY_EMAIL", True, EvaluationContext("2", {"email": "b@elsewhere.org"})
    )
    assert (ann.value, ann.reason, bob.value) == (True, "TARGETING_MATCH", False)


def test_the_python_provider_gets_the_protocols_errors(of_client):
    missing = of_client.get_boolean_details("NO_SUCH_FLAG", True, EvaluationContext("1"))
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    keyless = of_client.get_boolean_details("MY_NEW_FEATURE", True, EvaluationContext(None, {"a": 1}))
    assert (keyless.value, keyless.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)
    wrong = of_client.get_integer_details("WELCOME_MESSAGE", 7, EvaluationContext("1"))
    assert (wrong.value, wrong.error_code) == (7, ErrorCode.TYPE_MISMATCH)


def test_a_wrong_key_gets_the_callers_default(served):
    url, _ = served
    provider = ofrep.OFREPProvider(url, headers_factory=lambda: {"X-API-Key": "gk_not-a-key"})
    api.set_provider(provider, domain="ofrep-wrong-key")
    try:
        details = api.get_client("ofrep-wrong-key").get_boolean_details("MY_NEW_FEATURE", False)
    finally:
        api.clear_providers()
    assert (details.value, details.error_code, details.error_message) == (
        False,
        ErrorCode.GENERAL,
        "unauthorized",
    )


def test_bulk_answers_304_while_the_answers_are_the_same(served):
    """The bulk endpoint's ETag comes back as 304 (no body) for the same context, and a context whose answers
    differ gets 200 (the baked suite checks a store change does too)."""
    url, key = served

    def bulk(user: str, etag: str | None = None) -> tuple[int, str, dict]:
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        if etag:
            headers["If-None-Match"] = etag
        body = json.dumps({"context": {"targetingKey": user}}).encode()
        request = urllib.request.Request(f"{url}/ofrep/v1/evaluate/flags", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.headers["ETag"], json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("ETag", ""), {}

    status, etag, body = bulk("1")
    assert status == 200 and {item["key"] for item in body["flags"]} >= {"MY_NEW_FEATURE", "SEATS"}
    assert bulk("1", etag)[0] == 304
    assert bulk("42", etag)[0] == 200  # user 42 is not on MY_NEW_FEATURE's team: another body


# -- Chromium: the web SDK through the session, and the bootstrap --------------------------------------------


@pytest.fixture(scope="module")
def npm_dir() -> Path:
    """The npm packages, installed once per machine into the user's cache (skipped without npm)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flask-gatekeeper"
    target = cache / ("npm-ofrep-" + hashlib.sha256(" ".join(NPM_PACKAGES).encode()).hexdigest()[:12])
    if not (target / ".installed").exists():
        fresh = cache / f".{target.name}.{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(fresh), *NPM_PACKAGES], cwd=fresh)
        (fresh / ".installed").touch()
        try:
            fresh.rename(target)
        except OSError:  # another worker got there first
            shutil.rmtree(fresh, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def sdk_bundle(npm_dir, project) -> Path:
    """The web SDK and its OFREP provider bundled (esbuild, one IIFE file) into the project's static/."""
    entry = npm_dir / f"entry-{os.getpid()}.js"
    entry.write_text(SDK_ENTRY, encoding="utf-8")
    out = project / project.name / "static" / "ofrep-web-sdk.js"
    esbuild = npm_dir / "node_modules" / ".bin" / "esbuild"
    run([str(esbuild), str(entry), "--bundle", "--format=iife", f"--outfile={out}"], cwd=npm_dir)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def signed_in(browser, served):
    """`signed_in(email)`: a page of a fresh context logged in through the form; at the end no page may
    have had anything blocked by the CSP."""
    url, _ = served
    contexts, violations = [], []

    def open_page(email: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: record_csp_violation(message.text, violations))
        page.goto(f"{url}/auth/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(f"{url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert violations == [], "the Content-Security-Policy blocked something"


def variant_for(of_client, user_id: str) -> str:
    return of_client.get_boolean_details("NEW_CHECKOUT", False, EvaluationContext(user_id)).variant


def test_the_web_sdk_shows_the_signed_in_users_variant(signed_in, served, sdk_bundle, of_client):
    """OpenFeature's web SDK with its OFREP provider, given no key and no targeting key, gets the signed-in
    user's own variant, and never a flag that is not CLIENT_SIDE."""
    url, _ = served
    page = signed_in(OTHER)
    page.goto(f"{url}/static/ofrep-web-sdk.html")
    page.wait_for_selector("#result[data-state]")
    result = page.locator("#result")
    assert result.get_attribute("data-state") == "ready", result.inner_text()
    assert result.get_attribute("data-variant") == variant_for(of_client, "2")
    assert result.get_attribute("data-hidden") == "FLAG_NOT_FOUND"


def test_the_web_sdk_cannot_claim_another_user(signed_in, served, sdk_bundle):
    """A context naming someone else is refused (403): the provider does not start."""
    url, _ = served
    page = signed_in(OTHER)
    page.goto(f"{url}/static/ofrep-web-sdk.html?claim=1")
    page.wait_for_selector("#result[data-state]")
    assert page.get_attribute("#result", "data-state") == "refused"


def test_the_bootstrap_gives_the_variant_before_any_request(signed_in, served, of_client):
    """gatekeeper-client.js reads the page's bootstrap: the variant shows with no OFREP request made; a flag
    without CLIENT_SIDE is nowhere in the source; a refresh with the bootstrap's ETag gets 304."""
    url, _ = served
    page = signed_in(OTHER)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/ofrep/" in request.url else None)
    response = page.goto(f"{url}/bootstrapped")
    page.wait_for_selector("#flag:has-text('ready')")
    assert page.get_attribute("#flag", "data-variant") == variant_for(of_client, "2")
    assert page.get_attribute("#flag", "data-hidden") == "undefined"
    assert asked == []
    source = response.text()
    assert "MY_NEW_FEATURE" not in source and "HOMEPAGE_EXPERIMENT" not in source
    with page.expect_response(lambda answer: "/ofrep/" in answer.url) as refreshed:
        assert page.evaluate("gatekeeper.refresh()") == []
    assert refreshed.value.status == 304
