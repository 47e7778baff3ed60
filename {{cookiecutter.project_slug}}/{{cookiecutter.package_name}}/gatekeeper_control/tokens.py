"""API tokens: scoped, stored hashed, shown once (`evaluate` keys for OFREP; `read`, `write` for admins).

STAND-IN (helper ofrep): the smallest working version of the interface in INTERFACES.md; the api helper's
module replaces it.
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
from sqlalchemy import select
from sqlalchemy.orm import Session

from .audit import record
from .errors import OverrideError
from .store import CLI_ACTOR, current_state, store
from .tables import TokenRow

SCOPES = ("evaluate", "read", "write")
_IMPLIED = {"write": {"write", "read"}, "read": {"read"}, "evaluate": {"evaluate"}}
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PREFIX_LENGTH = 8
_LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(OverrideError):
    """A token that cannot be created or revoked as asked; nothing was written."""


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.name,
        row.scope,
        row.prefix,
        _utc(row.created_at),
        row.created_by,
        _utc(row.expires_at),
        _utc(row.last_used_at),
        _utc(row.revoked_at),
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    name: str, scope: str, *, actor: str, expires_at: datetime | None = None
) -> tuple[TokenInfo, str]:
    """Create token NAME with `scope`; return its record and the raw token (shown once, never stored)."""
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise TokenError(f"{name!r} cannot name a token: use letters, digits, '.', '_' or '-' (up to 64).")
    if scope not in SCOPES:
        raise TokenError(f"{scope!r} is not a scope: use one of {', '.join(SCOPES)}.")
    raw = "gk_" + secrets.token_urlsafe(32)
    created: list[TokenRow] = []

    def change(session: Session):  # type: ignore[no-untyped-def]
        if session.scalar(select(TokenRow).where(TokenRow.name == name)) is not None:
            raise TokenError(f"A token named {name} exists already: choose another name, or revoke it first.")
        row = TokenRow(
            name=name,
            scope=scope,
            token_hash=_hash(raw),
            prefix=raw[:_PREFIX_LENGTH],
            created_at=datetime.now(UTC),
            created_by=actor,
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        created.append(row)
        entry = record(session, actor, "", "create_token", name, None, scope)
        session.expunge(row)
        return entry

    store._write(change)
    return _info(created[0]), raw


def authenticate(raw: str, scopes: Collection[str]) -> TokenInfo | None:
    """The token's record when `raw` is a live token with one of `scopes` (after implication), else None."""
    if not raw or len(raw) > 200:
        return None
    now = datetime.now(UTC)
    with Session(current_state().engine) as session:
        row = session.scalar(select(TokenRow).where(TokenRow.token_hash == _hash(raw)))
        if row is None or row.revoked_at is not None:
            return None
        expires = _utc(row.expires_at)
        if expires is not None and expires <= now:
            return None
        if not _IMPLIED.get(row.scope, set()) & set(scopes):
            return None
        used = _utc(row.last_used_at)
        if used is None or now - used >= _LAST_USED_EVERY:
            row.last_used_at = now
            session.commit()
        return _info(row)


def revoke_token(name: str, *, actor: str) -> None:
    """Revoke token NAME at once, in every process."""

    def change(session: Session):  # type: ignore[no-untyped-def]
        row = session.scalar(select(TokenRow).where(TokenRow.name == name))
        if row is None or row.revoked_at is not None:
            raise TokenError(f"There is no live token named {name!r}: `flask gk tokens list` shows them.")
        row.revoked_at = datetime.now(UTC)
        return record(session, actor, "", "revoke_token", name, row.scope, None)

    store._write(change)


def list_tokens() -> list[TokenInfo]:
    with Session(current_state().engine) as session:
        return [_info(row) for row in session.scalars(select(TokenRow).order_by(TokenRow.name))]


def _group(name: str, scope: str | None) -> AppGroup:
    group = AppGroup(name, help=f"API {'keys (scope evaluate, for OFREP)' if scope else 'tokens'}.")

    @group.command("create")
    @click.argument("token_name")
    @click.option("--scope", type=click.Choice(SCOPES), default=scope or "read", show_default=True)
    def create_command(token_name: str, scope: str) -> None:
        """Create a token and print it once."""
        try:
            _, raw = create_token(token_name, scope, actor=CLI_ACTOR)
        except TokenError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(raw)

    @group.command("list")
    def list_command() -> None:
        """List tokens (never the tokens themselves)."""
        for info in list_tokens():
            if scope is None or info.scope == scope:
                state = "revoked" if info.revoked_at else "live"
                click.echo(f"{info.name}\t{info.scope}\t{info.prefix}...\t{state}")

    @group.command("revoke")
    @click.argument("token_name")
    def revoke_command(token_name: str) -> None:
        """Revoke a token at once."""
        try:
            revoke_token(token_name, actor=CLI_ACTOR)
        except TokenError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Revoked {token_name}.")

    return group


tokens_cli = _group("tokens", None)
keys_cli = _group("keys", "evaluate")
