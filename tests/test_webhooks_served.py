"""Webhooks end to end: the defaults bake served by gunicorn sends a 200-change run to a receiver on
127.0.0.1 that checks every signature with its own verification, written from the Standard Webhooks
specification. The receiver goes down for 10 s mid-run and the app is restarted while it is down: every
change still arrives, late, and the ids deduplicate the retries. Every wait is bounded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bakery import copy_project, flask_cli, gunicorn, run

pytestmark = pytest.mark.slow

CHANGES = 200
DOWN_SECONDS = 10
ARRIVAL_TIMEOUT = 60

# Adds the receiver's endpoint when given its URL (printing the secret), then makes changes START to STOP:
# the sample flag forced back and forth, so that every write is a change (and audited). One process for both,
# since starting the app is most of what a run costs.
MAKE_CHANGES = """
import sys
from gatekeeper_app import create_app
from gatekeeper_app.gatekeeper_control.store import store
from gatekeeper_app.gatekeeper_control.webhooks import webhooks

start, stop, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
app = create_app()
with app.app_context():
    if url:
        print(webhooks.add(url[0], actor="test")[1])
    for number in range(start, stop):
        store.force("MY_NEW_FEATURE", ("VISIBLE", "NOT_VISIBLE")[number % 2], f"run {number}")
"""


class Receiver:
    """Records every delivery whose Standard Webhooks signature checks out, by `webhook-id`; can be stopped
    and started again on the same port."""

    def __init__(self) -> None:
        self.secret = ""
        self.by_id: dict[str, dict] = {}  # webhook-id -> the payload
        self.deliveries = 0
        self.bad: list[str] = []
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def verify(self, headers: dict[str, str], body: bytes) -> str | None:
        """What is wrong with a delivery's signature, per the specification; None when it checks out."""
        message_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        if not message_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return f"bad id or timestamp: {message_id!r} {timestamp!r}"
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        content = message_id.encode() + b"." + timestamp.encode() + b"." + body
        expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for signature in headers.get("webhook-signature", "").split(" "):
            version, _, value = signature.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return None
        return f"no valid signature on {message_id}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                if not receiver.secret:  # not set up yet (the secret is printed when it is added): later
                    self.send_response(503)
                    self.end_headers()
                    return
                problem = receiver.verify(headers, body)
                with receiver.lock:
                    receiver.deliveries += 1
                    if problem:
                        receiver.bad.append(problem)
                    else:
                        receiver.by_id[headers["webhook-id"]] = json.loads(body)
                self.send_response(400 if problem else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def changes(self) -> dict[int, str]:
        """Audit id -> webhook-id of every flag change received."""
        with self.lock:
            return {
                payload["data"]["id"]: message_id
                for message_id, payload in self.by_id.items()
                if payload["type"] == "change.force"
            }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def make_changes(project: Path, env: dict[str, str], start: int, stop: int, *endpoint: str) -> str:
    """Make changes START to STOP (adding `endpoint` first, if given); what the script printed."""
    return run(["python", "-c", MAKE_CHANGES, str(start), str(stop), *endpoint], cwd=project, env=env).stdout


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.2)


def start_timers(url: str) -> None:
    """The timer starts on a worker's first request: ask each of the two workers something."""
    for _ in range(6):
        urllib.request.urlopen(f"{url}/", timeout=5).read()


def test_every_change_arrives_once_through_an_outage_and_a_restart(
    baked_project, baked_env, tmp_path, receiver
):
    project = copy_project(baked_project, tmp_path)
    env = {
        **baked_env(),
        "DATABASE_URL": f"sqlite:///{project / 'served.db'}",
        "GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE": "1",
        "GATEKEEPER_WEBHOOKS_TIMEOUT": "2",
    }
    flask_cli(project, env, "init-db")

    with gunicorn(project, env) as url:
        start_timers(url)
        endpoint = f"http://127.0.0.1:{receiver.port}/hooks"
        receiver.secret = make_changes(project, env, 0, CHANGES // 2, endpoint).strip()
        wait_for(lambda: len(receiver.changes()) > 0, 20, "the first changes arrive")
        receiver.stop()  # down mid-run: what is not delivered yet waits in the outbox
        down_at = time.monotonic()
    # The app is restarted while the receiver is down, and the second half of the run is made meanwhile.
    with gunicorn(project, env) as url:
        start_timers(url)
        make_changes(project, env, CHANGES // 2, CHANGES)
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        late = CHANGES - len(receiver.changes())
        receiver.start()
        wait_for(lambda: len(receiver.changes()) == CHANGES, ARRIVAL_TIMEOUT, f"all {CHANGES} changes arrive")

    received = receiver.changes()
    assert receiver.bad == []
    assert late >= CHANGES // 2, "the outage held back the second half of the run at least"
    assert len(received) == CHANGES and len(set(received.values())) == CHANGES  # one webhook-id per change
    assert sorted(received) == list(range(min(received), min(received) + CHANGES))
    print(f"{receiver.deliveries} deliveries for {len(receiver.by_id)} messages; {late} arrived late")
