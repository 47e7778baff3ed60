"""What the OpenTelemetry hook costs a page that checks ten flags: hook on against hook off, per request.

The baked app, with ten flags added, serves a page that asks each of them once, through the Flask test
client, offline. Two apps differ only in `GATEKEEPER_OPENTELEMETRY`. Two situations:

- *api only*: `opentelemetry-api` installed and nothing configured (no SDK, so no span records): the hook
  asks for the current span once per flag and adds nothing;
- *recording span, no exporter*: each request runs inside a span of the SDK's tracer that records but
  exports nowhere (the span an instrumentation opens), so the hook adds ten events to it.

Target: with no exporter configured (api only) the hook on costs at most 1.10x the hook off. With a span
recording, what the hook adds is the SDK's own price of ten events (`Span.add_event` validates and copies
each event's attributes), printed beside it for information. Samples are interleaved, so drift falls on
every case alike, and timed in CPU time, so other processes' turns on a shared machine are not counted;
the ratio is the median of per-round ratios. Printed, never asserted.

Run through `make bench` (benchmarks/run.sh), which bakes the template and installs what this imports.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchcommon import (
    check_offline,
    forbid_network,
    import_baked_package,
    interleaved_samples,
    print_table,
    project_argument,
)

forbid_network()

REQUESTS_PER_SAMPLE = 200
RATIO_TARGET = 1.10
FLAGS = [f"BENCH_OTEL_{number}" for number in range(10)]


def add_ten_flags(package: Any) -> None:
    """Ten flags on the baked app's map: half a plain rule, half a 50% rollout, as pages mix them."""
    gatekeeper = package.gatekeeper

    def plain(self: Any, user_id: Any = None, app: Any = None, request: Any = None, session: Any = None):
        return self.variants_enum.ON

    def rollout(self: Any, user_id: Any = None, app: Any = None, request: Any = None, session: Any = None):
        return self.rollout(user_id, {"ON": 50, "OFF": 50})

    for number, name in enumerate(FLAGS):
        attributes = {
            "FLAG_NAME": name,
            "VARIANTS_ENUM_STR": "ON OFF",
            "DEFAULT_VARIANT": "OFF",
            "_get_variant": plain if number % 2 else rollout,
        }
        config = type(name, (gatekeeper.FeatureFlagConfig,), attributes)
        package.gatekeeper_config.FF_CONFIG_MAP[name] = config()


def build_app(package: Any, database: Path, telemetry: bool) -> Any:
    import flask

    app = package.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "SECRET_KEY": "bench-secret",
            "GATEKEEPER_OPENTELEMETRY": telemetry,
            "GATEKEEPER_EXPOSURES": False,  # the same in both: what differs is the hook alone
        }
    )
    with app.app_context():
        package.database.init_db()

    @app.get("/bench/ten-flags")
    def ten_flags() -> str:
        gk = flask.request.gk
        return ",".join("1" if gk.ff(flag, "ON") else "0" for flag in FLAGS)

    return app


def main() -> None:
    project = project_argument(__doc__.splitlines()[0])
    package = import_baked_package(project)
    from opentelemetry.sdk.trace import TracerProvider

    telemetry = package.gatekeeper_control.telemetry
    if not telemetry.available():
        raise SystemExit("opentelemetry-api is not installed here: see benchmarks/requirements.txt")
    add_ten_flags(package)
    tracer = TracerProvider().get_tracer("bench")  # records, exports nowhere
    with tempfile.TemporaryDirectory() as workdir:
        apps = {on: build_app(package, Path(workdir) / f"otel-{on}.db", on) for on in (True, False)}
        clients = {on: app.test_client() for on, app in apps.items()}
        for client in clients.values():
            client.set_cookie(package.gatekeeper.ANONYMOUS_COOKIE, "0123456789abcdef0123456789abcdef")

        def loop(on: bool, in_span: bool) -> Callable[[], None]:
            client = clients[on]

            def run() -> None:
                for _ in range(REQUESTS_PER_SAMPLE):
                    with tracer.start_as_current_span("GET /bench/ten-flags") if in_span else nullcontext():
                        client.get("/bench/ten-flags")

            return run

        with tracer.start_as_current_span("check") as span:
            clients[True].get("/bench/ten-flags")
            events = [event for event in span.events if event.name == telemetry.EVENT_NAME]
        if len(events) != len(FLAGS):
            raise SystemExit(f"the hook added {len(events)} events for {len(FLAGS)} flags")

        cases = {(on, in_span): loop(on, in_span) for on in (True, False) for in_span in (False, True)}
        samples = interleaved_samples(cases, REQUESTS_PER_SAMPLE, clock=time.thread_time_ns)
    rows = []
    for in_span, title in ((False, "api only, no span recording"), (True, "recording span, no exporter")):
        on, off = samples[(True, in_span)], samples[(False, in_span)]
        ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
        verdict = "ok" if ratio <= RATIO_TARGET else "OVER"
        target = "(the SDK's ten events)" if in_span else f"<= {RATIO_TARGET:.2f}x {verdict}"
        off_us, on_us = statistics.median(off) / 1000, statistics.median(on) / 1000
        rows.append([title, f"{off_us:.1f}", f"{on_us:.1f}", f"{ratio:.3f}x", target])
    print("OpenTelemetry hook: a page with ten flags, CPU µs per GET through the test client")
    print_table(["situation", "hook off", "hook on", "on / off", "target"], rows)
    check_offline()


if __name__ == "__main__":
    main()
