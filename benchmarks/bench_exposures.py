"""`make bench`, exposures: what recording `flag_evaluated` exposures adds to a page that checks ten flags.

The baked app is built twice, the same in all but GATEKEEPER_EXPOSURES (on / off), outside TESTING so the
background writer really runs (every second here, so its writes fall inside the timed loops). Two visitor
mixes: one returning visitor (the same anonymous-id cookie on every request: few new units), and a new
visitor on every request (a fresh anonymous id each time: one new unit per rollout flag per request, the
worst case for the buffer). Before timing, the run checks that recording really happens: the ten-flag
page's exposures reach the database. Nothing asserts a time; the table prints the ratio the issue targets.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from benchcommon import (
    check_offline,
    forbid_network,
    import_baked_package,
    interleaved_samples,
    print_table,
    project_argument,
)

REQUESTS_PER_SAMPLE = 300
ROUNDS = 21
TARGET_PERCENT = 5.0
FLAG_COUNT = 10


def ten_flags(gatekeeper: ModuleType) -> dict[str, Any]:
    """Ten flags of the two common kinds: five on for everyone, five 50% rollouts by visitor."""

    class AlwaysOnFFConfig(gatekeeper.FeatureFlagConfig):
        VARIANTS_ENUM_STR = "ON OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.variants_enum.ON

    class HalfFFConfig(gatekeeper.FeatureFlagConfig):
        VARIANTS_ENUM_STR = "ON OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id, {"ON": 50, "OFF": 50})

    configs = {}
    for number in range(FLAG_COUNT):
        name = f"EXPOSURE_BENCH_{number}"
        base = AlwaysOnFFConfig if number % 2 else HalfFFConfig
        configs[name] = type(f"ExposureBench{number}FFConfig", (base,), {"FLAG_NAME": name})()
    return configs


def build_app(package: ModuleType, database: Path, exposures_on: bool) -> Any:
    import flask

    app = package.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "SECRET_KEY": "bench-secret",
            "GATEKEEPER_EXPOSURES": exposures_on,
            "GATEKEEPER_EXPOSURES_FLUSH": 1.0,
        }
    )
    with app.app_context():
        package.database.init_db()
    names = sorted(
        name for name in package.gatekeeper_config.FF_CONFIG_MAP if name.startswith("EXPOSURE_BENCH_")
    )

    @app.get("/bench/ten-flags")
    def page() -> str:
        gk = flask.request.gk
        return ",".join("1" if gk.ff(name, "ON") else "0" for name in names)

    return app


def stored_exposures(package: ModuleType, app: Any) -> int:
    from sqlalchemy import func, select

    recorder = package.gatekeeper_control.exposures.exposures.recorder(app)
    with app.app_context():
        recorder.flush()
        with recorder.engine.connect() as connection:
            count = package.gatekeeper_control.exposures.ExposureCount.count
            return connection.scalar(select(func.coalesce(func.sum(count), 0)))


def end_of_request_us(package: ModuleType, app: Any, loops: int = 20_000) -> float:
    """µs of the recorder's end-of-request step for a request that evaluated the ten flags (median of 7
    loops)."""
    import flask

    recorder = package.gatekeeper_control.exposures.exposures.recorder(app)
    names = sorted(
        name for name in package.gatekeeper_config.FF_CONFIG_MAP if name.startswith("EXPOSURE_BENCH_")
    )
    headers = {"Cookie": f"{package.gatekeeper.ANONYMOUS_COOKIE}=0123456789abcdef0123456789abcdef"}
    with app.test_request_context("/bench/ten-flags", headers=headers):
        app.preprocess_request()
        for name in names:
            flask.request.gk.ff(name, "ON")
        gk, request = flask.request.gk, flask.request._get_current_object()
        samples = []
        for _ in range(7):
            start = time.perf_counter_ns()
            for _ in range(loops):
                recorder.count_request(gk, request)
            samples.append((time.perf_counter_ns() - start) / loops / 1000)
    recorder.flush()
    return statistics.median(samples)


def main() -> None:
    forbid_network()
    package = import_baked_package(project_argument(__doc__.splitlines()[0]))
    package.gatekeeper_config.FF_CONFIG_MAP.update(ten_flags(package.gatekeeper))
    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-exposures-"))
    apps = {
        "off": build_app(package, workdir / "off.db", False),
        "on": build_app(package, workdir / "on.db", True),
    }
    cookie = package.gatekeeper.ANONYMOUS_COOKIE

    # Sanity before timing: the recording app records ten exposures per page, the other none.
    probe = apps["on"].test_client()
    for _ in range(3):
        assert probe.get("/bench/ten-flags").status_code == 200
    if stored_exposures(package, apps["on"]) != 3 * FLAG_COUNT:
        raise SystemExit("the ten-flag page did not record ten exposures per request")
    if package.gatekeeper_control.exposures.exposures.recorder(apps["off"]) is not None:
        raise SystemExit("GATEKEEPER_EXPOSURES=False still records")

    total = REQUESTS_PER_SAMPLE * (ROUNDS + 1)
    new_ids = {name: [secrets.token_hex(16) for _ in range(total)] for name in ("off", "on")}

    def returning(name: str) -> Any:
        client = apps[name].test_client()
        client.set_cookie(cookie, "0123456789abcdef0123456789abcdef")

        def run() -> None:
            for _ in range(REQUESTS_PER_SAMPLE):
                client.get("/bench/ten-flags")

        return run

    def new_visitors(name: str) -> Any:
        client = apps[name].test_client(use_cookies=False)
        ids = iter(new_ids[name])

        def run() -> None:
            for _ in range(REQUESTS_PER_SAMPLE):
                client.get("/bench/ten-flags", headers={"Cookie": f"{cookie}={next(ids)}"})

        return run

    runs = {
        "returning, off": returning("off"),
        "returning, on": returning("on"),
        "new visitors, off": new_visitors("off"),
        "new visitors, on": new_visitors("on"),
    }
    samples = interleaved_samples(runs, REQUESTS_PER_SAMPLE, rounds=ROUNDS)
    rows = []
    for mix in ("returning", "new visitors"):
        off, on = samples[f"{mix}, off"], samples[f"{mix}, on"]
        paired = (
            statistics.median(with_it / without - 1 for with_it, without in zip(on, off, strict=True)) * 100
        )
        rows.append(
            [
                f"ten-flag page, {mix}",
                f"{statistics.median(off) / 1000:.1f} µs",
                f"{statistics.median(on) / 1000:.1f} µs",
                f"{paired:+.2f}%",
                f"{(min(on) / min(off) - 1) * 100:+.2f}%",
            ]
        )
    print(
        f"Exposure recording on a page that checks {FLAG_COUNT} flags (GET through the test client, median of"
    )
    print(f"{ROUNDS} interleaved rounds of {REQUESTS_PER_SAMPLE}; Python {sys.version.split()[0]}):")
    print()
    print_table(["case", "exposures off", "exposures on", "added (paired median)", "added (fastest)"], rows)
    recorder = package.gatekeeper_control.exposures.exposures.recorder(apps["on"])
    direct = end_of_request_us(package, apps["on"])
    page_off = statistics.median(samples["returning, off"]) / 1000
    print()
    print(
        f"  measured directly: counting a request's ten exposures at its end takes {direct:.2f} µs, "
        f"{direct / page_off * 100:.2f}% of the page without recording"
    )
    print(
        f"target: recording adds under {TARGET_PERCENT:.0f}% to the page; dropped entries: {recorder.dropped}"
    )
    check_offline()


if __name__ == "__main__":
    main()
