"""Fan-out: how long a store change takes to reach the last of many listening processes, per change feed.

Starts a throwaway PostgreSQL (and, for the Redis feed, a redis-server) on loopback (Debian's binaries, as the
template's tests do). For each feed, one process imports the baked app and runs `create_app()` once, then
forks N children (default 200), as gunicorn's `--preload` does; each child's store listens on a connection of
its own after the fork, as a worker's would. This process then makes one change at a time and records when
each child had reloaded its snapshot; it prints p50/p99 of change -> first, median and last process, and of
change -> the last process told (its feed called back, before the reload: the feed's own share).

Feeds: `redis` (Redis pub/sub: one subscriber connection per process, on the Redis server) and `postgresql`
(LISTEN/NOTIFY: one more PostgreSQL connection per process, besides its pool's; so this server is started
with max_connections = 2 N + 20, where a default server's 100 would stop at about 45 processes).
Nothing is asserted: these are the figures behind the scaling section of the baked README.

    python benchmarks/bench_fanout.py --project build/bench/gatekeeper_app [--processes 200] [--changes 40]
        [--feeds redis,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import postgres_bin, postgres_server  # the template tests' server helpers
from redisserver import redis_bin, redis_server

# The listening processes: the baked app made once, then N forked children, each listening after the fork.
# Each child writes {"child": n, "ready": true} once connected, then one line per reload (when the feed
# called it back, and when the reload was done); lines are single
# os.write calls shorter than PIPE_BUF, so children sharing the pipe never interleave.
SPAWNER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from {package} import create_app
app = create_app()
state = app.extensions["gatekeeper_store"]

def say(**fields):
    os.write(1, (json.dumps(fields) + "\n").encode())

def child(number):
    reload = state.changed_elsewhere
    def changed():
        heard = time.monotonic()
        reload()
        say(child=number, version=state.current.version, heard=heard, at=time.monotonic())
    state.changed_elsewhere = changed
    with app.test_request_context("/"):
        state.snapshot()
    while not (state.feed and state.feed.connected):
        time.sleep(0.01)
    say(child=number, ready=True)
    sys.stdin.read()  # until the benchmark is done

children = []
for number in range(int(sys.argv[2])):
    pid = os.fork()
    if pid == 0:
        try:
            child(number)
        finally:
            os._exit(0)
    children.append(pid)
sys.stdin.read()
for pid in children:
    os.waitpid(pid, 0)
"""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def fan_out(project: Path, package: str, env: dict[str, str], processes: int, changes: int) -> list[str]:
    """Run the children with `env` (the feed in it), make `changes` changes here; the report lines."""
    spawner = subprocess.Popen(
        [sys.executable, "-c", SPAWNER.format(package=package), str(project), str(processes)],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    events: queue.Queue[dict] = queue.Queue()

    def read() -> None:
        for line in spawner.stdout:
            if line.startswith("{"):
                events.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    started = time.monotonic()
    ready: set[int] = set()
    while len(ready) < processes:
        event = events.get(timeout=600)
        if event.get("ready"):
            ready.add(event["child"])
    startup = time.monotonic() - started

    saved = dict(os.environ)
    os.environ.update({**env, "GATEKEEPER_STORE_PUSH": "0"})  # the writer publishes, it does not listen
    try:
        writer = sys.modules[package].create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    store = sys.modules[f"{package}.gatekeeper_control.store"].store
    first, middle, last, heard = [], [], [], []
    with writer.app_context():
        for change in range(-1, changes):  # change -1 warms the writer up (connections, redis-py's import)
            forced = store.snapshot(max_age=0).forced.get("MY_NEW_FEATURE")
            start = time.monotonic()
            store.force("MY_NEW_FEATURE", "NOT_VISIBLE" if forced == "VISIBLE" else "VISIBLE", actor="bench")
            version = store.snapshot(max_age=0).version
            seen: dict[int, tuple[float, float]] = {}
            while len(seen) < processes:
                event = events.get(timeout=60)
                if event.get("version") == version:
                    seen.setdefault(event["child"], (event["heard"], event["at"]))
            delays = sorted(at - start for _, at in seen.values())
            if change < 0:
                continue
            heard.append(max(told for told, _ in seen.values()) - start)
            first.append(delays[0])
            middle.append(statistics.median(delays))
            last.append(delays[-1])
            time.sleep(0.05)
        feed = writer.extensions["gatekeeper_store"].feed
        if feed is not None:
            feed.stop()
    spawner.stdin.close()
    spawner.wait(timeout=120)

    def line(label: str, samples: list[float]) -> str:
        p50, p99 = statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
        return f"    change -> {label:<15} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"

    return [
        f"    ({processes} processes listening after {startup:.0f} s)",
        line("last told", heard),
        line("first process", first),
        line("median process", middle),
        line("last process", last),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--processes", type=int, default=200)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--feeds", default="redis,postgresql", help="comma-separated: redis, postgresql")
    args = parser.parse_args()
    project = args.project.resolve()
    feeds = [feed.strip() for feed in args.feeds.split(",") if feed.strip()]
    if postgres_bin() is None:
        print("fan-out: skipped, PostgreSQL is not installed (apt-get install postgresql)")
        return
    package = next(path.parent.name for path in project.glob("*/gatekeeper.py"))
    sys.path.insert(0, str(project))
    __import__(package)
    print(f"fan-out: {args.processes} listening processes, {args.changes} changes, {os.cpu_count()} CPUs")
    # A listener and a pool connection per process, and some slack (a default server has 100).
    connections = 2 * args.processes + 20
    with postgres_server(f"-c max_connections={connections}") as server:
        url = server.create_database("fanout")
        base = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "fanout", "GATEKEEPER_STORE_TTL": "3600"}
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", package, "init-db"], cwd=project, env=base, check=True
        )
        for feed in feeds:
            if feed == "redis" and redis_bin() is None:
                print("  Redis pub/sub: skipped, redis-server is not installed (apt-get install it)")
            elif feed == "redis":
                with redis_server() as redis:
                    env = {**base, "GATEKEEPER_CHANGE_FEED": redis.url}
                    lines = fan_out(project, package, env, args.processes, args.changes)
                print("  Redis pub/sub (GATEKEEPER_CHANGE_FEED=redis://...):", *lines, sep="\n")
            elif feed == "postgresql":
                env = {**base, "GATEKEEPER_CHANGE_FEED": "postgresql"}
                lines = fan_out(project, package, env, args.processes, args.changes)
                print(f"  PostgreSQL LISTEN/NOTIFY (max_connections {connections}):", *lines, sep="\n")
            else:
                raise SystemExit(f"--feeds: {feed!r} is not redis or postgresql")


if __name__ == "__main__":
    main()
