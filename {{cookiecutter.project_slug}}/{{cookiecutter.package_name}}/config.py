"""Settings from environment variables (and `.env`), with safe defaults for local development."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

log = logging.getLogger(__name__)


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number: set it to seconds, e.g. {name}=5") from None


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment, read once at start-up."""

    SECRET_KEY: str
    SQLALCHEMY_DATABASE_URI: str
    APP_NAME: str
    IS_DEV: bool
    SESSION_COOKIE_SECURE: bool
    REMEMBER_COOKIE_SECURE: bool
    GATEKEEPER_URL_PREFIX: str
    GATEKEEPER_STORE_TTL: float

    @classmethod
    def from_env(cls, instance_path: str) -> Settings:
        """Read settings; `.env` fills in what the real environment does not set."""
        load_dotenv()
        secret_key = os.environ.get("SECRET_KEY")
        if not secret_key:
            # A random key keeps sessions safe but logs everyone out on restart: say so.
            log.warning("SECRET_KEY is not set; using a random key for this process only.")
            secret_key = secrets.token_hex(32)
        default_db = "sqlite:///" + str(Path(instance_path) / "app.db")
        secure_cookies = _env_bool("SECURE_COOKIES")
        return cls(
            SECRET_KEY=secret_key,
            SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL") or default_db,
            APP_NAME=os.environ.get("APP_NAME") or {{ cookiecutter.project_name|jsonify }},
            IS_DEV=_env_bool("IS_DEV"),
            SESSION_COOKIE_SECURE=secure_cookies,
            REMEMBER_COOKIE_SECURE=secure_cookies,
            GATEKEEPER_URL_PREFIX=os.environ.get("GATEKEEPER_URL_PREFIX") or "/gatekeeper",
            GATEKEEPER_STORE_TTL=_env_float("GATEKEEPER_STORE_TTL", 5.0),
        )
