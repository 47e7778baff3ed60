"""API tokens and OFREP client keys: created once, stored hashed, checked against the database on every call.

A token is shown once, when it is made (`gk_` and 43 random URL-safe characters: 256 bits); only its SHA-256
is stored, with its first characters (`prefix`) so that lists can tell tokens apart. Scopes: `read` (the
admin API's GETs), `write` (every change, and reads: write implies read) and `evaluate` (an OFREP client key:
flag evaluation only, implied by neither).

`authenticate` looks the hash up in the database on every call, so a revocation holds at once in every
process, with no cache to wait for; a database that cannot be reached refuses the call
(StoreUnavailableError) rather than trusting what a process remembers. Creating and revoking are audited
through the store's one write path (never the token); `last_used_at` is bookkeeping, written at most once a
minute per token, outside the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .audit import TARGETING_SUMMARY, TARGETING_WHAT, AuditEntry, record
from .checks import quote
from .errors import OverrideError, StoreError, StoreUnavailableError
from .snapshot import DATABASE_ERRORS, as_utc, describe_error
from .store import CLI_ACTOR, current_state, store
from .tables import LABEL_LENGTH, NAME_LENGTH, TokenRow

SCOPES = ("evaluate", "read", "write")
# What each scope also grants: write implies read; evaluate (a client key) is its own.
IMPLIED = {"write": {"write", "read"}, "read": {"read"}, "evaluate": {"evaluate"}}
TOKEN_PREFIX = "gk_"
SHOWN_CHARACTERS = 10  # of the token, kept in clear in `prefix` ("gk_" and 7 more)
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

TARGETING_WHAT.update({"create_token": "token {target} created", "revoke_token": "token {target} revoked"})
TARGETING_SUMMARY.update(
    {
        "create_token": "Token {entry.target} created ({entry.after}).",
        "revoke_token": "Token {entry.target} revoked.",
    }
)


class TokenError(OverrideError):
    """A token that cannot be made or revoked as asked (bad name, scope or date; a duplicate); nothing
    was written."""


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its hash."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def grants(self, scope: str) -> bool:
        """Whether this token may do what `scope` allows (write implies read)."""
        return scope in IMPLIED.get(self.scope, ())

    def usable(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired."""
        now = now or datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def state(self) -> str:
        """'revoked', 'expired' or 'active', for lists."""
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.usable() else "expired"


