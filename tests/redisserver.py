"""A throwaway Redis server for the template's tests: Debian's `redis-server` on a free port of 127.0.0.1, in
a temporary folder, saving nothing (`--save '' --appendonly no`). Tests that stop and start it get one of
their own; it comes back on the same port, as a restarted server would.

`make test` installs redis-server when run as root; without it `redis_bin()` is None and the tests skip.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bakery import free_port

REDIS_SERVER = Path("/usr/bin/redis-server")


def redis_bin() -> Path | None:
    return REDIS_SERVER if REDIS_SERVER.exists() else None


@dataclass
class RedisServer:
    """One server; `url` is what GATEKEEPER_CHANGE_FEED takes; `stop` kills it as a crash would."""

    binary: Path
    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        options = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, *options, "--dir", self.home, "--logfile", self.home / "redis.log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while self.command("PING") != "+PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.home / "redis.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise AssertionError(f"redis-server did not answer on port {self.port}:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop at once, dropping every connection (as a crashed or unplugged server would)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=20)
            self.process = None

    def command(self, *words: str) -> str | None:
        """Send one command (inline form); the first line of the answer, or None when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                connection.sendall(" ".join(words).encode() + b"\r\n")
                answer = b""
                while not answer.endswith(b"\r\n"):
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
        except OSError:
            return None
        return answer.decode(errors="replace").split("\r\n")[0] or None

    def subscribers(self, channel: str) -> int:
        """How many connections are subscribed to `channel` now (PUBSUB NUMSUB); -1 when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                connection.sendall(f"PUBSUB NUMSUB {channel}\r\n".encode())
                answer = b""
                while answer.count(b"\r\n") < 4:  # *2, $len, the channel, :count
                    chunk = connection.recv(4096)
                    if not chunk:
                        return -1
                    answer += chunk
        except OSError:
            return -1
        return int(answer.split(b"\r\n")[3].lstrip(b":"))


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Run a fresh server until the block ends; skip the test if there is no redis-server."""
    binary = redis_bin()
    if binary is None:
        import pytest  # only tests get here without a server; `make bench` checks redis_bin() first

        pytest.skip("redis-server is not installed (make test installs it with apt-get when run as root)")
    home = Path(tempfile.mkdtemp(prefix="gatekeeper-redis-"))
    server = RedisServer(binary, home, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
