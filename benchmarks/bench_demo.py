"""`make demo` from a fresh clone to its first page: seconds until `/` answers HTTP 200.

Each run clones this checkout's committed HEAD into a temporary folder, runs `make demo PORT=<free port>`
there, as a new user would, polls http://127.0.0.1:PORT/ until it answers 200, then stops the demo's whole
process group and deletes the clone. Two runs: the first warms whatever was cold (the package caches, the
tools `make demo` keeps in the user's cache), so the second is the warm-cache figure the README promises.
`--cold` gives the first run empty caches of its own (XDG_CACHE_HOME, which uv and pip follow, in a
temporary folder): it downloads every package from the registry, as on a new machine.

The demo's own set-up uses the package registry as `make demo` does; this process itself connects to
127.0.0.1 only (any other connection is refused and reported). Times are printed, never asserted.

Run through `make bench` (benchmarks/run.sh), or alone: python3 benchmarks/bench_demo.py [--cold]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from benchcommon import print_table

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 10.0  # issue 14: a fresh clone's `make demo` serves its first page within this, warm
TIMEOUT_SECONDS = 900.0  # a cold run on a slow registry installs everything with pip at worst
LOOPBACK = ("127.0.0.1", "::1")
# Lines `make demo` prints when it reaches each step (the Makefiles' own echo of their commands).
STEPS = (
    ("tools and bake", re.compile(r"Entering directory .*build/demo")),
    ("install what running needs", re.compile(r"flask --app \S+ init-db")),
    ("migrate + demo admin (one flask process)", re.compile(r"flask --app \S+ run\b")),
)
FIRST_PAGE = "flask run, its reloader's child, first page"
REFUSED: list[Any] = []


def loopback_only() -> None:
    """Refuse, and remember, every connection of this process to anything but 127.0.0.1 (or ::1)."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            REFUSED.append(address)
            raise OSError(f"bench_demo talks to 127.0.0.1 only: connection to {address!r} refused")
        connect(sock, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]


@dataclass
class Run:
    seconds: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def steps(self) -> dict[str, float]:
        """Seconds spent in each step, from the time each step's first line appeared (missing: not shown)."""
        starts = [0.0]
        for _, pattern in STEPS:
            seen = next((at for at, line in self.lines if pattern.search(line)), None)
            if seen is None:
                return {}
            starts.append(seen)
        starts.append(self.seconds)
        names = [name for name, _ in STEPS] + [FIRST_PAGE]
        return {name: end - start for name, (start, end) in zip(names, pairwise(starts), strict=True)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop_group(process: subprocess.Popen[str]) -> None:
    """Stop `make` and all it started (the reloader and its child share its process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


def demo_run(env: Mapping[str, str]) -> Run:
    """Clone, `make demo`, time until the first page; everything it started is stopped, the clone deleted."""
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-demo-") as tmp:
        clone = Path(tmp) / "flask-gatekeeper"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        start = time.perf_counter()
        process = subprocess.Popen(
            ["make", "demo", f"PORT={port}"],
            cwd=clone,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        run = Run(seconds=0.0)

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                run.lines.append((time.perf_counter() - start, line.rstrip()))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            while not answers_200(url):
                if process.poll() is not None or time.perf_counter() - start > TIMEOUT_SECONDS:
                    reader.join(5)
                    tail = "\n".join(line for _, line in run.lines[-40:])
                    raise SystemExit(f"`make demo` did not serve {url}:\n{tail}")
                time.sleep(0.05)
            run.seconds = time.perf_counter() - start
        finally:
            stop_group(process)
            reader.join(5)
        return run


def step(steps: dict[str, float], name: str) -> str:
    return f"{steps[name]:.1f}" if steps else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="give the first run empty package caches")
    cold = parser.parse_args().cold
    loopback_only()

    # A new user's shell: no virtualenv of ours active, no uv chosen for them.
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV")}
    uv = shutil.which("uv", path=env.get("PATH"))
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-cache-") as cache:
        if cold:  # uv's, pip's and make demo's own caches, wherever they were set to be
            env.update(XDG_CACHE_HOME=cache, UV_CACHE_DIR=f"{cache}/uv", PIP_CACHE_DIR=f"{cache}/pip")
        first = demo_run(env)
        warm = demo_run(env)

    first_label = "first run (empty caches)" if cold else "first run in this bench"
    print(f"make demo, fresh clone of {head} to its first page (HTTP 200 on /), s; {os.cpu_count()} CPUs")
    print(f"uv on PATH: {uv or 'no (make demo fetches it once into its cache folder)'}")
    first_steps, warm_steps = first.steps(), warm.steps()
    names = [name for name, _ in STEPS] + [FIRST_PAGE]
    rows = [["fresh clone to first page", f"{first.seconds:.1f} s", f"{warm.seconds:.1f} s"]]
    rows += [[f"  {name}", step(first_steps, name), step(warm_steps, name)] for name in names]
    print_table(["", first_label, "warm cache (second run)"], rows)
    verdict = "met" if warm.seconds <= TARGET_SECONDS else "MISSED"
    print(f"    target: the warm-cache run serves within {TARGET_SECONDS:.0f} s: {verdict}")
    if REFUSED:
        raise SystemExit(f"bench_demo tried to connect beyond 127.0.0.1: {REFUSED[:5]}")
    print("network: this process connected to 127.0.0.1 only (make demo's set-up may use the registry)")


if __name__ == "__main__":
    sys.exit(main())