def hash_token(raw: str) -> str:
    """The stored form of a token: SHA-256, hex (a token is random, so no salt or slow hash is needed)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """When a token stops working: an ISO date (valid through that day, UTC) or date and time (UTC when it
    names no zone); None for never. Raises TokenError for a past or unreadable date."""
    if text is None or not str(text).strip():
        return None
    now = now or datetime.now(UTC)
    text = str(text).strip()
    try:
        if len(text) == 10:
            moment = datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise TokenError(
            f"{quote(text[:40])} is not a date: write it as 2030-12-31 or 2030-12-31T18:00Z."
        ) from None
    if moment <= now:
        raise TokenError(f"{text} is in the past: a token must expire in the future (or never).")
    return moment


def create_token(
    name: str, scope: str, *, actor: str, expires_at: datetime | None = None
) -> tuple[TokenInfo, str]:
    """Make a token; return its record and the raw token, which is shown once and never stored."""
    name = (name or "").strip() if isinstance(name, str) else ""
    if not _NAME.fullmatch(name):
        raise TokenError(
            f"{quote(name[:70])} cannot name a token: use letters, digits, '.', '_', '@' or '-' (up to 64)."
        )
    if scope not in SCOPES:
        raise TokenError(f"{quote(str(scope)[:20])} is not a scope: choose one of {', '.join(SCOPES)}.")
    if expires_at is not None:
        expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise TokenError("That expiry is in the past: a token must expire in the future (or never).")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    made: list[TokenInfo] = []

    def change(session: Session) -> AuditEntry:
        if session.scalar(select(TokenRow.id).where(TokenRow.name == name)) is not None:
            raise TokenError(f"A token named {name} exists already: choose another name, or revoke it first.")
        row = TokenRow(
            name=name,
            scope=scope,
            token_hash=hash_token(raw),
            prefix=raw[:SHOWN_CHARACTERS],
            created_at=datetime.now(UTC),
            created_by=actor[:LABEL_LENGTH],
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        made.append(_info(row))
        return record(session, actor, "", "create_token", name, None, scope)

    store._write(change)
    return made[0], raw


def authenticate(raw: str, scopes: Collection[str]) -> TokenInfo | None:
    """The record of the token `raw` when it is known, not revoked, not expired and grants one of `scopes`;
    else None. Reads the database on every call; raises StoreUnavailableError when it cannot be reached."""
    if not isinstance(raw, str) or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    state = current_state()
    now = datetime.now(UTC)
    try:
        with Session(state.engine) as session:
            row = session.scalar(select(TokenRow).where(TokenRow.token_hash == hash_token(raw)))
            if row is None:
                return None
            info = _info(row)
            if not info.usable(now) or not any(info.grants(scope) for scope in scopes):
                return None
            if info.last_used_at is None or now - info.last_used_at >= LAST_USED_EVERY:
                session.execute(update(TokenRow).where(TokenRow.id == row.id).values(last_used_at=now))
                session.commit()
    except DATABASE_ERRORS as exc:
        state.mark_unavailable(exc)
        raise StoreUnavailableError(
            f"Tokens cannot be checked: the database is unavailable ({describe_error(exc)})."
        ) from exc
    return info


def revoke_token(name: str, *, actor: str) -> None:
    """Revoke the token `name` at once, in every process (the next call of `authenticate` reads it)."""

    def change(session: Session) -> AuditEntry:
        row = session.scalar(select(TokenRow).where(TokenRow.name == name)) if _fits(name) else None
        if row is None:
            raise TokenError(
                f"There is no token named {quote(str(name)[:70])}: `flask gk tokens list` names them."
            )
        if row.revoked_at is not None:
            raise TokenError(f"Token {name} was revoked already; nothing changed.")
        row.revoked_at = datetime.now(UTC)
        return record(session, actor, "", "revoke_token", name, row.scope, None)

    store._write(change)


def list_tokens() -> list[TokenInfo]:
    """Every token and client key, newest first (revoked ones too). Raises StoreUnavailableError."""
    with store._reading() as session:
        return [_info(row) for row in session.scalars(select(TokenRow).order_by(TokenRow.id.desc()))]


def _fits(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= NAME_LENGTH and "\x00" not in name


def _info(row: TokenRow) -> TokenInfo:
    def utc(moment: datetime | None) -> datetime | None:
        return as_utc(moment) if moment is not None else None

    return TokenInfo(
        id=row.id,
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        expires_at=utc(row.expires_at),
        last_used_at=utc(row.last_used_at),
        revoked_at=utc(row.revoked_at),
    )


# --- `flask gk tokens ...` and `flask gk keys ...` (cli.py adds the groups) ---------------------------------

tokens_cli = AppGroup("tokens", help="Admin API tokens: create (shown once), list, revoke.")
keys_cli = AppGroup("keys", help="OFREP client keys (tokens of scope `evaluate`): create, list, revoke.")


def _create(name: str, scope: str, expires: str | None) -> None:
    try:
        info, raw = create_token(name, scope, actor=CLI_ACTOR, expires_at=parse_expiry(expires))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    until = f", until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
    click.echo(f"Token {info.name} ({info.scope}{until}). Copy it now: it is not shown again.", err=True)
    click.echo(raw)


def _list(scopes: Collection[str]) -> None:
    try:
        listed = [info for info in list_tokens() if info.scope in scopes]
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not listed:
        click.echo("No tokens.")
    for info in listed:
        used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
        expires = f" expires {info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at else ""
        click.echo(f"{info.name}  {info.scope}  {info.prefix}...  {info.state}  last used {used}{expires}")


def _revoke(name: str) -> None:
    try:
        revoke_token(name, actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Token {name} revoked: every process refuses it from now on.")


expires_option = click.option(
    "--expires", default=None, metavar="DATE", help="Last day it works (2030-12-31, UTC), or a date and time."
)


@tokens_cli.command("create")
@click.argument("name")
@click.option(
    "--scope", type=click.Choice(SCOPES), required=True, help="read, write (implies read), evaluate."
)
@expires_option
def create_command(name: str, scope: str, expires: str | None) -> None:
    """Make a token NAME and print it once (stdout; the note goes to stderr)."""
    _create(name, scope, expires)


@tokens_cli.command("list")
def list_command() -> None:
    """Every token: name, scope, first characters, state, last use."""
    _list(SCOPES)


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Revoke token NAME at once, in every process."""
    _revoke(name)


@keys_cli.command("create")
@click.argument("name")
@expires_option
def create_key_command(name: str, expires: str | None) -> None:
    """Make an OFREP client key NAME (scope evaluate) and print it once."""
    _create(name, "evaluate", expires)


@keys_cli.command("list")
def list_keys_command() -> None:
    """Every client key."""
    _list(("evaluate",))


@keys_cli.command("revoke")
@click.argument("name")
def revoke_key_command(name: str) -> None:
    """Revoke client key NAME at once."""
    _revoke(name)
