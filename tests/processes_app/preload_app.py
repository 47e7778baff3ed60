"""Test-only (copied into a bake by tests/test_workers_and_forks.py, never shipped): the ten-flag app of
scale_out_app, after a flag check in the process that imports it. Served with gunicorn `--preload`, that is
the master, before it forks the workers: its snapshot is loaded, its change listener runs and its pool holds
a connection, all of which the workers inherit and must not use."""

import importlib
import time

from loadtest_app import PACKAGE, app

gatekeeper = importlib.import_module(f"{PACKAGE}.gatekeeper")

with app.app_context():
    gatekeeper.Gatekeeper(user_id="0").ff("LOAD_0", "A")
    feed = app.extensions["gatekeeper_store"].feed
    deadline = time.monotonic() + 10
    while feed is not None and not feed.connected and time.monotonic() < deadline:  # listening, pre-fork
        time.sleep(0.05)
