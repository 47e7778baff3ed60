"""The dashboard and the override store at scale: 1,000 flags and 10,000 stored user overrides in SQLite.

Measures, through the baked app's own factory and a real SQLite file:
- the server time to render the flag list for an admin (test client GETs, median of several): its first page
  (50 of the 1,000 flags), its last page, a search by owner and a filter by tag;
- the cost of a first flag evaluation with 0, 1 and 10,000 stored overrides (it should not grow: flag
  checks read the store's in-process snapshot, never the database);
- one override written through the store's API while 10,000 are stored (the write reloads the snapshot).

The 10,000 overrides (one per user, ten per flag, each with its audit entry, as the store's API writes
them) are inserted in bulk into the store's tables: the API's one-transaction-per-change path is used for
the first few and for the timed write, not for seeding. Times are printed, never asserted.
"""

from __future__ import annotations

import cProfile
import importlib
import io
import pstats
import re
import statistics
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from benchcommon import (
    build_baked_app,
    check_offline,
    forbid_network,
    import_baked_package,
    log_in,
    median_per_item,
    project_argument,
)

forbid_network()

FLAGS = 1_000
USERS = 10_000
OVERRIDES_VIA_API = 20  # the first overrides go through store.set_user_override, the rest in bulk
LIST_REQUESTS = 15
LIST_TARGET_MS = 100.0


def bench_flags(gatekeeper: ModuleType, count: int) -> dict[str, Any]:
    """`count` flags, alternating a 10% rollout and an on/off rule, with descriptions like real ones."""

    class RolloutFFConfig(gatekeeper.FeatureFlagConfig):
        VARIANTS_ENUM_STR = "ON OFF"
        DEFAULT_VARIANT = "OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id, {"ON": 10, "OFF": 90})

    class StaffOnlyFFConfig(gatekeeper.FeatureFlagConfig):
        VARIANTS_ENUM_STR = "ON OFF"
        DEFAULT_VARIANT = "OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.variants_enum.ON if user_id == "1" else self.variants_enum.OFF

    configs = {}
    for number in range(count):
        name = f"BENCH_FLAG_{number:04d}"
        base = RolloutFFConfig if number % 2 else StaffOnlyFFConfig
        description = (
            f"Benchmark flag {number}: {'a 10% rollout' if number % 2 else 'staff only'} of feature {number}."
        )
        attributes = {
            "FLAG_NAME": name,
            "DESCRIPTION": description,
            "OWNER": f"team-{number % 20}",
            "TAGS": (f"area-{number % 50}", "rollout" if number % 2 else "staff"),
        }
        configs[name] = type(f"BenchFlag{number:04d}FFConfig", (base,), attributes)()
    return configs


