"""Webhooks: every change reaches each endpoint from an outbox written with the change, signed per the
Standard Webhooks specification (checked with its own library), or as a Slack message; retried with backoff;
never sent to private addresses unless allowed."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control import audit, leases
from {{ cookiecutter.package_name }}.gatekeeper_control.errors import OverrideError
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import apply_due_changes
from {{ cookiecutter.package_name }}.gatekeeper_control.store import current_state, store
from {{ cookiecutter.package_name }}.gatekeeper_control.webhook_http import post, refusal, sign
from {{ cookiecutter.package_name }}.gatekeeper_control.webhooks import (
    MAX_ATTEMPTS,
    WebhookError,
    retry_delay,
    webhooks,
)
from tests.conftest import add_user
from tests.store_helpers import audit_log
from tests.webhook_receiver import receiving

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def hooked_app(make_app):
    """An app that may send to 127.0.0.1 (the receivers here), with a short timeout."""
    return make_app(GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE=True, GATEKEEPER_WEBHOOKS_TIMEOUT=2)


@pytest.fixture
def receiver():
    with receiving() as receiver:
        yield receiver


def added(app, url, kind="standard"):
    """Add an endpoint for `url`; (it, its secret). Its own "added" message is delivered and forgotten."""
    with app.app_context():
        endpoint, secret = webhooks.add(url, kind=kind, actor="admin@example.com")
        webhooks.deliver_due()
    return endpoint, secret


def changes(received):
    return [request for request in received if request.json.get("type", "").startswith("change.force")]


def test_signatures_match_the_specifications_test_vector():
    """The signature of the specification's own example (secret, id, timestamp, body) is the one its
    libraries compute."""
    secret, message_id = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek"
    signature = sign(secret, message_id, 1614265330, '{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_change_arrives_signed_with_what_the_audit_log_keeps(hooked_app, receiver):
    """A forced variant reaches the endpoint as `change.force` JSON that the specification's library
    verifies with the secret shown at creation, carrying the audit entry."""
    _endpoint, secret = added(hooked_app, receiver.url)
    receiver.received.clear()
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "admin@example.com", reason="launch day")
        assert webhooks.deliver_due() == 1
    [request] = receiver.received
    payload = Webhook(secret).verify(request.body, request.headers)
    entry = audit_log(hooked_app)[0]
    assert payload["type"] == "change.force"
    assert payload["data"] | {"at": None} == {
        "id": entry.id,
        "at": None,
        "actor": "admin@example.com",
        "flag": "MY_NEW_FEATURE",
        "action": "force",
        "target": "everyone",
        "before": None,
        "after": "VISIBLE",
        "reason": "launch day",
        "user_id": None,
        "summary": "MY_NEW_FEATURE: everyone now gets VISIBLE.",
    }
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"


def test_a_refused_change_leaves_no_message(hooked_app, receiver):
    """The outbox row is written in the change's transaction: when something later in that transaction
    refuses the change, neither the audit entry nor the message remains."""
    added(hooked_app, receiver.url)

    def refuse(session, entry):
        raise OverrideError("refused")

    audit.ON_RECORD.append(refuse)
    try:
        with hooked_app.app_context(), pytest.raises(OverrideError):
            store.force("MY_NEW_FEATURE", "VISIBLE", "admin@example.com")
    finally:
        audit.ON_RECORD.remove(refuse)
    with hooked_app.app_context():
        assert [endpoint.pending for endpoint in webhooks.endpoints()] == [0]
        assert webhooks.deliver_due() == 0
    assert changes(receiver.received) == []


def test_a_scheduled_change_is_sent_too(hooked_app, receiver):
    """Changes made by the schedule (their own transactions, not the dashboard's write) are sent as well."""
    added(hooked_app, receiver.url)
    runner = hooked_app.test_cli_runner()
    runner.invoke(args=["gk", "schedule", "MY_NEW_FEATURE", "+1m", "force", "VISIBLE"])
    with hooked_app.app_context():
        apply_due_changes(current_state().engine, datetime.now(UTC) + timedelta(minutes=2), FF_CONFIG_MAP)
        webhooks.deliver_due()
    [request] = changes(receiver.received)
    assert request.json["data"]["actor"].startswith("schedule #1")


def test_slack_endpoints_get_a_slack_message(hooked_app, receiver):
    """A Slack incoming webhook gets `{"text": ...}`: the change's sentence, who and why, with Slack's
    escapes for &, < and >; no signature headers (Slack does not check them)."""
    added(hooked_app, receiver.url, kind="slack")
    receiver.received.clear()
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli", reason="<b> & co")
        webhooks.deliver_due()
    [request] = receiver.received
    assert request.json == {
        "text": "[Gatekeeper App] MY_NEW_FEATURE: everyone now gets VISIBLE. (by cli: &lt;b&gt; &amp; co)"
    }
    assert "webhook-signature" not in request.headers


def test_a_retry_keeps_the_message_id_and_signs_afresh(hooked_app, receiver):
    """A message that failed is sent again with the same `webhook-id` (receivers deduplicate on it), a new
    timestamp and a valid signature."""
    _endpoint, secret = added(hooked_app, receiver.url)
    receiver.received.clear()
    receiver.answers = [500]
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        webhooks.deliver_due(now=T0)
        webhooks.deliver_due(now=T0 + timedelta(seconds=3))
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    Webhook(secret).verify(second.body, second.headers)


def test_retries_back_off_exponentially_up_to_a_cap():
    """2 s, 4 s, 8 s... doubling to at most an hour, plus up to 10% jitter."""
    assert [retry_delay(attempts, jitter=0) for attempts in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert retry_delay(12, jitter=0) == retry_delay(30, jitter=0) == 3600
    assert retry_delay(1, jitter=0.99) == pytest.approx(2.198)


def test_a_failing_endpoint_is_retried_on_schedule_then_given_up(hooked_app, receiver):
    """With a clock moved by hand: no retry before its time, one when it is due, and after MAX_ATTEMPTS the
    message is given up and counted as failed."""
    added(hooked_app, receiver.url)
    receiver.received.clear()
    receiver.answers = [503] * MAX_ATTEMPTS
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        webhooks.deliver_due(now=T0)
        webhooks.deliver_due(now=T0 + timedelta(seconds=1.9))
        assert len(receiver.received) == 1
        webhooks.deliver_due(now=T0 + timedelta(seconds=2.3))
        assert len(receiver.received) == 2
        webhooks.deliver_due(now=T0 + timedelta(seconds=5))
        assert len(receiver.received) == 2  # the second retry waits 4 s or more after the second attempt
        now = T0
        for _ in range(MAX_ATTEMPTS):
            now += timedelta(hours=2)
            webhooks.deliver_due(now=now)
        [endpoint] = webhooks.endpoints()
        [last, *_] = webhooks.deliveries(endpoint.id)
    assert len(receiver.received) == MAX_ATTEMPTS
    assert (endpoint.pending, endpoint.failed) == (0, 1)
    assert (last.attempt, last.status, last.state) == (MAX_ATTEMPTS, 503, "failed")
    assert last.error == "HTTP 503: ok"


def test_an_endpoint_that_answers_again_gets_its_waiting_messages_at_once(hooked_app, receiver):
    """After a success, an endpoint's other waiting messages are sent without waiting out their backoff."""
    added(hooked_app, receiver.url)
    receiver.received.clear()
    receiver.answers = [500, 500]
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        webhooks.deliver_due(now=T0)  # fails; the endpoint is skipped for the rest of this run
        store.force("MY_NEW_FEATURE", "NOT_VISIBLE", "cli")
        webhooks.deliver_due(now=T0 + timedelta(seconds=1))  # the second change fails too
        assert webhooks.deliver_due(now=T0 + timedelta(seconds=2.3)) == 2
    assert len({request.headers["webhook-id"] for request in receiver.received}) == 2


def test_an_endpoint_that_answers_gone_is_disabled_until_retried(hooked_app, receiver):
    """410 Gone (the specification: stop sending): the endpoint is disabled and gets no new messages until
    "Retry now" enables it again."""
    added(hooked_app, receiver.url)
    receiver.received.clear()
    receiver.answers = [410]
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        webhooks.deliver_due()
        store.force("MY_NEW_FEATURE", "NOT_VISIBLE", "cli")
        webhooks.deliver_due()
        [endpoint] = webhooks.endpoints()
        assert (endpoint.enabled, endpoint.pending, endpoint.failed) == (False, 0, 1)
        assert webhooks.retry_now(endpoint.id) == 1
        assert webhooks.deliver_due() == 1
        assert webhooks.endpoints()[0].enabled
    assert len(receiver.received) == 2  # the change made while it was disabled was never queued for it


def test_only_the_lease_holder_sends(hooked_app, receiver):
    """While another process holds the `webhooks` lease, this one sends nothing; the messages wait."""
    added(hooked_app, receiver.url)
    receiver.received.clear()
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        engine = current_state().engine
        leases.release(engine, "webhooks", leases.process_holder())  # this process sent the "added" message
        assert leases.try_acquire(engine, "webhooks", "another process", 30)
        assert webhooks.deliver_due() == 0
        assert webhooks.endpoints()[0].pending == 1
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
    ],
)
def test_private_addresses_are_refused(module_app, url):
    """Loopback, private, link-local (cloud metadata) and unspecified addresses, IPv4-mapped ones too, are
    refused when an endpoint is added, unless GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE is set."""
    with module_app.app_context(), pytest.raises(WebhookError, match="public addresses only"):
        webhooks.add(url, actor="admin@example.com")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("https://user:secret@example.com/", "user name or password"),
        ("https:///hook", "names no host"),
        ("https://example.com:99999/", "not a URL"),
    ],
)
def test_urls_that_are_not_http_are_refused(module_app, url, problem):
    with module_app.app_context(), pytest.raises(WebhookError, match=problem):
        webhooks.add(url, actor="admin@example.com")


