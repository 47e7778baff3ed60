"""OFREP, the OpenFeature Remote Evaluation Protocol: gatekeeper's flags for browsers, apps and services.

`POST <prefix>/v1/evaluate/flags/{key}` evaluates one flag and `POST <prefix>/v1/evaluate/flags` all of them
(with an `ETag`; `If-None-Match` gets 304 when nothing changed), as the protocol's OpenAPI document says. The
prefix is `GATEKEEPER_OFREP_PREFIX` (default "/ofrep": OFREP clients append `/ofrep/v1/...` to the base URL
they are given, so a prefix ends in "/ofrep"). Values, variants and reasons are resolution.py's, the rules
of the in-process OpenFeature provider, with one difference the protocol forces: its reasons have no
DEFAULT, which is served as UNKNOWN (the variant still says what was served).

Who may ask what:
- a **client key** (a token of scope `evaluate`, tokens.py: `Authorization: Bearer ...` or `X-API-Key`)
  evaluates for the context the request sends: `targetingKey` is the user id, the other attributes are the
  evaluation context, as with the in-process provider outside a request;
- a **same-origin browser request** without a key evaluates for the session's own user (or visitor): the
  targeting key and attributes come from the session, never from the body, and a body naming another user
  is refused (403);
- anything else is 401.
A browser (a request with `Origin` or `Sec-Fetch-*` headers) only ever gets the flags whose class says
`CLIENT_SIDE = True`; another flag is not found. Cross-origin browsers need a key and an origin listed in
`GATEKEEPER_OFREP_CORS_ORIGINS` (none by default). Requests are rate-limited by Flask-Limiter when the app
has it (`GATEKEEPER_OFREP_RATE_LIMIT` per key, or per client address without one). Evaluations are the
request's own (`request.gk`), so `flag_evaluated` fires and exposures are recorded as for `ff()`.

`gk.bootstrap()` in a template writes the current user's CLIENT_SIDE evaluations, in the bulk
endpoint's format, into a `<script type="application/json">` element for static/gatekeeper-client.js.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request, url_for
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from . import tokens
from .engine import gatekeeper
from .resolution import (
    CALLERS_DEFAULT,
    DEFAULT,
    FLAG_NOT_FOUND,
    UNKNOWN,
    Resolution,
    resolve,
    user_id_for_key,
)

try:  # optional: rate limits when the app has Flask-Limiter (the baked app does)
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
except ImportError:  # pragma: no cover - exercised by apps that copy the folder without it
    Limiter = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/ofrep"
DEFAULT_RATE_LIMIT = "600 per minute"
MAX_BODY = 64 * 1024  # bytes of JSON a request may send: a context, not a document
BOOTSTRAP_ID = "gatekeeper-bootstrap"
EVALUATE_SCOPE = ("evaluate",)
# The protocol's reasons are STATIC, TARGETING_MATCH, SPLIT, DISABLED and UNKNOWN (its OpenAPI enum).
_OFREP_REASONS = {DEFAULT: UNKNOWN}
_CORS_HEADERS = "Authorization, Content-Type, If-None-Match, X-API-Key"
_CORS_MAX_AGE = "600"

bp = Blueprint("gatekeeper_ofrep", __name__)
_LIMITED: weakref.WeakSet[Any] = weakref.WeakSet()  # the Limiters that already limit `bp`


class OfrepError(Exception):
    """A request OFREP answers with an error body: `status`, the protocol's `code` (None: no code) and why."""

    def __init__(self, status: int, code: str | None, details: str, key: str | None = None) -> None:
        super().__init__(details)
        self.status, self.code, self.details, self.key = status, code, details, key


# -- the endpoints ----------------------------------------------------------------------------------------


@bp.post("/v1/evaluate/flags/<key>")
def evaluate_flag(key: str) -> Response:
    """One flag, for the context the request may evaluate (404 FLAG_NOT_FOUND when it may not see it)."""
    try:
        gk, browser = _caller()
        if key not in _visible_flags(gk, browser):
            raise OfrepError(404, FLAG_NOT_FOUND, f"Flag {key!r} was not found", key)
        resolution = resolve(gk, key)
        if resolution.error_code is not None:
            raise OfrepError(400, resolution.error_code, resolution.error_message or "", key)
    except OfrepError as error:
        error.key = key  # the single endpoint's failures name the flag
        return _error_response(error)
    return _json(_item(resolution))


@bp.post("/v1/evaluate/flags")
def evaluate_flags() -> Response:
    """Every flag the caller may see, with an ETag of the body; 304 when `If-None-Match` has it."""
    try:
        gk, browser = _caller()
    except OfrepError as error:
        error.key = None  # the bulk endpoint's failure names no flag
        return _error_response(error)
    body = bulk_body(gk, browser)
    etag = _etag(body)
    if request.if_none_match.contains_weak(etag):
        response = current_app.response_class(status=304)
    else:
        response = _json(body)
    response.set_etag(etag)
    return response


