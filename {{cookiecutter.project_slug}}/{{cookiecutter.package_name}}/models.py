"""The app's database models: users who log in."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

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

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"
