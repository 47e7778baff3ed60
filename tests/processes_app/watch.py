"""Test-only (copied into a bake by tests/test_workers_and_forks.py, never shipped): a process that serves
no request, as a job worker or a cron script is, watching one flag and printing `<pid> <variant>` each time
the variant it gets changes.

    python watch.py FLAG SECONDS          watch in this process
    python watch.py FLAG SECONDS --fork   check once here first (snapshot loaded, listening), then watch in
                                          a child forked by multiprocessing, as a pool of workers would
"""

import importlib
import multiprocessing
import os
import sys
import time

from loadtest_app import PACKAGE, app

gatekeeper = importlib.import_module(f"{PACKAGE}.gatekeeper")


def watch(flag: str, seconds: float) -> None:
    seen = None
    deadline = time.monotonic() + seconds
    with app.app_context():
        while time.monotonic() < deadline:
            # One Gatekeeper per unit of work, as a job makes one per task: each sees the current snapshot.
            variant = gatekeeper.Gatekeeper(user_id="7").ff_variant(flag)
            if variant != seen:
                print(f"{os.getpid()} {variant}", flush=True)
                seen = variant
            time.sleep(0.02)


if __name__ == "__main__":
    flag, seconds = sys.argv[1], float(sys.argv[2])
    if "--fork" not in sys.argv:
        watch(flag, seconds)
    else:
        with app.app_context():
            print(f"parent {os.getpid()} {gatekeeper.Gatekeeper(user_id='7').ff_variant(flag)}", flush=True)
            feed = app.extensions["gatekeeper_store"].feed
            deadline = time.monotonic() + 10
            while feed is not None and not feed.connected and time.monotonic() < deadline:
                time.sleep(0.05)  # listening before the fork, so the child inherits a listener
        child = multiprocessing.get_context("fork").Process(target=watch, args=(flag, seconds))
        child.start()
        child.join()
