"""Webhooks: every change, as the audit log keeps it, sent to the URLs admins add, from an outbox.

An endpoint gets Standard Webhooks JSON signed with its own secret (webhook_http.py), or, added as a Slack
incoming webhook, a Slack message. Delivery never blocks or fails a change: every audited change writes one
outbox row per enabled endpoint in its own transaction (audit.ON_RECORD, so a change that rolls back leaves
no message, and one that commits cannot lose its messages). A timer job (timer.py) in every process sends
what is due, but only the process holding the `webhooks` lease (leases.py) does so at a time; each message
keeps its `webhook-id` across retries, so a receiver deduplicates the rare double delivery (a sender that
stopped between sending and recording). A failed attempt is retried with exponential backoff (RETRY_FIRST
seconds, doubling, at most RETRY_CAP, with up to 10% jitter) until MAX_ATTEMPTS, about a day; an endpoint
that answers again gets its waiting messages at once; one that answers 410 Gone is disabled (no more messages
until "Retry now"). Every attempt is recorded for the dashboard.

Settings: GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE (default off: loopback and private addresses are refused; tests
and a receiver on the same network turn it on), GATEKEEPER_WEBHOOKS_TIMEOUT (seconds per step of a
delivery, default 10).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import current_app, has_app_context
from flask.cli import AppGroup
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from . import leases, timer
from .audit import ON_RECORD, AuditEntry, record
from .errors import StoreError
from .parsing import row_id
from .snapshot import as_utc
from .store import CLI_ACTOR, current_state, store
from .tables import URL_LENGTH, WebhookAttemptRow, WebhookEndpointRow, WebhookMessageRow
from .webhook_http import UrlRefused, check_url, new_message_id, new_secret, post, resolve, signed_headers

logger = logging.getLogger(__name__)

KINDS = ("standard", "slack")
LEASE = "webhooks"
LEASE_SECONDS = 30.0  # a sender that stopped without releasing it is replaced after this long
RUN_SECONDS = 10.0  # one run of the sender stops starting deliveries after this long (well under the lease)
INTERVAL = 1.0  # seconds between runs: how soon a change is sent
BATCH = 100
RETRY_FIRST, RETRY_CAP, MAX_ATTEMPTS = 2.0, 3600.0, 32  # 2 s, 4 s, ... 1 h, ...: about a day in all
KEEP = timedelta(days=7)  # delivered and given-up messages, and attempts, are kept this long
RECENT = 20  # attempts shown per endpoint


class WebhookError(StoreError):
    """A webhook endpoint that cannot be added, or does not exist; nothing was changed."""


@dataclass(frozen=True)
class Endpoint:
    """A URL that receives every change; its secret is shown once, when it is added."""

    id: int
    url: str
    kind: str
    enabled: bool
    created_by: str
    created_at: datetime
    pending: int = 0  # messages waiting to be delivered (retries included)
    failed: int = 0  # messages given up on

    @property
    def shown_url(self) -> str:
        """The URL as pages show it: a Slack URL's path is its secret, so only its host."""
        if self.kind == "slack":
            scheme, host, _port = check_url(self.url)
            return f"{scheme}://{host}/…"
        return self.url

    @property
    def label(self) -> str:
        """How the audit log and messages name it (never the whole URL: a Slack URL is a secret)."""
        return f"webhook #{self.id} ({check_url(self.url)[1]})"


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one message."""

    message_id: str
    event_type: str
    attempt: int
    at: datetime
    status: int | None
    error: str | None
    milliseconds: int
    state: str  # the message's state now: pending, delivered, failed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_delay(attempts: int, jitter: float | None = None) -> float:
    """Seconds to wait after `attempts` failed attempts: RETRY_FIRST doubling up to RETRY_CAP, plus up to 10%
    (`jitter` in [0, 1), random by default) so that many messages do not all come back at once."""
    jitter = random.random() if jitter is None else jitter
    return min(RETRY_CAP, RETRY_FIRST * 2 ** (attempts - 1)) * (1 + 0.1 * jitter)


# --- What is sent -------------------------------------------------------------------------------------------


def standard_body(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The JSON sent to a standard endpoint: `type`, `timestamp` (ISO 8601, UTC) and `data`, minified."""
    payload = {"type": event_type, "timestamp": at.astimezone(UTC).isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def slack_body(text: str) -> str:
    """A Slack incoming webhook's message: `text`, with Slack's three escapes."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return json.dumps({"text": escaped}, ensure_ascii=False)


def change_data(entry: AuditEntry) -> dict[str, Any]:
    """A change as the audit log keeps it, and its sentence."""
    return {
        "id": entry.id,
        "at": entry.at.astimezone(UTC).isoformat(),
        "actor": entry.actor,
        "flag": entry.flag,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
        "user_id": entry.user_id,
        "summary": entry.summary,
    }


def change_text(entry: AuditEntry) -> str:
    """A change in one line, for Slack."""
    reason = f": {entry.reason}" if entry.reason else ""
    return f"{_app_name()}{entry.summary} (by {entry.actor}{reason})"


def _app_name() -> str:
    name = current_app.config.get("APP_NAME") if has_app_context() else None
    return f"[{name}] " if name else ""


def _message(endpoint_id: int, kind: str, event_type: str, at: datetime, data: dict, text: str) -> Any:
    body = slack_body(text) if kind == "slack" else standard_body(event_type, at, data)
    return WebhookMessageRow(
        endpoint_id=endpoint_id,
        message_id=new_message_id(),
        event_type=event_type,
        body=body,
        created_at=at,
        state="pending",
        attempts=0,
        next_attempt_at=at,
    )


def _enqueue_change(session: Session, entry: AuditEntry) -> None:
    """audit.ON_RECORD: one outbox row per enabled endpoint, in the change's own transaction."""
    endpoints = session.execute(
        select(WebhookEndpointRow.id, WebhookEndpointRow.kind).where(WebhookEndpointRow.enabled.is_(True))
    ).all()
    if not endpoints:
        return
    data, text, now = change_data(entry), change_text(entry), datetime.now(UTC)
    event_type = f"change.{entry.action}"
    session.add_all(_message(id_, kind, event_type, now, data, text) for id_, kind in endpoints)


ON_RECORD.append(_enqueue_change)


# --- Endpoints ----------------------------------------------------------------------------------------------


class Webhooks:
    """The endpoints, their deliveries, and the sender, for whichever app is current."""

    def add(self, url: str, *, kind: str = "standard", actor: str) -> tuple[Endpoint, str | None]:
        """Add an endpoint that gets every change from now on; (it, its secret: shown once; None for Slack).

        Refused with WebhookError: a URL that is not http(s), too long, or whose host is a private address
        (unless GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE); a host that does not resolve yet is accepted (it is
        checked again at every delivery)."""
        url = (url or "").strip()
        if kind not in KINDS:
            raise WebhookError(f"A webhook is {' or '.join(KINDS)}, not {kind!r}; nothing was changed.")
        if len(url) > URL_LENGTH:
            raise WebhookError(
                f"The URL is {len(url)} characters; at most {URL_LENGTH}. Nothing was changed."
            )
        try:
            _scheme, host, port = check_url(url)
            resolve(host, port, allow_private=_allow_private())
        except UrlRefused as exc:
            if "does not resolve" not in str(exc):
                raise WebhookError(f"{exc} Nothing was changed.") from None
        secret = new_secret() if kind == "standard" else None
        added: list[Endpoint] = []

        def change(session: Session) -> AuditEntry:
            row = WebhookEndpointRow(
                url=url,
                kind=kind,
                secret=secret,
                enabled=True,
                created_by=actor,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            added.append(_endpoint(row))
            return record(session, actor, "", "add_webhook", added[0].label, None, kind)

        store._write(change)
        return added[0], secret

    def remove(self, endpoint_id: int, *, actor: str) -> AuditEntry | None:
        """Remove an endpoint, its waiting messages and its history; None when there is no such endpoint."""
        if row_id(endpoint_id) is None:
            return None

        def change(session: Session) -> AuditEntry | None:
            row = session.get(WebhookEndpointRow, endpoint_id)
            if row is None:
                return None
            label = _endpoint(row).label
            session.delete(row)
            session.execute(delete(WebhookMessageRow).where(WebhookMessageRow.endpoint_id == endpoint_id))
            session.execute(delete(WebhookAttemptRow).where(WebhookAttemptRow.endpoint_id == endpoint_id))
            return record(session, actor, "", "remove_webhook", label, row.kind, None)

        return store._write(change)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint, oldest first, with how many messages wait and how many were given up on."""
        counts = (
            select(WebhookMessageRow.endpoint_id, WebhookMessageRow.state, func.count())
            .where(WebhookMessageRow.state.in_(("pending", "failed")))
            .group_by(WebhookMessageRow.endpoint_id, WebhookMessageRow.state)
        )
        with store._reading() as session:
            tally = {(id_, state): count for id_, state, count in session.execute(counts)}
            rows = session.scalars(select(WebhookEndpointRow).order_by(WebhookEndpointRow.id)).all()
            return [
                _endpoint(row, tally.get((row.id, "pending"), 0), tally.get((row.id, "failed"), 0))
                for row in rows
            ]

    def endpoint(self, endpoint_id: int) -> Endpoint | None:
        return next((found for found in self.endpoints() if found.id == endpoint_id), None)

    def deliveries(
        self, endpoint_id: int, *, failed_only: bool = False, limit: int = RECENT
    ) -> list[Delivery]:
        """The endpoint's most recent attempts, newest first (only the failed ones, if asked)."""
        query = (
            select(WebhookAttemptRow, WebhookMessageRow)
            .join(WebhookMessageRow, WebhookMessageRow.id == WebhookAttemptRow.message)
            .where(WebhookAttemptRow.endpoint_id == endpoint_id)
            .order_by(WebhookAttemptRow.id.desc())
            .limit(limit)
        )
        if failed_only:
            query = query.where(
                (WebhookAttemptRow.status.is_(None))
                | (WebhookAttemptRow.status < 200)
                | (WebhookAttemptRow.status >= 300)
            )
        with store._reading() as session:
            return [_delivery(attempt, message) for attempt, message in session.execute(query)]

    def send_test(self, endpoint_id: int, *, actor: str) -> Delivery:
        """Put a test message in the endpoint's outbox and try it at once (it is retried like any other)."""
        state = current_state()
        now = datetime.now(UTC)
        with store._reading() as session, session.begin():
            row = session.get(WebhookEndpointRow, endpoint_id) if row_id(endpoint_id) is not None else None
            if row is None:
                raise WebhookError(f"There is no webhook #{endpoint_id}; nothing was sent.")
            label = _endpoint(row).label
            data = {"endpoint": label, "actor": actor, "summary": f"A test message for {label}."}
            text = f"{_app_name()}Gatekeeper test message: this channel now hears about flag changes."
            message = _message(row.id, row.kind, "webhook.test", now, data, text)
            # Not due for the sender until this request's own attempt has been recorded (then it is
            # delivered, or due again after the backoff), so the two do not both send it.
            message.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
            session.add(message)
            session.flush()
            message_pk, url, kind, secret = message.id, row.url, row.kind, row.secret
        _deliver(state.engine, message_pk, url, kind, secret, now)
        with store._reading() as session:
            attempt, message = session.execute(
                select(WebhookAttemptRow, WebhookMessageRow)
                .join(WebhookMessageRow, WebhookMessageRow.id == WebhookAttemptRow.message)
                .where(WebhookAttemptRow.message == message_pk)
                .order_by(WebhookAttemptRow.id.desc())
                .limit(1)
            ).one()
            return _delivery(attempt, message)

    def retry_now(self, endpoint_id: int) -> int:
        """Make the endpoint's waiting messages due now (and its given-up ones pending again), enabling it
        again if it answered 410 Gone; how many."""
        with store._reading() as session, session.begin():
            session.execute(
                update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id).values(enabled=True)
            )
            result = session.execute(
                update(WebhookMessageRow)
                .where(WebhookMessageRow.endpoint_id == endpoint_id, WebhookMessageRow.state != "delivered")
                .values(state="pending", next_attempt_at=datetime.now(UTC), done_at=None)
            )
            return result.rowcount

    # --- The sender ---------------------------------------------------------------------------------------

    def deliver_due(self, now: datetime | None = None) -> int:
        """Send what is due (`now`: the time to compare with; default the clock), if this process holds or
        can take the lease; return how many messages were delivered. The timer's job."""
        engine = current_state().engine
        now = now or datetime.now(UTC)
        with Session(engine) as session:
            if session.scalar(_due(now, set()).limit(1)) is None:
                _prune(engine, now)
                return 0
        if not leases.try_acquire(engine, LEASE, leases.process_holder(), LEASE_SECONDS):
            return 0
        with _held_lock:
            _held.add(engine)
        deadline, delivered, failing = time.monotonic() + RUN_SECONDS, 0, set[int]()
        while time.monotonic() < deadline:
            with Session(engine) as session:
                batch = session.execute(_due(now, failing).limit(BATCH)).all()
            if not batch:
                break
            for message_pk, endpoint_id, url, kind, secret in batch:
                if endpoint_id in failing or time.monotonic() >= deadline:
                    continue
                if _deliver(engine, message_pk, url, kind, secret, now):
                    delivered += 1
                else:
                    failing.add(endpoint_id)  # one failure per endpoint and run: the rest wait their turn
        return delivered


def _due(now: datetime, failing: set[int]) -> Any:
    query = (
        select(
            WebhookMessageRow.id,
            WebhookMessageRow.endpoint_id,
            WebhookEndpointRow.url,
            WebhookEndpointRow.kind,
            WebhookEndpointRow.secret,
        )
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookMessageRow.endpoint_id)
        .where(
            WebhookMessageRow.state == "pending",
            WebhookMessageRow.next_attempt_at <= now,
            WebhookEndpointRow.enabled.is_(True),
        )
        .order_by(WebhookMessageRow.next_attempt_at, WebhookMessageRow.id)
    )
    return query.where(WebhookMessageRow.endpoint_id.not_in(failing)) if failing else query


