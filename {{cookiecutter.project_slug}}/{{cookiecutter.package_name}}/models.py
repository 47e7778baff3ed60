"""The app's database models: users who log in."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @classmethod
    def find(cls, email_or_id: str | int) -> User | None:
        """The user with this email (case-insensitive) or numeric id, if there is one."""
        text = str(email_or_id).strip()
        if text.isdigit():
            return db.session.get(cls, int(text))
        return db.session.execute(db.select(cls).filter(db.func.lower(cls.email) == text.lower())).scalar_one_or_none()

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"
