"""Send new visitors to the running app (`make run`), so that exposures and guarded releases have traffic.

    make traffic                       # 2,000 visitors to http://127.0.0.1:5000/, 4 at a time
    .venv/bin/python scripts/traffic.py --url http://127.0.0.1:5000/ --requests 500 --seconds 60

Each request is a new visitor (no cookies), so the rollouts spread them by their shares. Prints how many got
each NEW_CHECKOUT variant and each status. Sends to this machine only (127.0.0.1, ::1, localhost) unless
--allow-remote is given, stops after --requests or --seconds, and never follows a redirect.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
VARIANT = re.compile(rb'data-flag="NEW_CHECKOUT" data-variant="([A-Z_]+)"')


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def visit(opener: urllib.request.OpenerDirector, url: str) -> tuple[str, int]:
    """One new visitor: (the NEW_CHECKOUT variant the page shows, or "-", and the HTTP status)."""
    try:
        with opener.open(url, timeout=10) as response:
            found = VARIANT.search(response.read())
            return (found.group(1).decode() if found else "-"), response.status
    except urllib.error.HTTPError as error:
        return "-", error.code
    except OSError:
        return "-", 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000/", help="the page to visit")
    parser.add_argument("--requests", type=int, default=2000, help="how many visitors, at most")
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long, at most")
    parser.add_argument("--concurrency", type=int, default=4, help="visitors at a time")
    parser.add_argument("--allow-remote", action="store_true", help="allow a host that is not this machine")
    options = parser.parse_args(argv)
    parts = urlsplit(options.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--url {options.url!r}: give an http(s) URL such as http://127.0.0.1:5000/")
    if parts.hostname not in LOOPBACK and not options.allow_remote:
        parser.error(f"--url {options.url!r} is not this machine: add --allow-remote to send traffic there")
    if options.requests < 1 or options.concurrency < 1 or options.seconds <= 0:
        parser.error("--requests, --concurrency and --seconds must be positive")
    opener = urllib.request.build_opener(_NoRedirects)
    seen: Counter[tuple[str, int]] = Counter()
    deadline = time.monotonic() + options.seconds
    with ThreadPoolExecutor(options.concurrency) as pool:
        sent = 0
        while sent < options.requests and time.monotonic() < deadline:
            batch = min(options.concurrency * 25, options.requests - sent)
            seen.update(pool.map(lambda _: visit(opener, options.url), range(batch)))
            sent += batch
    for (variant, status), count in sorted(seen.items()):
        print(f"NEW_CHECKOUT {variant:>4}  HTTP {status}  {count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
