"""Fan-out: how long a store change takes to reach the last of many listening processes (LISTEN/NOTIFY).

Starts a throwaway PostgreSQL on loopback (Debian's binaries, as the template's tests do), then N processes
of the baked app (default 50), each with its store listening as a gunicorn worker's would, and makes one
change at a time from this process. For each change it records when each process had reloaded its snapshot;
it prints p50/p99 of change -> first, median and last process. Nothing is asserted: these are the figures
behind the scaling section of the template README.

    python benchmarks/bench_fanout.py --project build/bench/gatekeeper_app [--processes 50] [--changes 40]
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
from pgserver import postgres_bin, postgres_server  # the template tests' server helper

# One listening process: the baked app, its store listening; prints "ready", then one line per reload.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from {package} import create_app
app = create_app()
state = app.extensions["gatekeeper_store"]
reload = state.changed_elsewhere
def changed():
    reload()
    line = json.dumps({{"version": state.current.version, "at": time.monotonic()}}) + "\n"
    sys.stdout.write(line)  # one write per line, so lines from two threads never interleave
    sys.stdout.flush()
state.changed_elsewhere = changed
with app.test_request_context("/"):
    state.snapshot()
while not (state.feed and state.feed.connected):
    time.sleep(0.01)
print("ready", flush=True)
sys.stdin.read()
"""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--processes", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    project = args.project.resolve()
    if postgres_bin() is None:
        print("fan-out: skipped, PostgreSQL is not installed (apt-get install postgresql)")
        return
    package = next(path.parent.name for path in project.glob("*/gatekeeper.py"))
    connections = 2 * args.processes + 20  # a listener and a pool connection each, and some slack
    with postgres_server(f"-c max_connections={connections}") as server:
        url = server.create_database("fanout")
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "fanout", "GATEKEEPER_STORE_TTL": "3600"}
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", package, "init-db"], cwd=project, env=env, check=True
        )
        script = CHILD.format(package=package)
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(project)],
                cwd=project,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.processes)
        ]
        reloads: queue.Queue[tuple[int, dict]] = queue.Queue()

        def read(number: int, child: subprocess.Popen[str]) -> None:
            for line in child.stdout:
                if line.strip() == "ready":
                    reloads.put((number, {"ready": True}))
                elif line.startswith("{"):
                    reloads.put((number, json.loads(line)))

        for number, child in enumerate(children):
            threading.Thread(target=read, args=(number, child), daemon=True).start()
        ready: set[int] = set()
        while len(ready) < len(children):
            number, event = reloads.get(timeout=600)  # 50 interpreters start slowly on 2 cores
            if event.get("ready"):
                ready.add(number)

        sys.path.insert(0, str(project))
        os.environ.update(DATABASE_URL=url, SECRET_KEY="fanout", GATEKEEPER_STORE_PUSH="0")
        baked = __import__(package)
        writer = baked.create_app()
        store = sys.modules[f"{package}.gatekeeper_control.store"].store
        first, middle, last = [], [], []
        with writer.app_context():
            for change in range(args.changes):
                start = time.monotonic()
                store.force("MY_NEW_FEATURE", ("VISIBLE", "NOT_VISIBLE")[change % 2], actor="bench")
                version = store.snapshot(max_age=0).version
                seen: dict[int, float] = {}
                while len(seen) < len(children):
                    number, event = reloads.get(timeout=60)
                    if event.get("version") == version:
                        seen.setdefault(number, event["at"])
                delays = sorted(at - start for at in seen.values())
                first.append(delays[0])
                middle.append(statistics.median(delays))
                last.append(delays[-1])
                time.sleep(0.05)
        for child in children:
            child.stdin.close()
        for child in children:
            child.wait(timeout=30)

    def line(label: str, samples: list[float]) -> str:
        p50, p99 = statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
        return f"  change -> {label:<15} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"

    print(f"fan-out: {args.processes} listening processes, {args.changes} changes, {os.cpu_count()} CPUs")
    print(line("first process", first))
    print(line("median process", middle))
    print(line("last process", last))


if __name__ == "__main__":
    main()