def bulk_body(gk: gatekeeper.Gatekeeper, browser: bool = True) -> dict[str, Any]:
    """The bulk endpoint's body for `gk`'s user: the flags a browser may see (CLIENT_SIDE), or all."""
    return {"flags": [_item(resolve(gk, flag)) for flag in _visible_flags(gk, browser)]}


# -- who is asking ----------------------------------------------------------------------------------------


def _caller() -> tuple[gatekeeper.Gatekeeper, bool]:
    """The Gatekeeper this request evaluates with (made the request's own `request.gk`), and whether the
    request comes from a browser (which sees CLIENT_SIDE flags only)."""
    browser = _from_a_browser()
    raw = _presented_key()
    if raw is None and not _same_origin():
        raise OfrepError(401, None, "Send a client key (Authorization: Bearer or X-API-Key)")
    if raw is not None:
        try:
            token = tokens.authenticate(raw, EVALUATE_SCOPE)
        except Exception as error:  # the token table unreadable: an outage, not the caller's fault
            log.exception("gatekeeper_ofrep: could not check a client key")
            raise OfrepError(
                500, None, f"Client keys cannot be checked now ({type(error).__name__})"
            ) from None
        if token is None:
            raise OfrepError(401, None, "The client key is unknown, revoked or expired")
        context = _context()
        key = context.get("targetingKey")
        if key is None or key == "":
            raise OfrepError(
                400, "TARGETING_KEY_MISSING", "The context has no targetingKey: send the user's id"
            )
        attributes = {name: value for name, value in context.items() if name != "targetingKey"}
        # As the in-process provider outside a request: the key's user, the context's attributes, no request.
        gk = gatekeeper.Gatekeeper(
            user_id_for_key(key), current_app._get_current_object(), context=attributes
        )
        request.gk = gk  # type: ignore[attr-defined]  # the request's own: flag_evaluated and exposures
        return gk, browser
    gk = request.gk  # type: ignore[attr-defined]  # the session's user, attributes from the context loader
    claimed = _context().get("targetingKey")
    own = gk.user_id
    if claimed not in (None, "") and (own is None or claimed != str(own)):
        raise OfrepError(403, "INVALID_CONTEXT", "A browser session evaluates for its own user only")
    return gk, True


def _context() -> dict[str, Any]:
    """The request body's `context`, checked: PARSE_ERROR when the body is not JSON, INVALID_CONTEXT when
    it is not `{"context": {...}}` or its targetingKey is not text."""
    length = request.content_length
    raw = request.stream.read(MAX_BODY + 1) if length is None or length <= MAX_BODY else b""
    if len(raw) > MAX_BODY or (length is not None and length > MAX_BODY):
        raise OfrepError(400, "PARSE_ERROR", f"The body is over {MAX_BODY // 1024} KB")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise OfrepError(400, "PARSE_ERROR", "The body is not JSON") from None
    if not isinstance(body, dict):
        raise OfrepError(400, "INVALID_CONTEXT", 'The body must be a JSON object: {"context": {...}}')
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise OfrepError(400, "INVALID_CONTEXT", "The context must be a JSON object")
    key = context.get("targetingKey")
    if key is not None and not isinstance(key, str):
        raise OfrepError(400, "INVALID_CONTEXT", "The context's targetingKey must be a string")
    return context


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-API-Key") or None


def _from_a_browser() -> bool:
    headers = request.headers
    return "Origin" in headers or "Sec-Fetch-Site" in headers or "Sec-Fetch-Mode" in headers


def _same_origin() -> bool:
    """Whether the browser says this request comes from a page of this site (Fetch metadata, else Origin).
    A request with neither is not a browser's, so it has no session to speak for."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and origin == request.host_url.rstrip("/")


def _visible_flags(gk: gatekeeper.Gatekeeper, browser: bool) -> list[str]:
    return [
        name for name, config in gk.config_map.items() if not browser or getattr(config, "CLIENT_SIDE", False)
    ]


# -- answers ------------------------------------------------------------------------------------------------


def _item(resolution: Resolution) -> dict[str, Any]:
    """One flag in the protocol's words: a success (no `value` when the caller's default applies, as for a
    switched-off flag) or a failure with its error code."""
    if resolution.error_code is not None:
        return {
            "key": resolution.flag,
            "errorCode": resolution.error_code,
            "errorDetails": resolution.error_message or "",
        }
    item: dict[str, Any] = {
        "key": resolution.flag,
        "reason": _OFREP_REASONS.get(resolution.reason, resolution.reason),
        "variant": resolution.variant,
    }
    if resolution.value is not CALLERS_DEFAULT:
        item["value"] = resolution.value
    if resolution.metadata:
        item["metadata"] = dict(resolution.metadata)
    return item


def _etag(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(_dumps(body).encode()).hexdigest()[:32]


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _json(body: Any, status: int = 200) -> Response:
    return current_app.response_class(_dumps(body), status=status, mimetype="application/json")


def _error_response(error: OfrepError) -> Response:
    body: dict[str, Any] = {"errorDetails": error.details}
    if error.code is not None:
        body["errorCode"] = error.code
        if error.key is not None:
            body["key"] = error.key
    response = _json(body, error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ofrep"'
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    """Errors raised around the views (a rate limit, a wrong method) as the protocol's JSON."""
    response = _json({"errorDetails": error.description or error.name}, error.code or 500)
    if error.code == 429:
        response.headers["Retry-After"] = str(_seconds_to_wait())
    return response


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    log.exception("gatekeeper_ofrep: the evaluation failed")
    return _json({"errorDetails": f"The evaluation failed ({type(error).__name__})"}, 500)


