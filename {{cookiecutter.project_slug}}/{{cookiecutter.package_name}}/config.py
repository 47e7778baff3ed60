"""Settings from environment variables (and `.env`), with safe defaults for local development."""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An environment variable holds a value the app cannot use; the message says what to set instead."""


def _bool(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{name}={value!r} is not a number of seconds: set it to e.g. {name}=5")
    return seconds


def _url_prefix(environ: Mapping[str, str], name: str, default: str) -> str:
    value = (environ.get(name) or default).strip()
    if not value.startswith("/") or not value.strip("/"):
        raise ConfigError(f"{name}={value!r} must be a path below the site root, e.g. {name}={default}")
    return value.rstrip("/")


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
    # Cookies are not sent on cross-site POSTs: a second line of defence behind the CSRF tokens.
    SESSION_COOKIE_SAMESITE: str = "Lax"
    REMEMBER_COOKIE_SAMESITE: str = "Lax"
    GATEKEEPER_EXPOSURES: bool = True
    GATEKEEPER_EXPOSURES_FLUSH: float = 10.0

    @classmethod
    def from_env(cls, instance_path: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: the process environment, with `.env` filling the gaps)."""
        if environ is None:
            load_dotenv()
            environ = os.environ
        secret_key = environ.get("SECRET_KEY")
        if not secret_key:
            # A random key keeps sessions safe but logs everyone out on restart: say so.
            log.warning("SECRET_KEY is not set; using a random key for this process only.")
            secret_key = secrets.token_hex(32)
        default_db = "sqlite:///" + str(Path(instance_path) / "app.db")
        secure_cookies = _bool(environ, "SECURE_COOKIES")
        return cls(
            SECRET_KEY=secret_key,
            SQLALCHEMY_DATABASE_URI=environ.get("DATABASE_URL") or default_db,
            APP_NAME=environ.get("APP_NAME") or {{ cookiecutter.project_name|py_string }},
            IS_DEV=_bool(environ, "IS_DEV"),
            SESSION_COOKIE_SECURE=secure_cookies,
            REMEMBER_COOKIE_SECURE=secure_cookies,
            GATEKEEPER_URL_PREFIX=_url_prefix(environ, "GATEKEEPER_URL_PREFIX", "/gatekeeper"),
            GATEKEEPER_STORE_TTL=_seconds(environ, "GATEKEEPER_STORE_TTL", 5.0),
            GATEKEEPER_EXPOSURES=_bool(environ, "GATEKEEPER_EXPOSURES", True),
            GATEKEEPER_EXPOSURES_FLUSH=_seconds(environ, "GATEKEEPER_EXPOSURES_FLUSH", 10.0),
        )
