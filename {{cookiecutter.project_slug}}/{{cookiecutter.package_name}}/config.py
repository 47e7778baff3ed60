"""Settings from environment variables (and `.env`), with safe defaults for local development."""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
{%- if cookiecutter.database == "sqlite" %}
from pathlib import Path
{%- endif %}
from urllib.parse import urlsplit

from dotenv import load_dotenv
from limits import parse_many

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


def _share(environ: Mapping[str, str], name: str) -> float:
    value = (environ.get(name) or "").strip()
    if not value:
        return 0.0
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"{name}={value!r} is not a share from 0 to 1: set it to e.g. {name}=0.1")
    return share


def _url_prefix(environ: Mapping[str, str], name: str, default: str) -> str:
    value = (environ.get(name) or default).strip()
    if not value.startswith("/") or not value.strip("/"):
        raise ConfigError(f"{name}={value!r} must be a path below the site root, e.g. {name}={default}")
    return value.rstrip("/")


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    value = (environ.get(name) or "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit():
        raise ConfigError(f"{name}={value!r} is not a whole number: set it to e.g. {name}=1")
    return int(value)


def _hosts(environ: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    hosts = tuple(host.strip() for host in (environ.get(name) or "").split(",") if host.strip())
    return hosts or None


def _rate_limit(environ: Mapping[str, str], name: str, default: str) -> str:
    value = (environ.get(name) or default).strip()
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name}={value!r} is not a rate limit: set it to e.g. {name}='{default}'"
        ) from None
    return value


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated web origins (scheme://host[:port], no path), for CORS."""
    origins = tuple(origin.strip() for origin in (environ.get(name) or "").split(",") if origin.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.netloc
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ConfigError(
                f"{name}: {origin!r} is not an origin: write scheme://host[:port] with no path or trailing "
                f"slash, e.g. {name}=https://app.example.com"
            )
    return origins


def _ofrep_prefix(environ: Mapping[str, str], name: str) -> str:
    value = _url_prefix(environ, name, "/ofrep")
    if not value.endswith("/ofrep"):
        raise ConfigError(
            f"{name}={value!r}: OFREP clients add /ofrep/v1/... to their base URL, so it must end in /ofrep, "
            f"e.g. {name}=/api/ofrep (and base URL https://your.site/api)"
        )
    return value


def _change_feed(environ: Mapping[str, str], name: str, database_url: str) -> str:
    """How store changes reach the other processes: "" (automatic), a Redis URL, "postgresql" or "none"."""
    value = (environ.get(name) or "").strip()
    choice = value.lower()
    if choice in {"", "none"} or (choice == "postgresql" and database_url.startswith("postgresql")):
        return choice
    if choice == "postgresql":
        raise ConfigError(
            f"{name}=postgresql needs a PostgreSQL DATABASE_URL: leave {name} empty, or set "
            f"{name}=redis://127.0.0.1:6379/0 for Redis"
        )
    if value.startswith(("redis://", "rediss://")) and _has_host_and_port(value):
        return value
    raise ConfigError(
        f"{name}={value!r} is not a change feed: leave it empty (automatic), or set it to a Redis URL like "
        f"{name}=redis://127.0.0.1:6379/0, or to postgresql or none"
    )


def _has_host_and_port(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when the port is not a number
    except ValueError:
        return False
    return bool(parts.hostname)


# Only this site's own files: no inline script or style (templates carry none), no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
    GATEKEEPER_STORE_PUSH: bool
    GATEKEEPER_STORE_LISTEN_URL: str
    # Cookies are not sent on cross-site POSTs: a second line of defence behind the CSRF tokens.
    SESSION_COOKIE_SAMESITE: str = "Lax"
    REMEMBER_COOKIE_SAMESITE: str = "Lax"
    # Security (see security.py): Flask's own TRUSTED_HOSTS, how many proxies stand in front, the CSP.
    TRUSTED_HOSTS: tuple[str, ...] | None = None
    PROXY_COUNT: int = 0
    # Whether those proxies set X-Forwarded-Prefix (the app served under a path): off unless they do, since a
    # proxy that passes the client's own header through would let anyone move every link of a page.
    PROXY_PREFIX: bool = False
    CONTENT_SECURITY_POLICY: str = CONTENT_SECURITY_POLICY
    # Login throttling (Flask-Limiter): failed attempts per account and per client address. The storage is
    # per process by default; with several processes give them a shared one, e.g. redis://localhost:6379.
    LOGIN_LIMIT_PER_ACCOUNT: str = "5 per minute"
    LOGIN_LIMIT_PER_ADDRESS: str = "20 per minute"
    GATEKEEPER_API_RATE_LIMIT: str = "600 per minute"  # admin API calls per token (Flask-Limiter notation)
    RATELIMIT_ENABLED: bool = True
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_STRATEGY: str = "moving-window"
    RATELIMIT_HEADERS_ENABLED: bool = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED: bool = True  # a shared storage that goes away still throttles
    GATEKEEPER_EXPOSURES: bool = True
    GATEKEEPER_EXPOSURES_FLUSH: float = 10.0
    GATEKEEPER_OPENTELEMETRY: bool = True  # span events, when opentelemetry-api is installed
    # How a change reaches the other processes: "" automatic (LISTEN/NOTIFY on PostgreSQL, the TTL alone on
    # SQLite), a redis:// URL (Redis pub/sub), "postgresql" or "none" (the TTL alone).
    GATEKEEPER_CHANGE_FEED: str = ""
    # Webhooks (gatekeeper_control/webhooks.py): loopback and private addresses refused unless allowed;
    # seconds each step of a delivery (connect, send, read) may take.
    GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE: bool = False
    GATEKEEPER_WEBHOOKS_TIMEOUT: float = 10.0
    # A thread in each process that applies due scheduled changes on time, traffic or not (off: the first
    # request after their time applies them).
    GATEKEEPER_TIMER: bool = True
    # Request outcomes per flag variant (errors, latency, tracked metrics), for guarded releases: counted only
    # for the requests that ask a flag a release is under way on.
    GATEKEEPER_OUTCOMES: bool = True
    GATEKEEPER_OUTCOMES_FLUSH: float = 5.0  # seconds between the background writes of outcomes
    # For trying guarded releases only: the share of home pages that fail when NEW_CHECKOUT is ON (views.py).
    DEMO_BROKEN_CHECKOUT: float = 0.0
    # Guarded releases: seconds between due checks, and each step's default minimum time and sample.
    GATEKEEPER_RELEASE_CHECK_SECONDS: float = 10.0
    GATEKEEPER_RELEASE_MIN_SECONDS: float = 600.0
    GATEKEEPER_RELEASE_MIN_SAMPLE: int = 500
    # OFREP (gatekeeper_control/ofrep.py): where it is served, which other sites' pages may call it with a
    # client key (CORS; none by default), and how many evaluation requests one key or address may make.
    GATEKEEPER_OFREP_PREFIX: str = "/ofrep"
    GATEKEEPER_OFREP_CORS_ORIGINS: tuple[str, ...] = ()
    GATEKEEPER_OFREP_RATE_LIMIT: str = "600 per minute"

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
{%- if cookiecutter.database == "postgresql" %}
        # The local server's default socket, as your own user: `createdb {{ cookiecutter.project_slug }}` once.
        default_db = "postgresql+psycopg:///{{ cookiecutter.project_slug }}"
{%- else %}
        default_db = "sqlite:///" + str(Path(instance_path) / "app.db")
{%- endif %}
        secure_cookies = _bool(environ, "SECURE_COOKIES")
        database_url = environ.get("DATABASE_URL") or default_db
        return cls(
            SECRET_KEY=secret_key,
            SQLALCHEMY_DATABASE_URI=database_url,
            APP_NAME=environ.get("APP_NAME") or {{ cookiecutter.project_name|py_string }},
            IS_DEV=_bool(environ, "IS_DEV"),
            SESSION_COOKIE_SECURE=secure_cookies,
            REMEMBER_COOKIE_SECURE=secure_cookies,
            GATEKEEPER_URL_PREFIX=_url_prefix(environ, "GATEKEEPER_URL_PREFIX", "/gatekeeper"),
            GATEKEEPER_STORE_TTL=_seconds(environ, "GATEKEEPER_STORE_TTL", 5.0),
            TRUSTED_HOSTS=_hosts(environ, "TRUSTED_HOSTS"),
            PROXY_COUNT=_count(environ, "PROXY_COUNT", 0),
            PROXY_PREFIX=_bool(environ, "PROXY_PREFIX"),
            LOGIN_LIMIT_PER_ACCOUNT=_rate_limit(
                environ, "LOGIN_LIMIT_PER_ACCOUNT", cls.LOGIN_LIMIT_PER_ACCOUNT
            ),
            LOGIN_LIMIT_PER_ADDRESS=_rate_limit(
                environ, "LOGIN_LIMIT_PER_ADDRESS", cls.LOGIN_LIMIT_PER_ADDRESS
            ),
            GATEKEEPER_API_RATE_LIMIT=_rate_limit(
                environ, "GATEKEEPER_API_RATE_LIMIT", cls.GATEKEEPER_API_RATE_LIMIT
            ),
            RATELIMIT_STORAGE_URI=environ.get("RATELIMIT_STORAGE_URI") or cls.RATELIMIT_STORAGE_URI,
            GATEKEEPER_STORE_PUSH=_bool(environ, "GATEKEEPER_STORE_PUSH", default=True),
            GATEKEEPER_STORE_LISTEN_URL=(environ.get("GATEKEEPER_STORE_LISTEN_URL") or "").strip(),
            GATEKEEPER_EXPOSURES=_bool(environ, "GATEKEEPER_EXPOSURES", True),
            GATEKEEPER_EXPOSURES_FLUSH=_seconds(environ, "GATEKEEPER_EXPOSURES_FLUSH", 10.0),
            GATEKEEPER_OPENTELEMETRY=_bool(environ, "GATEKEEPER_OPENTELEMETRY", True),
            GATEKEEPER_CHANGE_FEED=_change_feed(environ, "GATEKEEPER_CHANGE_FEED", database_url),
            GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE=_bool(environ, "GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE"),
            GATEKEEPER_WEBHOOKS_TIMEOUT=_seconds(environ, "GATEKEEPER_WEBHOOKS_TIMEOUT", 10.0),
            GATEKEEPER_TIMER=_bool(environ, "GATEKEEPER_TIMER", default=True),
            GATEKEEPER_OUTCOMES=_bool(environ, "GATEKEEPER_OUTCOMES", True),
            GATEKEEPER_OUTCOMES_FLUSH=_seconds(environ, "GATEKEEPER_OUTCOMES_FLUSH", 5.0),
            DEMO_BROKEN_CHECKOUT=_share(environ, "DEMO_BROKEN_CHECKOUT"),
            GATEKEEPER_RELEASE_CHECK_SECONDS=_seconds(environ, "GATEKEEPER_RELEASE_CHECK_SECONDS", 10.0),
            GATEKEEPER_RELEASE_MIN_SECONDS=_seconds(environ, "GATEKEEPER_RELEASE_MIN_SECONDS", 600.0),
            GATEKEEPER_RELEASE_MIN_SAMPLE=_count(environ, "GATEKEEPER_RELEASE_MIN_SAMPLE", 500),
            GATEKEEPER_OFREP_PREFIX=_ofrep_prefix(environ, "GATEKEEPER_OFREP_PREFIX"),
            GATEKEEPER_OFREP_CORS_ORIGINS=_origins(environ, "GATEKEEPER_OFREP_CORS_ORIGINS"),
            GATEKEEPER_OFREP_RATE_LIMIT=_rate_limit(
                environ, "GATEKEEPER_OFREP_RATE_LIMIT", cls.GATEKEEPER_OFREP_RATE_LIMIT
            ),
        )