def _deliver(engine: Engine, message_pk: int, url: str, kind: str, secret: str | None, now: datetime) -> bool:
    """One attempt of one message, recorded with the message's new state; whether it was delivered."""
    with Session(engine) as session:
        message = session.get(WebhookMessageRow, message_pk)
        if message is None or message.state == "delivered":
            return False
        body, message_id, attempts = message.body, message.message_id, message.attempts + 1
        endpoint_id = message.endpoint_id
    headers = {"content-type": "application/json", "user-agent": "gatekeeper-webhooks"}
    if kind == "standard" and secret:
        headers |= signed_headers(secret, message_id, body)
    answer = post(url, body.encode(), headers, timeout=_timeout(), allow_private=_allow_private())
    with Session(engine) as session, session.begin():
        session.add(
            WebhookAttemptRow(
                message=message_pk,
                endpoint_id=endpoint_id,
                attempt=attempts,
                at=now,
                status=answer.status,
                error=answer.error,
                milliseconds=answer.milliseconds,
            )
        )
        values: dict[str, Any] = {"attempts": attempts, "last_error": answer.error}
        if answer.ok:
            values |= {"state": "delivered", "done_at": now}
        elif answer.status == 410:  # Gone: the receiver wants no more (the specification: stop sending)
            values |= {"state": "failed", "done_at": now}
            session.execute(
                update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id).values(enabled=False)
            )
        elif attempts >= MAX_ATTEMPTS:
            values |= {"state": "failed", "done_at": now}
        else:
            values["next_attempt_at"] = now + timedelta(seconds=retry_delay(attempts))
        session.execute(update(WebhookMessageRow).where(WebhookMessageRow.id == message_pk).values(**values))
        if answer.ok:  # the endpoint answers again: what waits for it need not wait its backoff out
            session.execute(
                update(WebhookMessageRow)
                .where(
                    WebhookMessageRow.endpoint_id == endpoint_id,
                    WebhookMessageRow.state == "pending",
                    WebhookMessageRow.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
            )
    return answer.ok


_pruned: dict[int, float] = {}


def _prune(engine: Engine, now: datetime) -> None:
    """Forget delivered and given-up messages and attempts older than KEEP (at most once an hour)."""
    if time.monotonic() - _pruned.get(id(engine), -3600.0) < 3600:
        return
    _pruned[id(engine)] = time.monotonic()
    cutoff = now - KEEP
    with Session(engine) as session, session.begin():
        session.execute(
            delete(WebhookMessageRow).where(
                WebhookMessageRow.state != "pending", WebhookMessageRow.done_at < cutoff
            )
        )
        session.execute(delete(WebhookAttemptRow).where(WebhookAttemptRow.at < cutoff))


def _allow_private() -> bool:
    return bool(current_app.config.get("GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE", False))


def _timeout() -> float:
    return max(0.1, float(current_app.config.get("GATEKEEPER_WEBHOOKS_TIMEOUT", 10.0)))


def _endpoint(row: WebhookEndpointRow, pending: int = 0, failed: int = 0) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        kind=row.kind,
        enabled=row.enabled,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        pending=pending,
        failed=failed,
    )


