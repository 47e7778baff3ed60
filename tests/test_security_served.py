"""The security findings of issues 10 and 25, checked against the defaults bake served by gunicorn (its
gunicorn.conf.py: two threaded workers, debug off), as the attacker tried them: every request goes to
127.0.0.1 and every loop is bounded in time.

The login-throttling test is also the measurement: it prints the home page's latency unloaded and under
16 clients posting wrong passwords, and how many attempts were hashed or refused. It asserts counts only.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sqlite3
import statistics
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import copy_project, csrf_token, flask_cli, gunicorn, log_in

pytestmark = pytest.mark.slow

VICTIM = "victim@example.com"
PASSWORD = "the victim's real password"
WINDOW = 5  # seconds: the per-account and per-address windows, short so the test can wait one out
PER_ACCOUNT = 5
PER_ADDRESS = 20
WORKERS = 2
ATTACKERS = 16
ATTACK_SECONDS = 8


@pytest.fixture(scope="module")
def served(baked_project, baked_env, tmp_path_factory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The defaults bake under gunicorn with short throttling windows, trusting only its own host name:
    (its URL, the project folder, the environment it runs in)."""
    project = copy_project(baked_project, tmp_path_factory.mktemp("served"))
    env = {
        **baked_env(),
        "DATABASE_URL": f"sqlite:///{project / 'served.db'}",
        "LOGIN_LIMIT_PER_ACCOUNT": f"{PER_ACCOUNT} per {WINDOW} seconds",
        "LOGIN_LIMIT_PER_ADDRESS": f"{PER_ADDRESS} per {WINDOW} seconds",
        "TRUSTED_HOSTS": "127.0.0.1",
    }
    flask_cli(project, env, "init-db")
    flask_cli(project, env, "users", "create", VICTIM, "--admin", "--password", PASSWORD)
    with gunicorn(project, env, "--workers", str(WORKERS)) as url:
        yield url, project, env


@pytest.fixture(scope="module")
def server(served) -> str:
    return served[0]


def request(
    url: str, method: str = "GET", path: str = "/", body: dict[str, str] | None = None, **headers: str
) -> tuple[int, dict[str, str], str]:
    """One request on a new connection: (status, headers with lower-case names, body text)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = urllib.parse.urlencode(body) if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text
    finally:
        connection.close()


def login_form(url: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a fresh login form, as a browser or an attacker's script gets them."""
    status, headers, page = request(url, path="/auth/login")
    assert status == 200
    session = re.search(r"session=([^;]+)", headers["set-cookie"]).group(1)
    return session, csrf_token(page)


def post_login(url: str, form: tuple[str, str], password: str) -> tuple[int, dict[str, str], str]:
    session, token = form
    body = {"email": VICTIM, "password": password, "csrf_token": token}
    return request(url, "POST", "/auth/login", body, Cookie=f"session={session}")


def home_latency(url: str) -> float:
    started = time.perf_counter()
    status, _, _ = request(url)
    assert status == 200
    return time.perf_counter() - started


def test_an_attack_on_one_account_is_throttled_and_the_site_stays_up(server):
    """16 clients posting wrong passwords for 8 s: most attempts are refused with 429 before any hashing, so
    at most the limit per window per worker (plus the attempts in flight) is hashed; every home page request
    still answers; and the right password works once the window has passed."""
    unloaded = [home_latency(server) for _ in range(40)]

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + ATTACK_SECONDS

    def attacker() -> None:
        form = login_form(server)
        while time.monotonic() < stop_at:
            status, _, _ = post_login(server, form, "not the password")
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=attacker) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    loaded = []
    while time.monotonic() < stop_at - 0.5:
        loaded.append(home_latency(server))
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=60)
    attack_ended = time.monotonic()

    hashed, refused = statuses[200], statuses[429]
    ratio = statistics.median(loaded) / statistics.median(unloaded)
    print(
        f"\nGET / median {statistics.median(unloaded) * 1000:.1f} ms unloaded, "
        f"{statistics.median(loaded) * 1000:.1f} ms under attack ({ratio:.1f}x; "
        f"p90 {statistics.quantiles(loaded, n=10)[-1] * 1000:.1f} ms, {len(loaded)} requests); "
        f"{sum(statuses.values())} login attempts in {ATTACK_SECONDS} s: {hashed} hashed (wrong password), "
        f"{refused} refused with 429"
    )
    assert set(statuses) <= {200, 429}, f"unexpected answers: {statuses}"
    windows = ATTACK_SECONDS / WINDOW + 1
    assert hashed <= PER_ACCOUNT * windows * WORKERS + ATTACKERS  # in-memory storage counts per worker
    assert refused > 10 * hashed

    status, headers, page = post_login(server, login_form(server), PASSWORD)
    assert status == 429, "while the window lasts even the right password is refused"
    assert 1 <= int(headers["retry-after"]) <= WINDOW
    assert "Too many login attempts" in page

    time.sleep(max(0.0, attack_ended + WINDOW + 0.5 - time.monotonic()))
    status, headers, _ = post_login(server, login_form(server), PASSWORD)
    assert status == 302 and headers["location"] == "/", "the real user logs in once the window passed"