def test_addresses_are_checked_again_when_sending(hooked_app, receiver):
    """An endpoint whose host became private (or a setting turned off) is refused at delivery, where the
    address that is connected to is the one that was checked: nothing reaches it."""
    added(hooked_app, receiver.url)
    receiver.received.clear()
    hooked_app.config["GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE"] = False
    with hooked_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", "cli")
        webhooks.deliver_due()
        [endpoint] = webhooks.endpoints()
        [attempt, *_] = webhooks.deliveries(endpoint.id)
    assert receiver.received == []
    assert attempt.status is None and "127.0.0.1 is a loopback address" in attempt.error


def test_the_checked_address_is_the_one_connected_to(receiver, monkeypatch):
    """DNS rebinding: a name that resolves to a public address when checked and to 127.0.0.1 a moment
    later is looked up once, and the connection goes to the public address: the receiver on 127.0.0.1 never
    hears from it."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = ["93.184.215.14"] + ["127.0.0.1"] * 4
    looked_up = []

    def rebinding_getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        address = answers[len(looked_up) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    answer = post(f"http://rebind.example:{port}/hook", b"{}", {}, timeout=0.3, allow_private=False)
    assert looked_up == ["rebind.example"]
    assert not answer.ok and receiver.received == []


def test_public_addresses_pass_the_check():
    assert refusal("93.184.215.14") is None and refusal("2606:4700::1111") is None
    assert refusal("100.64.0.1") == "100.64.0.1 is not a public address"  # carrier-grade NAT


def test_redirects_are_not_followed(receiver):
    """A 3xx is a failed delivery that names where it pointed; the client never goes there."""
    receiver.answers, receiver.redirect_to = [301], receiver.url + "/elsewhere"
    answer = post(receiver.url, b"{}", {}, timeout=2, allow_private=True)
    assert not answer.ok and answer.status == 301
    assert answer.error == f"HTTP 301: redirects are not followed (to {receiver.url}/elsewhere)"
    assert [request.path for request in receiver.received] == ["/hook"]


def test_a_slow_receiver_times_out(receiver):
    receiver.delay = 1.0
    answer = post(receiver.url, b"{}", {}, timeout=0.2, allow_private=True)
    assert (answer.status, answer.error) == (None, "no answer within 0.2 s")


def test_a_receiver_that_is_down_is_a_failed_attempt():
    with receiving() as gone:
        url = gone.url
    answer = post(url, b"{}", {}, timeout=2, allow_private=True)
    assert answer.status is None and answer.error.startswith("connection refused")


# --- `flask gk webhooks` ------------------------------------------------------------------------------------


def gk(app, *args):
    return app.test_cli_runner().invoke(args=["gk", "webhooks", *args])


def test_cli_adds_lists_tests_and_removes(hooked_app, receiver):
    """`add` prints the secret once, `list` the endpoint and its queue, `test` sends at once, `remove`
    removes it (audited)."""
    result = gk(hooked_app, "add", receiver.url)
    assert result.exit_code == 0, result.output
    assert "Added webhook #1 (127.0.0.1): standard." in result.output
    secret = result.output.split("shown once; the receiver verifies with it): ")[1].strip()
    assert f"#1  standard  {receiver.url}  1 waiting, 0 given up" in gk(hooked_app, "list").output
    assert secret not in gk(hooked_app, "list").output
    result = gk(hooked_app, "test", "1")
    assert result.exit_code == 0 and result.output.startswith("Delivered: HTTP 200 in ")
    test_message = receiver.received[-1]
    assert Webhook(secret).verify(test_message.body, test_message.headers)["type"] == "webhook.test"
    assert gk(hooked_app, "remove", "1").output == "webhook #1 (127.0.0.1) removed.\n"
    assert "No webhooks yet" in gk(hooked_app, "list").output
    assert [entry.action for entry in audit_log(hooked_app)] == ["remove_webhook", "add_webhook"]


def test_cli_refusals_are_clear(app):
    assert "public addresses only" in gk(app, "add", "http://127.0.0.1/").output
    assert "There is no webhook #7" in gk(app, "remove", "7").output
    assert "There is no webhook #7" in gk(app, "test", "7").output
    assert gk(app, "add", "--slack", "https://hooks.slack.com/services/T0/B0/x").exit_code == 0


# --- The dashboard page -------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(hooked_app, login):
    """A client of `hooked_app` logged in as an admin."""
    client = hooked_app.test_client()
    login(client, add_user(hooked_app, "admin@example.com", is_admin=True))
    return client


def test_the_page_shows_the_secret_once_and_deliveries(admin_client, receiver):
    """Adding shows the signing secret on the answer to the form, never again; "Send test" delivers at once
    and the attempt is listed."""
    page = admin_client.post("/gatekeeper/webhooks", data={"url": receiver.url, "kind": "standard"}).text
    assert 'id="gk-webhook-secret">whsec_' in page
    secret = page.split('id="gk-webhook-secret">')[1].split("<")[0]
    response = admin_client.post("/gatekeeper/webhooks/1/test", follow_redirects=True)
    assert "Test message HTTP 200 in" in response.text
    page = admin_client.get("/gatekeeper/webhooks").text
    assert secret not in page
    assert "webhook.test" in page and "HTTP 200" in page
    assert '<a href="/gatekeeper/webhooks" aria-current="page">Webhooks</a>' in page


def test_the_page_shows_failures_and_retries_now(admin_client):
    """A test to a receiver that is down says why it failed; its messages wait, "Retry now" makes them due,
    and removing the endpoint drops them."""
    with receiving() as gone:
        url = gone.url
    admin_client.post("/gatekeeper/webhooks", data={"url": url, "kind": "slack"})
    response = admin_client.post("/gatekeeper/webhooks/1/test", follow_redirects=True)
    refused = "Test message not delivered (connection refused by 127.0.0.1); it will be retried."
    assert refused in response.text
    assert "2 waiting, 0 given up" in response.text
    assert "Retry now" in response.text
    response = admin_client.post("/gatekeeper/webhooks/1/retry", follow_redirects=True)
    assert "2 messages will be sent again now." in response.text
    response = admin_client.post("/gatekeeper/webhooks/1/remove", follow_redirects=True)
    assert "webhook #1 (127.0.0.1) removed." in response.text and "No webhooks yet." in response.text


def test_a_refused_url_on_the_page_says_why(app, admin, login):
    client = app.test_client()
    login(client, admin)
    response = client.post("/gatekeeper/webhooks", data={"url": "http://10.0.0.1/"}, follow_redirects=True)
    assert "public addresses only" in response.text and "No webhooks yet." in response.text


def test_a_post_without_its_csrf_token_changes_nothing(make_app, password):
    """With CSRF on, as in production, an admin's POST without the form's token answers 400."""
    app = make_app(WTF_CSRF_ENABLED=True)
    admin = add_user(app, "admin@example.com", is_admin=True)
    client = app.test_client()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/auth/login").text).group(1)
    data = {"email": admin.email, "password": password, "csrf_token": token}
    assert client.post("/auth/login", data=data).status_code == 302
    assert client.post("/gatekeeper/webhooks", data={"url": "https://example.com/"}).status_code == 400
    with app.app_context():
        assert webhooks.endpoints() == []


def test_the_page_is_for_admins_only(client, user, login):
    login(client, user)
    assert client.get("/gatekeeper/webhooks").status_code == 403
    assert client.post("/gatekeeper/webhooks", data={"url": "https://example.com/"}).status_code == 403
