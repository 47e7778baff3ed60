"""Sending one webhook: Standard Webhooks signatures, and an HTTP POST that cannot be pointed inwards.

Signatures follow the Standard Webhooks specification (standardwebhooks.com): the secret is `whsec_` and the
base64 of random bytes; the signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,` and the base64 of its HMAC-SHA256, sent in `webhook-signature` beside `webhook-id` (the same on every
retry, for receivers to deduplicate) and `webhook-timestamp` (integer Unix seconds of the attempt).

The POST guards against server-side request forgery: only http and https URLs; the host is resolved once,
every address it resolves to must be a public one (no loopback, private, link-local, shared, multicast or
reserved address, IPv4-mapped ones included) unless `allow_private` is set, and the connection is made to
the very address that was checked (the URL's host name is still sent as `Host` and checked by TLS), so a
name that resolves elsewhere a moment later (DNS rebinding) changes nothing. Redirects are never followed
(a 3xx is a failed delivery: the URL should be updated), environment proxies are not used, and each step
(connecting, sending, reading the answer) has `timeout` seconds. Only the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes
ANSWER_SHOWN = 200  # characters of a failed delivery's answer kept as its error


class UrlRefused(ValueError):
    """A webhook URL that is not sent to: its scheme, its form, or where its host points."""


@dataclass(frozen=True)
class Answer:
    """How one delivery attempt went: the HTTP status (None when no answer came) or why it failed."""

    status: int | None
    error: str | None
    milliseconds: int

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered (the specification's rule; anything else is retried)."""
        return self.status is not None and 200 <= self.status < 300


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A `webhook-id`: `msg_` and random URL-safe characters (never a `.`, which the signed content uses)."""
    return "msg_" + secrets.token_urlsafe(18)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` of `body` sent as `message_id` at `timestamp`: `v1,<base64 HMAC-SHA256>`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (now, unless `timestamp` is given)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; raises UrlRefused saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"{url!r} is not a URL ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"Only http and https URLs receive webhooks, not {parts.scheme or 'this'!r}.")
    if not parts.hostname:
        raise UrlRefused(f"{url!r} names no host.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("A webhook URL cannot carry a user name or password; put a token in its path.")
    if any(ord(character) < 33 for character in url):
        raise UrlRefused("A webhook URL cannot contain spaces or control characters.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refusal(address: str) -> str | None:
    """Why an IP address is not sent to (it is not a public one), or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple[int, str]]:
    """Every (family, address) `host` resolves to; raises UrlRefused when one is not public (unless
    `allow_private`), so a name with a private address among its public ones is refused too."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"{host} does not resolve ({exc}).") from None
    addresses = list(dict.fromkeys((family, str(sockaddr[0])) for family, _, _, _, sockaddr in found))
    if not allow_private:
        for _family, address in addresses:
            problem = refusal(address)
            if problem is not None:
                raise UrlRefused(
                    f"{host} resolves to {problem}: webhooks go to public addresses only "
                    "(GATEKEEPER_WEBHOOKS_ALLOW_PRIVATE allows others)."
                )
    return addresses


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Answer:
    """POST `body` to `url` once, as the module docstring says; never raises for the network's sake."""
    started = time.monotonic()

    def answer(status: int | None, error: str | None) -> Answer:
        return Answer(status, error, int((time.monotonic() - started) * 1000))

    try:
        scheme, host, port = check_url(url)
        addresses = resolve(host, port, allow_private=allow_private)
    except UrlRefused as exc:
        return answer(None, str(exc))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    error = "no address to connect to"
    for family, address in addresses:
        connection = _connection(scheme, host, port, family, address, timeout)
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            status = response.status
            text = response.read(ANSWER_SHOWN).decode("utf-8", "replace")
        except TimeoutError:
            return answer(None, f"no answer within {timeout:g} s")
        except ConnectionRefusedError:
            error = f"connection refused by {address}"
            continue  # the next address, if the name has another
        except (OSError, http.client.HTTPException) as exc:
            return answer(None, f"{type(exc).__name__}: {exc}"[:ANSWER_SHOWN])
        finally:
            connection.close()
        if 200 <= status < 300:
            return answer(status, None)
        if 300 <= status < 400:
            where = response.getheader("location") or "nowhere"
            return answer(status, f"HTTP {status}: redirects are not followed (to {where})"[:ANSWER_SHOWN])
        return answer(status, f"HTTP {status}: {' '.join(text.split())}".strip()[:ANSWER_SHOWN])
    return answer(None, error)


def _connection(
    scheme: str, host: str, port: int, family: int, address: str, timeout: float
) -> http.client.HTTPConnection:
    """A connection to `address` (already checked) that speaks to `host` (Host header, TLS name)."""
    if scheme == "https":
        return _PinnedHTTPSConnection(host, port, family, address, timeout)
    return _PinnedHTTPConnection(host, port, family, address, timeout)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, family: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._pinned = (family, address)

    def connect(self) -> None:
        self.sock = _open_socket(*self._pinned, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, family: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._pinned = (family, address)

    def connect(self) -> None:
        raw = _open_socket(*self._pinned, self.port, self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _open_socket(family: int, address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
