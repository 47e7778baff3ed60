"""A flag check with 1,000 groups and 100,000 memberships stored costs what it costs with none.

Through the baked app's own factory and a real SQLite file: the first evaluation of NEW_CHECKOUT (a 10%
rollout) for 10,000 user ids, each in a fresh Gatekeeper as in a fresh request, with
(1) nothing stored, (2) 1,000 groups holding 100,000 memberships (100 per group, each user in 10
groups) and no target on the flag, and (3) the same with NEW_CHECKOUT targeting one of those groups. The
groups are inserted in bulk into the store's tables; the snapshot reload that follows is timed once.
Times and ratios are printed, never asserted.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
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

GROUPS = 1_000
MEMBERSHIPS = 100_000
USER_IDS = range(1, 10_001)


def seed_groups(package: Any, app: Any, group_count: int, membership_count: int) -> float:
    """Insert the groups and memberships in bulk, bump the version; return the snapshot reload's seconds."""
    tables = package.gatekeeper_control.tables
    now = datetime.now(UTC)
    groups = [
        {"name": f"group-{n}", "description": "bench", "created_by": "bench", "created_at": now}
        for n in range(group_count)
    ]
    per_group = membership_count // group_count
    members = []
    for n in range(membership_count):
        user_id = str(n * 7919 % len(USER_IDS) + 1)  # distinct within a group; each user in ~10 groups
        members.append(
            {
                "group": f"group-{n // per_group}",
                "user_id": user_id,
                "user_label": f"user{user_id}@example.com",
                "added_by": "bench",
                "added_at": now,
            }
        )
    with app.app_context():
        store = package.gatekeeper_control.store.store
        engine = package.extensions.db.engine
        with engine.begin() as connection:
            connection.execute(tables.GroupRow.__table__.insert(), groups)
            connection.execute(tables.MemberRow.__table__.insert(), members)
            connection.execute(
                package.gatekeeper_control.tables.VersionRow.__table__.update().values(version=12345)
            )
        start = time.perf_counter()
        snapshot = store.snapshot(max_age=0)
        elapsed = time.perf_counter() - start
        assert len(snapshot.groups) == group_count
        assert sum(map(len, snapshot.memberships.values())) == membership_count
    return elapsed


def checks(package: Any, app: Any) -> Any:
    gatekeeper = package.gatekeeper

    def run() -> None:
        for user_id in USER_IDS:
            gatekeeper.Gatekeeper(user_id, app).ff("NEW_CHECKOUT", "ON")

    return run


def main() -> None:
    project = project_argument(__doc__.splitlines()[0])
    package = import_baked_package(project)
    targeting = package.gatekeeper_control.targeting.targeting
    cases = {}  # name -> (app, stored at scale?, targets a group?)
    with tempfile.TemporaryDirectory() as folder:
        for name, at_scale, targeted in (
            ("none", False, False),
            ("groups", True, False),
            ("small_target", False, True),
            ("groups_target", True, True),
        ):
            app = build_baked_app(package, Path(folder) / f"{name}.db")
            reload_seconds = seed_groups(
                package, app, GROUPS if at_scale else 1, MEMBERSHIPS if at_scale else 10
            )
            with app.app_context():
                if targeted:
                    targeting.target("NEW_CHECKOUT", "group-0", "ON", actor="bench")
                app.extensions[
                    "gatekeeper_store"
                ].snapshot()  # loaded before timing, as after the first request
            if at_scale and not targeted:
                scale_reload = reload_seconds
            cases[name] = app

        def within(app: Any) -> Any:
            run = checks(package, app)

            def timed() -> None:
                with app.app_context():
                    run()

            return timed

        samples = interleaved_samples({name: within(app) for name, app in cases.items()}, len(USER_IDS))
    medians = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    print(f"Flag check (first evaluation of NEW_CHECKOUT in a fresh Gatekeeper), {len(USER_IDS):,} user ids")
    scale = f"{GROUPS:,} groups, {MEMBERSHIPS:,} memberships"
    print_table(
        ["stored", "ns per check", "ratio"],
        [
            ["nothing", f"{medians['none']:.0f}", "1.00"],
            [scale, f"{medians['groups']:.0f}", f"{medians['groups'] / medians['none']:.2f}"],
            ["the flag targets a group of 10 (1 group stored)", f"{medians['small_target']:.0f}", "1.00"],
            [
                f"the flag targets a group, {scale}",
                f"{medians['groups_target']:.0f}",
                f"{medians['groups_target'] / medians['small_target']:.2f}",
            ],
        ],
    )
    print("(ratios: to the row above without the stored groups; 1.00 means size does not matter)")
    print(
        f"snapshot reload with {scale}: {scale_reload * 1000:.0f} ms (off the request path, once per change)"
    )
    check_offline()


if __name__ == "__main__":
    main()