def seed(package: ModuleType, app: Any, config_map: Mapping[str, Any]) -> tuple[int, str]:
    """An admin, and 10,000 users with one override each (ten per flag, variants in turn); the admin's id
    and the id Flask-Login keeps in the admin's session."""
    with app.app_context():
        admin, users = create_users(package)
        admin_id, admin_session_id = admin.id, admin.get_id()
        flags = sorted(config_map)
        plan = []
        for n, (user_id, email) in enumerate(users):
            flag = flags[n % len(flags)]
            variants = config_map[flag].get_variants()
            plan.append((flag, user_id, email, variants[n // len(flags) % len(variants)]))
        store = package.gatekeeper_control.store.store
        for flag, user_id, _email, variant in plan[:OVERRIDES_VIA_API]:
            store.set_user_override(flag, user_id, variant, actor="bench")
        insert_overrides(package, plan[OVERRIDES_VIA_API:])
        snapshot = store.snapshot(max_age=0)
        stored = sum(len(overrides) for overrides in snapshot.user_overrides.values())
        if stored != USERS:
            raise SystemExit(f"seeding stored {stored} overrides, not {USERS}")
    return admin_id, admin_session_id


def create_users(package: ModuleType) -> tuple[Any, list[tuple[str, str]]]:
    """The admin (with a real password hash, shared by every user to keep seeding fast) and 10,000 users."""
    from sqlalchemy import insert

    db, User = package.extensions.db, package.models.User
    admin = User(email="admin@example.com", is_admin=True)
    admin.set_password("bench-password")
    db.session.add(admin)
    db.session.commit()
    rows = [
        {"email": f"user{n}@example.com", "password_hash": admin.password_hash, "is_admin": False}
        for n in range(1, USERS + 1)
    ]
    db.session.execute(insert(User), rows)
    db.session.commit()
    query = db.select(User.id, User.email).where(User.id != admin.id).order_by(User.id)
    return admin, [(str(user_id), email) for user_id, email in db.session.execute(query)]


def insert_overrides(package: ModuleType, plan: list[tuple[str, str, str, str]]) -> None:
    """Rows as `store.set_user_override` writes them (override + audit entry), in one transaction."""
    from sqlalchemy import insert, update

    tables, now = package.gatekeeper_control.tables, datetime.now(UTC)
    overrides = [
        {
            "flag": flag,
            "user_id": user_id,
            "user_label": email,
            "variant": variant,
            "set_by": "bench",
            "set_at": now,
        }
        for flag, user_id, email, variant in plan
    ]
    audit = [
        {
            "at": now,
            "actor": "bench",
            "flag": flag,
            "action": "user_override",
            "target": email,
            "after": variant,
        }
        for flag, _user_id, email, variant in plan
    ]
    version = tables.VersionRow.__table__
    with package.extensions.db.engine.begin() as connection:
        connection.execute(insert(tables.UserOverrideRow.__table__), overrides)
        connection.execute(insert(tables.AuditRow.__table__), audit)
        connection.execute(update(version).values(version=version.c.version + 1))


def seed_one(package: ModuleType, app: Any, flag: str) -> None:
    """One user with one override (on another flag than the one evaluated): the store is no longer empty."""
    User = package.models.User
    with app.app_context():
        user = User(email="only@example.com", password_hash="-")
        package.extensions.db.session.add(user)
        package.extensions.db.session.commit()
        package.gatekeeper_control.store.store.set_user_override(flag, str(user.id), "ON", actor="bench")


# The list's views timed: the first page, the last page, a search (owner), a filter (tag) and a sort.
LIST_VIEWS = {
    "first page": "/",
    "last page": "/?page=20",
    "search by owner": "/?q=team-7",
    "filter by tag": "/?tag=area-3",
    "sort by change": "/?sort=changed",
}


def every_flag_is_listed(client: Any, prefix: str, flags: list[str]) -> None:
    """Following the list's pages from the first shows every flag once (paging loses none)."""
    seen, page = [], 1
    while True:
        response = client.get(f"{prefix}/", query_string={"page": page})
        if response.status_code != 200:
            raise SystemExit(f"GET {prefix}/?page={page} as an admin answered {response.status_code}")
        html = response.get_data(as_text=True)
        seen += re.findall(r'class="gk-flag-name" href="[^"]+">(\w+)</a>', html)
        if 'rel="next"' not in html:
            break
        page += 1
    if sorted(seen) != sorted(flags):
        raise SystemExit(f"the list's {page} pages show {len(seen)} flags, not the {len(flags)} the app has")


def flag_list_times(app: Any, admin_session_id: str, flags: list[str]) -> tuple[dict[str, list[float]], str]:
    """Milliseconds per GET of each of the list's views as an admin, and the profile of one first page."""
    prefix = app.config.get("GATEKEEPER_URL_PREFIX", "/gatekeeper")
    client = app.test_client()
    log_in(client, admin_session_id)
    every_flag_is_listed(client, prefix, flags)
    times = {}
    for view, path in LIST_VIEWS.items():
        if client.get(f"{prefix}{path}").status_code != 200:
            raise SystemExit(f"GET {prefix}{path} failed")
        times[view] = []
        for _ in range(LIST_REQUESTS):
            start = time.perf_counter_ns()
            client.get(f"{prefix}{path}")
            times[view].append((time.perf_counter_ns() - start) / 1e6)
    profiler = cProfile.Profile()
    profiler.enable()
    client.get(f"{prefix}/")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    return times, out.getvalue()


def evaluation_ns(package: ModuleType, app: Any, flag: str) -> float:
    """Median ns of a first evaluation (new Gatekeeper + one ff) over 10,000 user ids."""
    Gatekeeper = package.gatekeeper.Gatekeeper
    ids = [str(uid) for uid in range(2, USERS + 2)]

    def run(_: None) -> None:
        for uid in ids:
            Gatekeeper(uid, app).ff(flag, "ON")

    with app.app_context():
        return median_per_item(run, len(ids))


def timed_write_ms(package: ModuleType, app: Any, flag: str, admin_id: int) -> float:
    store = package.gatekeeper_control.store.store
    with app.app_context():
        start = time.perf_counter_ns()
        store.set_user_override(flag, str(admin_id), "ON", actor="bench")
        elapsed = (time.perf_counter_ns() - start) / 1e6
        store.clear_user_override(flag, str(admin_id), actor="bench")
    return elapsed


def main() -> None:
    project = project_argument(__doc__.splitlines()[0])
    package = import_baked_package(project)
    importlib.import_module(f"{package.__name__}.models")
    config_map = package.gatekeeper_config.FF_CONFIG_MAP
    config_map.update(bench_flags(package.gatekeeper, FLAGS - len(config_map)))
    flags = sorted(config_map)
    bench_flag = next(name for name in flags if name.startswith("BENCH_FLAG_"))

    with tempfile.TemporaryDirectory(prefix="gatekeeper-dashboard-bench-") as tmp:
        empty = build_baked_app(package, Path(tmp) / "empty.db")
        one = build_baked_app(package, Path(tmp) / "one.db")
        full = build_baked_app(package, Path(tmp) / "full.db")
        seed_one(package, one, [name for name in flags if name.startswith("BENCH_FLAG_")][-1])
        seed_start = time.perf_counter()
        admin_id, admin_session_id = seed(package, full, config_map)
        seed_seconds = time.perf_counter() - seed_start
        times, profile = flag_list_times(full, admin_session_id, flags)
        evaluations = {
            0: evaluation_ns(package, empty, bench_flag),
            1: evaluation_ns(package, one, bench_flag),
            USERS: evaluation_ns(package, full, bench_flag),
        }
        write_ms = timed_write_ms(package, full, bench_flag, admin_id)

    medians = {view: statistics.median(values) for view, values in times.items()}
    print(
        f"Dashboard at scale: {len(flags):,} flags, {USERS:,} stored user overrides and {USERS:,} audit "
        f"entries in SQLite (seeded in {seed_seconds:.1f} s)"
    )
    prefix = full.config["GATEKEEPER_URL_PREFIX"]
    print(f"  flag list as an admin (GET {prefix}/..., test client, 50 flags to a page):")
    for view, values in times.items():
        print(
            f"    {view:<16} {LIST_VIEWS[view]:<16} median {medians[view]:6.1f} ms over {LIST_REQUESTS} "
            f"requests (min {min(values):.1f}, max {max(values):.1f})"
        )
    slowest = max(medians.values())
    verdict = "met" if slowest < LIST_TARGET_MS else "MISSED"
    print(f"    target: every view under {LIST_TARGET_MS:.0f} ms: {verdict}")
    print("  first evaluation of a flag (new Gatekeeper + one ff()), median ns over 10,000 user ids:")
    for count, value in evaluations.items():
        ratio = value / evaluations[1]
        print(f"    {count:>6,} stored overrides: {value:7,.0f} ns  ({ratio:.2f}x the 1-override case)")
    print(
        f"  one override written through the store with {USERS:,} stored "
        f"(its snapshot reload included): {write_ms:.1f} ms"
    )
    if slowest >= LIST_TARGET_MS:
        print("  where one flag-list request (the first page) spends its time (cProfile, cumulative):")
        print("\n".join("    " + line for line in profile.splitlines()[:45]))
    check_offline()


if __name__ == "__main__":
    main()
