"""The app's database models: users who log in."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, validates
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

# SQLite and PostgreSQL integer keys are signed 64-bit; a longer "id" typed by someone is simply not a user.
_MAX_ID = 2**63 - 1


def new_session_token() -> str:
    """A fresh random token: what the session and remember-me cookies name a user by."""
    return secrets.token_urlsafe(32)


class User(UserMixin, db.Model):
    """Someone who can log in; admins may also open the flag dashboard."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    # Flask-Login's "alternative id": cookies carry this token, not the id, so a new token ends every session
    # and remember-me cookie the user had (on logout, password change and `flask users revoke`).
    session_token: Mapped[str] = mapped_column(String(64), unique=True, index=True, default=new_session_token)

    @validates("email")
    def _normalize_email(self, key: str, email: str) -> str:
        # Stored lower-case so the unique index also rejects `Ann@x` next to `ann@x`.
        return email.strip().lower()

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the remember-me cookie: the session token."""
        if self.session_token is None:  # a user not yet flushed to the database
            self.session_token = new_session_token()
        return self.session_token

    def revoke_sessions(self) -> None:
        """End every session and remember-me cookie of this user (takes effect on commit)."""
        self.session_token = new_session_token()

    def set_password(self, password: str) -> None:
        """Set a new password; sessions opened with the old one end."""
        self.password_hash = generate_password_hash(password)
        self.revoke_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @classmethod
    def find_by_email(cls, email: str) -> User | None:
        """The user with this email (case-insensitive), if there is one."""
        if "\x00" in email:  # PostgreSQL refuses NUL in text outright; no stored email holds one
            return None
        query = db.select(cls).filter(db.func.lower(cls.email) == email.strip().lower())
        return db.session.execute(query).scalar_one_or_none()

    @classmethod
    def search(cls, text: str, limit: int = 20) -> list[User]:
        """Users whose email contains `text` (any case), by email, at most `limit`: a look-up by part of an
        email, such as "ann" or "@example.com"."""
        text = text.strip().lower()
        if not text or "\x00" in text:
            return []
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = db.select(cls).where(db.func.lower(cls.email).like(pattern, escape="\\"))
        return list(db.session.scalars(query.order_by(cls.email).limit(limit)))

    @classmethod
    def find_by_session_token(cls, token: str) -> User | None:
        """The user whose current session token this is (None for a revoked or unknown one)."""
        return db.session.execute(db.select(cls).filter_by(session_token=token)).scalar_one_or_none()

    @classmethod
    def find(cls, email_or_id: str | int) -> User | None:
        """The user with this email (case-insensitive) or numeric id, if there is one."""
        text = str(email_or_id).strip()
        if text.isascii() and text.isdigit():
            number = int(text)
            return db.session.get(cls, number) if number <= _MAX_ID else None
        return cls.find_by_email(text)

    @classmethod
    def find_many(cls, emails_or_ids: Sequence[str]) -> dict[str, User]:
        """The users these emails (case-insensitive) or numeric ids name, {text: user}; a few queries in all,
        however many texts (a pasted list of group members)."""
        texts = [str(text).strip() for text in emails_or_ids]
        ids = {
            text: int(text) for text in texts if text.isascii() and text.isdigit() and int(text) <= _MAX_ID
        }
        emails = {text: text.lower() for text in texts if text not in ids and "\x00" not in text}
        by_id: dict[int, User] = {}
        by_email: dict[str, User] = {}
        for chunk in _chunks(sorted(set(ids.values()))):
            by_id.update(
                (user.id, user) for user in db.session.scalars(db.select(cls).where(cls.id.in_(chunk)))
            )
        for chunk in _chunks(sorted(set(emails.values()))):
            query = db.select(cls).where(db.func.lower(cls.email).in_(chunk))
            by_email.update((user.email.lower(), user) for user in db.session.scalars(query))
        found = {text: by_id.get(number) for text, number in ids.items()}
        found.update((text, by_email.get(email)) for text, email in emails.items())
        return {text: user for text, user in found.items() if user is not None}

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


def _chunks(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """`values` in lists of `size`: an IN list within every database's limit on bound parameters."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
