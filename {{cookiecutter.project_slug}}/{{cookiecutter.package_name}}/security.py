"""HTTP hardening: security headers on every response, the proxies to trust, and Secure cookies.

Settings live in config.py: `CONTENT_SECURITY_POLICY`, `PROXY_COUNT` (how many reverse proxies stand in
front of the app), `PROXY_PREFIX` (whether they set X-Forwarded-Prefix), `SECURE_COOKIES` and Flask's own
`TRUSTED_HOSTS`, which Flask checks by itself.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import flask
from flask import Flask, current_app, has_request_context, request
from werkzeug.middleware.proxy_fix import ProxyFix

HSTS = "max-age=31536000"  # a year; sent only over https, where it tells browsers never to use http again

_HEADERS = {
    "X-Frame-Options": "DENY",  # what `frame-ancestors 'none'` says, for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    # The full address within the site (Flask-WTF's https CSRF check reads it), nothing to other sites.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Response(flask.Response):
    """The app's responses: every cookie they set is Secure when the request came over https, or when the
    session cookie is configured Secure (SECURE_COOKIES=1). One rule for the session, remember-me and
    gatekeeper cookies alike, whoever sets them."""

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: timedelta | int | None = None,
        expires: str | datetime | int | float | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        secure = secure or _cookies_must_be_secure()
        super().set_cookie(
            key, value, max_age, expires, path, domain, secure, httponly, samesite, partitioned
        )


def _cookies_must_be_secure() -> bool:
    if has_request_context() and request.is_secure:
        return True
    return bool(current_app.config.get("SESSION_COOKIE_SECURE"))


def _add_security_headers(response: flask.Response) -> flask.Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
    for name, value in _HEADERS.items():
        headers.setdefault(name, value)
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


_PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")


def _plain_path_prefix_only(wsgi_app: Any) -> Any:
    """WSGI middleware, outside ProxyFix: drop an X-Forwarded-Prefix with anything but plain path segments
    (`//host`, a backslash, a scheme), so the prefix can never name another site."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX")
        if prefix is not None and not all(_PLAIN_PATH.fullmatch(p.strip()) for p in prefix.split(",")):
            del environ["HTTP_X_FORWARDED_PREFIX"]
        return wsgi_app(environ, start_response)

    return middleware


def init_app(app: Flask) -> None:
    """Trust `PROXY_COUNT` proxies' X-Forwarded-* headers, add the security headers, make cookies Secure."""
    proxies = int(app.config.get("PROXY_COUNT", 0))
    if proxies:
        # Each proxy appends to X-Forwarded-For/-Proto/-Host/-Port; only the last `proxies` entries are
        # theirs, anything before came from the client and is ignored. The host is then checked against
        # TRUSTED_HOSTS. X-Forwarded-Prefix becomes the path every URL starts with, which no host check sees
        # (`//evil.example` made the login redirect and the form's action off-site), so it is trusted only
        # with PROXY_PREFIX on, and then only as a plain path.
        prefixes = proxies if app.config.get("PROXY_PREFIX") else 0
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies, x_prefix=prefixes
        )
        if prefixes:
            app.wsgi_app = _plain_path_prefix_only(app.wsgi_app)  # type: ignore[method-assign]
    app.response_class = Response
    app.after_request(_add_security_headers)
