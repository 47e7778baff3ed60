"""A flag check with 100 segments of 5 conditions stored costs what it costs with none.

Through the baked app's own factory and a real SQLite file: the first evaluation of NEW_CHECKOUT (a 10%
rollout) for 10,000 users, each in a fresh Gatekeeper given that user's evaluation context (email, plan,
age, country, app_version), as OpenFeature's provider builds one per call, with (1) nothing stored, (2) 100
segments of 5 conditions each (ends_with, in, gte, is_set, semver_gt) and no target on the flag, and (3) the
same with NEW_CHECKOUT targeting one of them (which about 1 user in 100 matches, so nearly every check walks
all 5 conditions before falling through to the rule). The segments are made through the store's own API
(`segments.create`, `segments.add_condition`). Times and ratios are printed, never asserted; the issue's
targets are (2) <= 1.1x (1) and (3) <= 2x (1).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

from benchcommon import (
    build_baked_app,
    check_offline,
    forbid_network,
    import_baked_package,
    interleaved_samples,
    print_table,
    project_argument,
)

forbid_network()

SEGMENTS = 100
USER_IDS = range(1, 10_001)
PLANS = ("free", "pro", "team")


def context_of(user_id: int) -> dict[str, Any]:
    return {
        "email": f"user{user_id}@example{user_id % SEGMENTS}.com",
        "plan": PLANS[user_id % 3],
        "age": 18 + user_id % 50,
        "country": "FR" if user_id % 2 else None,
        "app_version": f"2.{user_id % 20}.0",
    }


def seed_segments(package: Any, app: Any, target: bool) -> None:
    segments = importlib.import_module(f"{package.__name__}.gatekeeper_control.segments").segments
    targeting = importlib.import_module(f"{package.__name__}.gatekeeper_control.targeting").targeting
    with app.app_context():
        for n in range(SEGMENTS):
            name = f"segment-{n}"
            segments.create(name, "bench", actor="bench")
            segments.add_condition(name, "email", "ends_with", f"@example{n}.com", actor="bench")
            segments.add_condition(name, "plan", "in", "pro,team", actor="bench")
            segments.add_condition(name, "age", "gte", "21", actor="bench")
            segments.add_condition(name, "country", "is_set", None, actor="bench")
            segments.add_condition(name, "app_version", "semver_gt", "2.1.0", actor="bench")
        if target:
            targeting.target("NEW_CHECKOUT", "segment-7", "ON", actor="bench")
        snapshot = app.extensions["gatekeeper_store"].snapshot(max_age=0)
        assert len(snapshot.segments) == SEGMENTS
        assert sum(len(segment.conditions) for segment in snapshot.segments.values()) == 5 * SEGMENTS


def checks(package: Any, app: Any, contexts: dict[int, dict[str, Any]]) -> Any:
    Gatekeeper = package.gatekeeper.Gatekeeper

    def run() -> None:
        for user_id in USER_IDS:
            Gatekeeper(user_id, app, None, None, None, contexts[user_id]).ff("NEW_CHECKOUT", "ON")

    return run


def main() -> None:
    project = project_argument(__doc__.splitlines()[0])
    package = import_baked_package(project)
    contexts = {user_id: context_of(user_id) for user_id in USER_IDS}
    cases = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, stored, target in (
            ("none", False, False),
            ("segments", True, False),
            ("target", True, True),
        ):
            app = build_baked_app(package, Path(folder) / f"{name}.db")
            if stored:
                seed_segments(package, app, target)
            with app.app_context():
                app.extensions[
                    "gatekeeper_store"
                ].snapshot()  # loaded before timing, as after a first request
            cases[name] = app
        with cases["target"].app_context():
            Gatekeeper = package.gatekeeper.Gatekeeper
            matched = sum(
                Gatekeeper(uid, cases["target"], None, None, None, contexts[uid])
                .explain("NEW_CHECKOUT")
                .reason
                == "group_target"
                for uid in USER_IDS
            )
        assert 0 < matched < len(USER_IDS) // 10, matched  # the segment really matches some, not most

        def within(app: Any) -> Any:
            run = checks(package, app, contexts)

            def timed() -> None:
                with app.app_context():
                    run()

            return timed

        samples = interleaved_samples({name: within(app) for name, app in cases.items()}, len(USER_IDS))
    medians = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    print(f"Flag check with segments stored (first evaluation of NEW_CHECKOUT), {len(USER_IDS):,} users")
    print_table(
        ["stored", "ns per check", "ratio"],
        [
            ["nothing", f"{medians['none']:.0f}", "1.00"],
            [
                f"{SEGMENTS} segments of 5 conditions, the flag targets none",
                f"{medians['segments']:.0f}",
                f"{medians['segments'] / medians['none']:.2f}",
            ],
            [
                f"the same, the flag targets one ({matched} of {len(USER_IDS):,} users match)",
                f"{medians['target']:.0f}",
                f"{medians['target'] / medians['none']:.2f}",
            ],
        ],
    )
    print("(ratios: to nothing stored; targets <= 1.10 without a target, <= 2.00 with one)")
    check_offline()


if __name__ == "__main__":
    main()
