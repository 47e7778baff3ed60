"""Test-only: force LOAD_1 to A, B, A, ... every INTERVAL seconds through the store, until killed."""

import importlib
import sys
import time

from loadtest_app import PACKAGE, app

INTERVAL = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1

store = importlib.import_module(f"{PACKAGE}.gatekeeper_control.store").store
with app.app_context():
    flips = 0
    while True:
        try:
            store.force("LOAD_1", "AB"[flips % 2], actor="flipper")
            flips += 1
        except Exception as exc:  # an outage: say so, keep trying
            print(f"flip refused: {exc}", flush=True)
        print(f"flips {flips}", flush=True)
        time.sleep(INTERVAL)
