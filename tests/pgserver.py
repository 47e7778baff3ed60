"""A throwaway PostgreSQL server for the template's tests: Debian's binaries, a temporary data folder, a free
port of 127.0.0.1, trust authentication. Tests that stop and start it (fault tests) get one of their own.

`make test` installs PostgreSQL when run as root; without it `postgres_bin()` is None and the tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bakery import free_port, run


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    """One running server; `url(name)` is a database's SQLAlchemy URL, `create_database` makes one."""

    bin_dir: Path
    home: Path
    port: int
    as_owner: list[str] = field(default_factory=list)
    settings: tuple[str, ...] = ()

    @property
    def data(self) -> Path:
        return self.home / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        run([self.bin_dir / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name])
        return self.url(name)

    def query(self, database: str, sql: str) -> str:
        """Run `sql` with psql on `database`; its output, unaligned and without headers."""
        psql = [self.bin_dir / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", database]
        return run([*psql, "-At", "-c", sql]).stdout.strip()

    def _pg_ctl(self, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
        return [*self.as_owner, self.bin_dir / "pg_ctl", "-D", self.data, "-w", *args]

    def start(self) -> None:
        options = " ".join(
            [f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.home} -c fsync=off", *self.settings]
        )
        run(self._pg_ctl("-l", self.home / "server.log", "-o", options, "start"))

    def stop(self) -> None:
        """Stop at once, dropping every connection (as a crashed or unplugged server would)."""
        run(self._pg_ctl("-m", "immediate", "stop"), check=False)


@contextmanager
def postgres_server(*settings: str) -> Iterator[PostgresServer]:
    """Run a fresh server until the block ends (`settings`: extra `-c name=value` options); skip if none."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        import pytest  # only tests get here without a server; `make bench` checks postgres_bin() first

        pytest.skip("PostgreSQL is not installed (make test installs it with apt-get when run as root)")
    # initdb refuses to run as root: then the server runs as Debian's `postgres` user, in a folder it owns.
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="gatekeeper-pg-"))
    if as_owner:
        shutil.chown(home, "postgres")
    server = PostgresServer(bin_dir, home, free_port(), as_owner, settings)
    initdb = [bin_dir / "initdb", "-D", server.data, "-U", "postgres", "-EUTF8"]
    run([*as_owner, *initdb, "--auth=trust", "--no-sync"])
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