def _seconds_to_wait() -> int:
    for limiter in current_app.extensions.get("limiter", ()):
        limit = limiter.current_limit
        if limit is not None:
            return max(1, math.ceil(limit.reset_at - time.time()))
    return 60


# -- cross-origin browsers, and every answer's headers -------------------------------------------------------


@bp.before_request
def _preflight() -> Response | None:
    """Answer a CORS preflight: allowed for a listed origin, refused (403, no CORS headers) otherwise."""
    if request.method != "OPTIONS":
        return None
    origin = request.headers.get("Origin")
    if origin is None or origin not in _cors_origins():
        return _json({"errorDetails": "This origin may not call OFREP"}, 403)
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
    return response


@bp.after_request
def _headers(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin is not None and origin in _cors_origins():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After"
    response.vary.add("Origin")
    response.headers["Cache-Control"] = "no-store"  # one user's answers: never kept by a cache
    return response


def _cors_origins() -> Iterable[str]:
    return current_app.config.get("GATEKEEPER_OFREP_CORS_ORIGINS") or ()


# -- the browser's first paint: gk.bootstrap() --------------------------------------------------------------


def render_bootstrap(gk: gatekeeper.Gatekeeper) -> Markup:
    """A `<script type="application/json">` element with `gk`'s user's CLIENT_SIDE evaluations (the bulk
    endpoint's body, its ETag and URL), for gatekeeper-client.js: data, not script, so the CSP needs no
    inline script; `<`, `>`, `&` and `'` are escaped inside the JSON, so no value can close the element."""
    body = bulk_body(gk, browser=True)
    data = {**body, "etag": _etag(body), "url": url_for("gatekeeper_ofrep.evaluate_flags")}
    return Markup('<script type="application/json" id="{}">{}</script>').format(
        BOOTSTRAP_ID, htmlsafe_json_dumps(data)
    )


# -- wiring --------------------------------------------------------------------------------------------------


def init_app(app: Flask, url_prefix: str | None = None) -> None:
    """Serve OFREP under `url_prefix` (default: `GATEKEEPER_OFREP_PREFIX`, else "/ofrep"), exempt from the
    app's form CSRF (it takes JSON, with a key or from the same origin), rate-limited, and give templates
    `gk.bootstrap()`."""
    prefix = (url_prefix or app.config.get("GATEKEEPER_OFREP_PREFIX") or DEFAULT_PREFIX).rstrip("/")
    if not prefix.endswith("/ofrep"):
        raise ValueError(
            f"GATEKEEPER_OFREP_PREFIX={prefix!r}: OFREP clients add /ofrep/v1/... to their base URL, so the "
            "prefix must end in /ofrep (e.g. /api/ofrep, with base URL https://your.site/api)"
        )
    csrf = app.extensions.get("csrf")  # Flask-WTF's CSRFProtect, when the app has one
    if csrf is not None:
        csrf.exempt(bp)
    _rate_limit(app)
    app.register_blueprint(bp, url_prefix=prefix)
    app.extensions["gatekeeper_bootstrap"] = render_bootstrap


def _rate_limit(app: Flask) -> None:
    if Limiter is None:
        log.warning("gatekeeper_ofrep: Flask-Limiter is not installed; OFREP requests are not rate-limited")
        return
    limiter = next(iter(app.extensions.get("limiter", ())), None)
    if limiter is None:  # the app limits nothing itself: a Limiter of OFREP's own, per process by default
        storage = app.config.get("RATELIMIT_STORAGE_URI") or "memory://"
        limiter = Limiter(key_func=get_remote_address, storage_uri=storage)
        limiter.init_app(app)
    if limiter not in _LIMITED:  # the app's Limiter may be shared by several apps (tests make many)
        limiter.shared_limit(_limit_value, scope="gatekeeper-ofrep", key_func=_rate_key, methods=["POST"])(bp)
        _LIMITED.add(limiter)


def _limit_value() -> str:
    return current_app.config.get("GATEKEEPER_OFREP_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def _rate_key() -> str:
    """Count per client key (hashed: the limiter's storage never holds one), else per client address."""
    raw = _presented_key()
    if raw is not None:
        return "ofrep-key:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return "ofrep-address:" + (request.remote_addr or "")