def _delivery(attempt: WebhookAttemptRow, message: WebhookMessageRow) -> Delivery:
    return Delivery(
        message_id=message.message_id,
        event_type=message.event_type,
        attempt=attempt.attempt,
        at=as_utc(attempt.at),
        status=attempt.status,
        error=attempt.error,
        milliseconds=attempt.milliseconds,
        state=message.state,
    )


# Engines whose lease this process took: given back at exit, so a restarted app sends at once.
_held: set[Engine] = set()
_held_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child holds none of its parent's leases, and gets a lock no parent thread can be holding."""
    global _held_lock
    _held_lock = threading.Lock()
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _release_leases() -> None:
    with _held_lock:
        for engine in _held:
            try:
                leases.release(engine, LEASE, leases.process_holder())
            except Exception:  # the database may be gone at exit; the lease then expires by itself
                logger.debug("could not release the webhooks lease", exc_info=True)


def init_app() -> None:
    """Register the sender with the timer (every process; the lease picks one at a time)."""
    timer.every("gatekeeper-webhooks", INTERVAL, webhooks.deliver_due)


webhooks = Webhooks()


# --- `flask gk webhooks add | list | remove | test` (cli.py adds the group) ---------------------------------

webhooks_cli = AppGroup("webhooks", help="URLs that receive every change (Standard Webhooks, or Slack).")


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--slack", is_flag=True, help="URL is a Slack incoming webhook: send Slack messages.")
def add_command(url: str, slack: bool) -> None:
    """Send every change from now on to URL."""
    try:
        endpoint, secret = webhooks.add(url, kind="slack" if slack else "standard", actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added {endpoint.label}: {endpoint.kind}.")
    if secret:
        click.echo(f"Signing secret (shown once; the receiver verifies with it): {secret}")


@webhooks_cli.command("list")
def list_command() -> None:
    """List the endpoints, with their waiting and given-up messages."""
    try:
        found = webhooks.endpoints()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for endpoint in found:
        click.echo(
            f"#{endpoint.id}  {endpoint.kind:8}  {endpoint.url}  "
            f"{endpoint.pending} waiting, {endpoint.failed} given up"
        )
    if not found:
        click.echo("No webhooks yet: `flask gk webhooks add URL [--slack]`.")


@webhooks_cli.command("remove")
@click.argument("endpoint_id", type=int)
def remove_command(endpoint_id: int) -> None:
    """Remove webhook ENDPOINT_ID and what waits for it."""
    try:
        entry = webhooks.remove(endpoint_id, actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if entry is None:
        raise click.ClickException(f"There is no webhook #{endpoint_id}; nothing was changed.")
    click.echo(entry.summary)


@webhooks_cli.command("test")
@click.argument("endpoint_id", type=int)
def test_command(endpoint_id: int) -> None:
    """Send a test message to webhook ENDPOINT_ID now, and say how it went."""
    try:
        delivery = webhooks.send_test(endpoint_id, actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not delivery.ok:
        raise click.ClickException(
            f"The test message was not delivered ({delivery.error}); it will be retried."
        )
    click.echo(f"Delivered: HTTP {delivery.status} in {delivery.milliseconds} ms.")
