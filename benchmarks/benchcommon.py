"""What both benchmarks share: no network, the baked package, medians of timed loops, a plain table.

Timing follows `timeit`: each sample runs a whole loop with the garbage collector off, the reported
number is the median of several samples, and nothing is ever compared against a time limit.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

NETWORK_ATTEMPTS: list[Any] = []


def forbid_network() -> None:
    """Refuse every outgoing connection in this process, and remember each attempt to report it."""

    def refuse(sock: socket.socket, address: Any) -> None:
        NETWORK_ATTEMPTS.append(address)
        raise OSError(f"benchmarks run offline: connection to {address!r} refused")

    def refuse_ex(sock: socket.socket, address: Any) -> int:
        NETWORK_ATTEMPTS.append(address)
        return 111  # ECONNREFUSED

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse_ex  # type: ignore[method-assign]


def check_offline() -> None:
    """Fail the run (not a timing check) when anything tried to reach the network."""
    if NETWORK_ATTEMPTS:
        raise SystemExit(f"a benchmark tried to use the network: {NETWORK_ATTEMPTS[:5]}")
    print("network: no connection attempted (every socket connect is refused in this process)")


def project_argument(description: str) -> Path:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--project", required=True, type=Path, help="the baked project (build/bench/<slug>)")
    return parser.parse_args().project.resolve()


def import_baked_package(project: Path) -> ModuleType:
    """The baked project's package: the folder beside its pyproject.toml that holds gatekeeper.py."""
    found = sorted(path.parent.name for path in project.glob("*/gatekeeper.py"))
    if len(found) != 1:
        raise SystemExit(f"{project}: expected one package with a gatekeeper.py, found {found}")
    sys.path.insert(0, str(project))
    return importlib.import_module(found[0])


def build_baked_app(package: ModuleType, database: Path) -> Any:
    """The baked `create_app` on a fresh SQLite file, with every table made."""
    app = package.create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "SECRET_KEY": "bench-secret"}
    )
    with app.app_context():
        package.database.init_db()
    return app


def bench_user(package: ModuleType, app: Any, email: str = "bench@example.com") -> Any:
    """A user of the baked app (no password: the benchmark signs in through the session), as its id for
    Flask-Login's session (`get_id()`)."""
    User = package.models.User
    with app.app_context():
        user = User(email=email, password_hash="-")
        package.extensions.db.session.add(user)
        package.extensions.db.session.commit()
        return user.get_id()


def log_in(client: Any, session_id: str) -> None:
    """Flask-Login's session keys, so the benchmark does not depend on the login form."""
    with client.session_transaction() as session:
        session["_user_id"] = str(session_id)
        session["_fresh"] = True


def median_per_item(
    run: Callable[[Any], object],
    items: int,
    repeats: int = 7,
    setup: Callable[[], Any] = lambda: None,
) -> float:
    """Median nanoseconds per item of `run(setup())`, which loops over `items` things once per call.

    `setup` runs outside the timed part (e.g. to build fresh objects for a first-use measurement). One
    untimed call warms caches first.
    """
    run(setup())
    samples = []
    for _ in range(repeats):
        prepared = setup()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            run(prepared)
            samples.append((time.perf_counter_ns() - start) / items)
        finally:
            gc.enable()
    return statistics.median(samples)


def interleaved_samples(
    runs: dict[str, Callable[[], object]],
    items: int,
    rounds: int = 21,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[float]]:
    """Ns per item of several loops timed in turn, one sample each per round, the order rotating each round.

    Timing the cases in turn, in a different order each round, spreads drift and order effects (caches,
    the CPU's clock, neighbours on a shared machine) over all of them instead of over one. `clock` may be
    `time.thread_time_ns`: on a machine shared with other work, only the loop's own CPU time counts.
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up
    names = list(runs)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            gc.disable()
            try:
                start = clock()
                runs[name]()
                samples[name].append((clock() - start) / items)
            finally:
                gc.enable()
    return samples


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table: the first column left-aligned, the others right-aligned; a one-cell row is a
    section title printed as it is."""
    full = [header, *(row for row in rows if len(row) == len(header))]
    widths = [max(len(str(row[i])) for row in full) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(cell) for cell in cells)
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    print(line(header))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row) if len(row) == len(header) else str(row[0]))