@pytest.mark.parametrize("path", ["/", "/auth/login", "/gatekeeper/", "/no/such/page"])
def test_every_page_carries_the_security_headers(server, path):
    """Pages, redirects and errors all carry the CSP, DENY framing, nosniff and a strict Referrer-Policy."""
    _, headers, _ = request(server, path=path)
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in headers  # plain http here


def test_a_forged_host_is_refused_not_redirected_to(server):
    """`Host: evil.example` gets 400 instead of a redirect to http://evil.example/gatekeeper/."""
    status, headers, _ = request(server, path="/gatekeeper", Host="evil.example")
    assert status == 400
    assert "evil.example" not in headers.get("location", "")


def test_https_reported_by_the_local_proxy_gets_hsts_and_secure_cookies(server):
    """gunicorn trusts X-Forwarded-Proto from 127.0.0.1: over that https, HSTS is sent and every cookie is
    Secure (the anonymous-id cookie as much as the session one)."""
    status, headers, _ = request(server, path="/auth/login", X_Forwarded_Proto="https")
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=")
    _, home_headers, _ = request(server, path="/", X_Forwarded_Proto="https")
    for cookie in (headers["set-cookie"], home_headers["set-cookie"]):
        assert "Secure" in cookie


def test_two_idle_connections_do_not_stall_the_site(server):
    """Two clients connect and send nothing (as browsers' speculative connections do): every worker must
    still answer at once. Under sync workers each idle connection held a worker for 30 s, and the site
    with it; the baked gunicorn.conf.py's threaded workers keep serving."""
    parts = urllib.parse.urlsplit(server)
    idle = [socket.create_connection((parts.hostname, parts.port), timeout=5) for _ in range(WORKERS)]
    try:
        time.sleep(0.5)  # both accepted by now, each by some worker
        statuses = []
        for _ in range(2 * WORKERS):
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            try:
                connection.request("GET", "/")
                statuses.append(connection.getresponse().status)
            except TimeoutError:
                statuses.append("timed out")
            finally:
                connection.close()
    finally:
        for sock in idle:
            sock.close()
    assert statuses == [200] * (2 * WORKERS)


def test_a_sqlite_file_replaced_under_the_running_site_is_picked_up(served):
    """The database file is deleted and restored from a copy while both workers hold pooled connections to
    it: every dashboard write afterwards lands in the restored file (the probe saw 55 of 65 fail with
    "attempt to write a readonly database"), and a `flask users revoke` written there ends the session on
    every following request (the probe saw 5 of 6 still served)."""
    url, project, env = served
    session, _ = log_in(url, VICTIM, PASSWORD)
    for _ in range(2 * WORKERS):  # both workers open pooled connections to the file
        assert session.open(f"{url}/gatekeeper/", timeout=10).status == 200
    database = project / "served.db"
    shutil.copy(database, project / "restored.db")
    database.unlink()
    os.replace(project / "restored.db", database)

    pages = []
    for variant in ["ON", "OFF"] * (2 * WORKERS):
        flag_page = session.open(f"{url}/gatekeeper/flags/NEW_CHECKOUT", timeout=10).read().decode()
        form = {"csrf_token": csrf_token(flag_page), "variant": variant, "confirm": "1"}
        body = urllib.parse.urlencode(form).encode()
        answer = session.open(f"{url}/gatekeeper/flags/NEW_CHECKOUT/force", data=body, timeout=10)
        pages.append(answer.read().decode())
    assert not [page for page in pages if "readonly" in page or "unavailable" in page]
    with sqlite3.connect(database) as restored:
        forced = restored.execute(
            "SELECT COUNT(*) FROM gatekeeper_audit_log WHERE flag = 'NEW_CHECKOUT' AND action = 'force'"
        ).fetchone()[0]
    assert forced == 4 * WORKERS

    flask_cli(project, env, "users", "revoke", VICTIM)
    landed = [session.open(f"{url}/gatekeeper/", timeout=10).geturl() for _ in range(3 * WORKERS)]
    assert all("/auth/login" in address for address in landed), landed
