"""Whole requests in CPU instructions: what a flag check costs a page, everything it causes included.

Counted with callgrind (`valgrind --tool=callgrind`), which counts the same whatever else the machine does.
One process, with PYTHONHASHSEED=0, builds the baked app twice (exposures on and off; the benchmark's flags
and pages added, as in bench_flags.py), signs a test client in, warms every page up, then forks one child per
case, which serves K test-client GETs of one page and exits, and beside each a probe that exits at once.
Callgrind counts a forked child's instructions on top of everything its parent ran before the fork, so a
case less its probe is exactly its K GETs: start-up and every one-off cost removed, and start-up paid once.

- the page alone: (case - its probe) / K;
- the first check: the page checking one flag (on for everyone) less the same page checking none;
- ten flags: the page checking ten different flags (five on for everyone, five rollouts) less none;
- gatekeeper's own request hooks on a page that checks no flag: the same page with and without the
  before/after/teardown-request functions that the engine and gatekeeper_control registered and the request
  class `init_app` derived (taken out after the warm-up), as a share of the page without them;
- this round's features on: a third app, the same but with values stored for the ten flags, 100 segments of
  5 conditions stored and one of the ten flags targeting one of them (so its evaluation builds the context
  and asks the segment), and a context with attributes (the user's, and two the page adds with
  `request.gk.add_context` before its checks): the ten-flag page there against the same page with them off
  (the issue's target, <= 1.10x), and what the ten checks alone add, there against without. Outcome
  recording is on in every app as baked, and costs a flag nothing until a release is under
  way on it (outcomes are kept for releases alone); so a fourth app, the third with a guarded release under
  way on another of the ten flags, and a fifth, the fourth with `GATEKEEPER_OUTCOMES` off, give what
  recording costs the ten-flag page then (issue 24's target: <= 1.10x). OpenTelemetry is on in those
  apps (no exporter, no SDK configured: the hook reads the current span per evaluation) where
  `opentelemetry-api` imports: make bench puts it on the path for this benchmark alone; else the table
  says it is not counted;
- Flask's `request` proxy: a page that reads one attribute of the request through it (as every
  `request.gk` does) less the page that reads none: the part of a first check no flag code can change;
- the floor: the one-check page in the app without gatekeeper's hooks and with a `request.gk` that is one
  dictionary (`FloorGatekeeper`), less the no-flag page there: the least any `request.gk.ff()` costs a page.

The page (`/bench/page/<n>`) loads the current user either way, as any layout with a login link does, and is
asked by a returning visitor (the same `gk_anon` cookie every time) and by a signed-in user. Everything the
checks cause is inside the count: the store's snapshot, the override and anonymous cookies, the
`flag_evaluated` signal, exposure recording at the end of the request. Two settings keep the count a
request's own: the store's TTL and the exposure writer's period are set past the run, so the background
refresh and write (once per few seconds per process, whatever the traffic) do not land in one case and not
another; each child ends with `os._exit`, so nothing is written at exit either.

Run by `make bench` (benchmarks/run.sh); `--requests` sets K (at least 1,000 for the verdicts), and the
callgrind files stay in build/callgrind/ for `callgrind_annotate` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from benchcommon import print_table

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE.parent / "build" / "callgrind"
WHO = ("anonymous", "signed-in")
FIRST_CHECK_TARGET = 15_000  # instructions a first flag check may add to a request
TEN_FLAGS_TARGET = 150_000  # ... and ten different flags
HOOK_SHARE_TARGET = 1.0  # percent of a no-flag request that gatekeeper's own hooks may cost
FEATURES_RATIO_TARGET = 1.10  # the ten-flag page with this round's features on, over the same with them off
SEGMENTS = 100
TARGETED = ("BENCH_EXTRA_1", "segment-7", "ON")  # one of the ten flags targets one of the segments
# Another is under a release (flag, treatment, control): its requests' outcomes are recorded.
RELEASED = ("HOMEPAGE_EXPERIMENT", "VARIANT_A", "CONTROL")
FEATURE_KINDS = ("features", "release", "noout")  # the apps with the features stored
RELEASE_KINDS = ("release", "noout")  # ... and a release under way
ANONYMOUS_ID = "0123456789abcdef0123456789abcdef"
# Far past any run: no background snapshot refresh or exposure write lands inside a case.
QUIET_SECONDS = 10**9
# CPython's type cache (4,096 slots, indexed by a type's version tag and the attribute name's address) is
# shared by the whole process: which look-ups collide there, each collision a walk up a class's bases, depends
# on the memory layout and on the order types got their versions, so one run of equivalent code can count
# 5,000-10,000 instructions more or less for a page than another. Each figure is the median of LAYOUTS
# runs, the i-th with every type version shifted by i * LAYOUT_SHIFT (classes made and looked up first).
LAYOUTS = 3
LAYOUT_SHIFT = 7
# GETs of each page before counting: CPython 3.11+ specializes a function's bytecode after a few runs, and the
# first runs of the counted GETs should not pay for that.
WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path, help="the baked project (build/bench/<slug>)")
    parser.add_argument("--requests", type=int, default=1000, help="K: GETs per case (default 1,000)")
    parser.add_argument("--who", choices=WHO, action="append", help="only this visitor (default: both)")
    parser.add_argument(
        "--layouts",
        type=int,
        default=LAYOUTS,
        help=f"runs with CPython's type versions shifted (default {LAYOUTS}); each figure is their median",
    )
    parser.add_argument("--layout", type=int, default=0, help=argparse.SUPPRESS)  # under callgrind: its shift
    parser.add_argument("--hub", type=Path, help=argparse.SUPPRESS)  # under callgrind: write {pid: case} here
    parser.add_argument("--databases", type=Path, help=argparse.SUPPRESS)  # the apps' databases, made first
    args = parser.parse_args()
    visitors = tuple(args.who or WHO)
    if args.hub:
        shift_type_versions(args.layout)
        run_cases(args.project.resolve(), args.requests, visitors, args.hub, args.databases)
    elif args.databases:
        prepare(args.project.resolve(), args.databases)
    else:
        results = measure(args.project.resolve(), args.requests, visitors, args.layouts)
        report(results, args.requests, visitors)


# -- under callgrind: one process, a child per case --------------------------------------------------------

# (checks, kind): "on" is the app as baked; "off" the same with gatekeeper's request hooks taken out (in the
# child); "noexp" the app with GATEKEEPER_EXPOSURES off; "features" the app as baked with this round's
# features on (values, segments, a target on one, a context with attributes); "release" the features app
# with a release under way on another flag; "noout" the release app with GATEKEEPER_OUTCOMES off.
CASES = (
    ("0", "on"),
    ("proxy", "on"),
    ("1", "on"),
    ("10", "on"),
    ("0", "off"),
    ("1", "floor"),
    ("0", "noexp"),
    ("1", "noexp"),
    ("10", "noexp"),
    ("0", "features"),
    ("10", "features"),
    ("0", "release"),
    ("10", "release"),
    ("0", "noout"),
    ("10", "noout"),
)
# The apps built ("off" and "floor" are "on", changed in the child).
KINDS = ("on", "noexp", "features", "release", "noout")
ON_APP_KINDS = ("off", "floor")
RUN_KEYS = ("first", "proxy", "floor", "ten")  # the figures printed with each run's value beside the median


def baked_package(project: Path) -> Any:
    """The baked package, with the benchmark's flags added to its FF_CONFIG_MAP."""
    sys.path.insert(0, str(HERE))
    from bench_flags import bench_flag_configs
    from benchcommon import import_baked_package

    package = import_baked_package(project)
    package.gatekeeper_config.FF_CONFIG_MAP.update(bench_flag_configs(package.gatekeeper))
    return package


def build_app(package: Any, databases: Path, kind: str) -> Any:
    return package.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{databases}/{kind}.db",
            "SECRET_KEY": "bench-secret",
            "GATEKEEPER_STORE_TTL": QUIET_SECONDS,
            "GATEKEEPER_EXPOSURES_FLUSH": QUIET_SECONDS,
            "GATEKEEPER_EXPOSURES": kind != "noexp",
            "GATEKEEPER_OUTCOMES": kind != "noout",
            "GATEKEEPER_OUTCOMES_FLUSH": QUIET_SECONDS,
            # No timer thread: its jobs (due schedules, webhooks, releases, outcome writes) are not a
            # request's work, and a parent's threads are gone in the forked children anyway.
            "GATEKEEPER_TIMER": False,
            # OpenTelemetry (where its API imports: make bench puts it on the path) is one of the features.
            "GATEKEEPER_OPENTELEMETRY": kind in FEATURE_KINDS,
        }
    )


def prepare(project: Path, databases: Path) -> None:
    """Before callgrind, at full speed: each app's database, and the features stored in the features one
    (hundreds of writes, each reloading the snapshot: minutes under callgrind, seconds here)."""
    from bench_flags import TEN_FLAGS

    package = baked_package(project)
    for kind in KINDS:
        app = build_app(package, databases, kind)
        with app.app_context():
            package.database.init_db()
        if kind in FEATURE_KINDS:
            store_features(package, app, TEN_FLAGS, release=kind in RELEASE_KINDS)


def shift_type_versions(layout: int) -> None:
    """Give `layout * LAYOUT_SHIFT` throwaway classes a type version each (a look-up assigns it), so that
    every type made after this one has its version tag that much further on: another type-cache layout."""
    for number in range(layout * LAYOUT_SHIFT):
        _ = type(f"LayoutShift{number}", (), {}).mro


def run_cases(
    project: Path, requests: int, visitors: tuple[str, ...], mapping: Path, databases: Path
) -> None:
    """Build and warm up, then fork each case and its probe, two cases at a time; record who is which."""
    package = baked_package(project)
    import flask
    from bench_flags import TEN_FLAGS
    from benchcommon import bench_user, log_in

    apps, clients = {}, {}
    evaluated = package.gatekeeper.EVALUATED_KEY  # where the OpenTelemetry hook is registered
    telemetry_counted = not telemetry_note(package)
    for kind in KINDS:
        app = apps[kind] = build_app(package, databases, kind)
        app.register_blueprint(pages(flask, TEN_FLAGS, context=kind in FEATURE_KINDS))
        if kind in FEATURE_KINDS and telemetry_counted and not app.extensions.get(evaluated):
            raise SystemExit("OpenTelemetry imports, but the features app records no evaluation")
        recorder = app.extensions.get("gatekeeper_exposures")
        if recorder is not None:
            recorder.flush_seconds = 0  # no writer thread: the same request path, nothing running beside it
        for who in visitors:
            client = clients[who, kind] = app.test_client()
            client.set_cookie(package.gatekeeper.ANONYMOUS_COOKIE, ANONYMOUS_ID)
            if who == "signed-in":
                log_in(client, bench_user(package, app))
            for _ in range(WARM_UP):
                for page in (0, "proxy", 1, 10):
                    response = client.get(f"/bench/page/{page}")
                    if response.status_code != 200 or response.text.startswith("anonymous:") != (
                        who == "anonymous"
                    ):
                        raise SystemExit(f"{who}: /bench/page/{page} answered {response.status_code}")
    # Collections of the start-up heap (SQLAlchemy, Jinja, ...: a full one is tens of millions of
    # instructions) would land in one case and not another, by where the allocation counter happens to
    # stand: frozen, as a server does after preloading, collections walk what the requests allocate.
    gc.collect()
    gc.freeze()
    children: dict[int, str] = {}
    cases = [f"{who}:{checks}:{kind}" for who in visitors for checks, kind in CASES]
    for batch in (cases[i : i + 2] for i in range(0, len(cases), 2)):
        running = []
        for case in batch:
            for role in ("probe", "case"):
                who, checks, kind = case.split(":")
                built = "on" if kind in ON_APP_KINDS else kind  # the app the case runs in
                pid = os.fork()
                if pid == 0:
                    serve(
                        package,
                        apps[built],
                        clients[who, built],
                        checks,
                        kind,
                        role,
                        requests,
                    )
                children[pid] = f"{case}:{role}"
                running.append(pid)
        for pid in running:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise SystemExit(f"{children[pid]} failed (status {status})")
    mapping.write_text(
        json.dumps({"children": children, "telemetry": telemetry_note(package)}), encoding="utf-8"
    )
    sys.stdout.flush()
    os._exit(0)


def serve(package: Any, app: Any, client: Any, checks: str, kind: str, role: str, requests: int) -> None:
    """In a forked child: the same preparation for a probe and a case, then the case's K GETs; exits."""
    try:
        with app.app_context():  # the store reloads after a fork: here, not inside the first counted GET
            app.extensions["gatekeeper"].store.snapshot(max_age=0)
        if kind in ON_APP_KINDS:
            remove_gatekeeper_hooks(app, package)
        if kind == "floor":
            install_floor_gatekeeper(app)
        if role == "case":
            path = f"/bench/page/{checks}"
            for _ in range(requests):
                if client.get(path).status_code != 200:
                    os._exit(3)
        os._exit(0)  # no exit-time exposure write, no interpreter teardown: neither is a request's
    except BaseException:
        traceback.print_exc()
        os._exit(2)


class FloorGatekeeper:
    """The least a `request.gk` can be: made at its first read, kept in the request's `__dict__`, its `ff()`
    one dictionary look-up; no user, no stored changes, no cookies, no rule, no exposures."""

    __slots__ = ("answers",)

    def ff(self, flag: str, variant: str) -> bool:
        return self.answers.get(flag) == variant


class FloorDescriptor:
    """`request.gk` as the engine's `_RequestGatekeeper` gives it, making a FloorGatekeeper."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def __get__(self, request: Any, owner: Any = None) -> Any:
        if request is None:
            return self
        gk = FloorGatekeeper()
        gk.answers = self.answers
        request.__dict__["gk"] = gk
        return gk


def install_floor_gatekeeper(app: Any) -> None:
    """In a child whose gatekeeper hooks are out: the app's request class with a FloorGatekeeper as `gk`."""
    from bench_flags import TEN_FLAGS

    answers = dict(TEN_FLAGS)
    app.request_class = type("FloorRequest", (app.request_class,), {"gk": FloorDescriptor(answers)})


def pages(flask: Any, flags: Any, context: bool = False) -> Any:
    """`/bench/page/<n>`: a page that loads the current user, then asks the first n of `flags`; a page that
    asks none never touches `request.gk`. One flag is asked as a view asks it, `request.gk.ff(...)`; more
    are asked in a generator, whose cost their checks share. With `context`, the page adds two attributes
    to the evaluation context before its checks (as an app adds the request's country or plan).
    `/bench/page/proxy` reads one attribute of a request through Flask's `request` proxy, as
    `request.gk` does, and asks no flag: the proxy's own price, which every `request.gk.ff()` pays."""
    from flask_login import current_user

    bp = flask.Blueprint("bench_instructions", __name__)

    # One route for every page (a route of its own would cost the proxy page a different match), the page
    # named as text: each page compares its name once more than the one before it, a few dozen instructions.
    @bp.get("/bench/page/<page>")
    def page(page: str) -> str:
        who = current_user.get_id() or "anonymous"
        if page == "0":
            return f"{who}:"
        if page == "proxy":
            _ = flask.request.environ
            return f"{who}:"
        if page == "1" and not context:
            flag, variant = flags[0]
            return f"{who}:{'1' if flask.request.gk.ff(flag, variant) else '0'}"
        gk = flask.request.gk
        if context:
            gk.add_context(plan="pro", country="FR")
        answers = ("1" if gk.ff(flag, variant) else "0" for flag, variant in flags[: int(page)])
        return f"{who}:{','.join(answers)}"

    return bp


def store_features(package: Any, app: Any, flags: Any, release: bool = False) -> None:
    """This round's features, stored through the store's own API: a value for the variant each of `flags`
    is asked for, 100 segments of 5 conditions (as bench_segments.py), a target of one flag on one, and with
    `release` a release of another (its first step: the treatment at its first milestone)."""
    control = f"{package.__name__}.gatekeeper_control"
    values = importlib.import_module(f"{control}.values").values
    releases = importlib.import_module(f"{control}.releases").releases
    segments = importlib.import_module(f"{control}.segments").segments
    targeting = importlib.import_module(f"{control}.targeting").targeting
    with app.app_context():
        for flag, variant in flags:
            values.set_value(flag, variant, json.dumps(f"{flag} {variant}, stored"), actor="bench")
        for n in range(SEGMENTS):
            name = f"segment-{n}"
            segments.create(name, "bench", actor="bench")
            segments.add_condition(name, "email", "ends_with", f"@example{n}.com", actor="bench")
            segments.add_condition(name, "plan", "in", "pro,team", actor="bench")
            segments.add_condition(name, "age", "gte", "21", actor="bench")
            segments.add_condition(name, "country", "is_set", None, actor="bench")
            segments.add_condition(name, "app_version", "semver_gt", "2.1.0", actor="bench")
        targeting.target(*TARGETED, actor="bench")
        if release:
            releases.start(*RELEASED, "bench")
        snapshot = app.extensions["gatekeeper"].store.snapshot(max_age=0)
        if len(snapshot.segments) != SEGMENTS or len(snapshot.values) != len(flags):
            raise SystemExit("the features were not stored")
        if TARGETED[0] not in snapshot.group_targets:
            raise SystemExit(f"{TARGETED[0]} targets no segment")
        if release and RELEASED[0] not in getattr(snapshot, "watched", ()):
            raise SystemExit(f"{RELEASED[0]}'s release is not under way")


def telemetry_note(package: Any) -> str:
    """Why OpenTelemetry is not in the features-on case, or "" when it is."""
    try:
        importlib.import_module("opentelemetry.trace")
    except ImportError:
        return "opentelemetry-api is not installed: not counted"
    if importlib.util.find_spec(f"{package.__name__}.gatekeeper_control.telemetry") is None:
        return "this build has no gatekeeper_control.telemetry: not counted"
    return ""


def remove_gatekeeper_hooks(app: Any, package: Any) -> None:
    """Take out the request hooks that the engine and gatekeeper_control registered on the app, and the
    request class `init_app` derived (its `request.gk` and its `close()`, which ends a request that asked a
    flag): the app's own request class again."""
    own = (package.gatekeeper.__name__, f"{package.__name__}.gatekeeper_control")
    if isinstance(app.request_class.__dict__.get("gk"), package.gatekeeper._RequestGatekeeper):
        app.request_class = app.request_class.__bases__[0]

    def ours(function: Any) -> bool:
        module = getattr(function, "__module__", "") or ""
        return module == own[0] or module.startswith(own[1])

    for registry in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        for key, functions in registry.items():
            registry[key] = [function for function in functions if not ours(function)]


# -- the driver -------------------------------------------------------------------------------------------


def measure(
    project: Path, requests: int, visitors: tuple[str, ...] = WHO, layouts: int = LAYOUTS
) -> dict[str, Any]:
    """Per visitor: instructions per request of the page, and what one check, ten, and the hooks add; each
    figure is the median of its value in `layouts` runs (see LAYOUTS); "<who> runs" has each run's value of
    the RUN_KEYS figures."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    databases = Path(tempfile.mkdtemp(prefix="gatekeeper-instructions-"))
    prepared = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--project",
            str(project),
            "--databases",
            str(databases),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if prepared.returncode != 0:
        raise SystemExit(
            f"preparing the databases failed:\n{prepared.stdout[-3000:]}{prepared.stderr[-5000:]}"
        )
    runs = [run_layout(project, requests, visitors, databases, layout) for layout in range(max(1, layouts))]
    shutil.rmtree(databases, ignore_errors=True)
    hub = runs[0][1]
    per_run = [figures(counts, requests, visitors) for counts, _ in runs]
    results: dict[str, Any] = {"telemetry": hub["telemetry"], "layouts": len(runs)}
    for who in visitors:
        # Each figure from each run's own cases (a delta of one run's pages), then the median over the runs.
        results[who] = {key: statistics.median(run[who][key] for run in per_run) for key in per_run[0][who]}
        results[who + " runs"] = {key: [run[who][key] for run in per_run] for key in RUN_KEYS}
    return results


def figures(counts: dict[str, int], requests: int, visitors: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """One run's figures, per visitor, from its counts per case (each case less its probe)."""
    results = {}
    for who in visitors:
        per = {f"{checks}:{kind}": counts[f"{who}:{checks}:{kind}"] / requests for checks, kind in CASES}
        results[who] = {
            "page": per["0:on"],
            "proxy": per["proxy:on"] - per["0:on"],
            "floor": per["1:floor"] - per["0:off"],
            "first": per["1:on"] - per["0:on"],
            "ten": per["10:on"] - per["0:on"],
            "first, exposures off": per["1:noexp"] - per["0:noexp"],
            "ten, exposures off": per["10:noexp"] - per["0:noexp"],
            "hooks": per["0:on"] - per["0:off"],
            "page without hooks": per["0:off"],
            "ten, features on": per["10:features"] - per["0:features"],
            "ten-flag page, features on": per["10:features"],
            "ten-flag page": per["10:on"],
            "ten, release": per["10:release"] - per["0:release"],
            "ten-flag page, release": per["10:release"],
            "ten, outcomes off": per["10:noout"] - per["0:noout"],
            "ten-flag page, outcomes off": per["10:noout"],
        }
    return results


def run_layout(
    project: Path, requests: int, visitors: tuple[str, ...], databases: Path, layout: int
) -> tuple[dict[str, int], dict[str, Any]]:
    """One run under callgrind with type versions shifted by `layout`: per case, its count less its
    probe's; its callgrind files are kept (layout 0's) or removed. It runs on a copy of the prepared
    databases, so that every run starts from the same ones (a run adds the signed-in user)."""
    mapping = OUT_DIR / f"cases-{layout}.json"
    prepared, databases = databases, Path(tempfile.mkdtemp(prefix="gatekeeper-instructions-run-"))
    shutil.copytree(prepared, databases, dirs_exist_ok=True)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={OUT_DIR}/pid-%p.out",
        sys.executable,
        str(Path(__file__).resolve()),
        "--project",
        str(project),
        "--requests",
        str(requests),
        "--hub",
        str(mapping),
        "--databases",
        str(databases),
        f"--layout={layout}",
        *(f"--who={who}" for who in visitors),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    shutil.rmtree(databases, ignore_errors=True)
    if completed.returncode != 0 or not mapping.exists():
        shutil.rmtree(prepared, ignore_errors=True)
        raise SystemExit(
            f"the cases failed under callgrind:\n{completed.stdout[-3000:]}{completed.stderr[-5000:]}"
        )
    totals: dict[str, int] = {}
    hub = json.loads(mapping.read_text(encoding="utf-8"))
    for pid, name in hub["children"].items():
        out = OUT_DIR / f"pid-{pid}.out"
        totals[name] = total_instructions(out)
        if layout == 0 and name.endswith(":case"):  # kept under its case's name, for callgrind_annotate
            out.rename(OUT_DIR / f"{name.removesuffix(':case').replace(':', '-')}.out")
    for leftover in OUT_DIR.glob("pid-*.out"):
        leftover.unlink()
    cases = {name.rsplit(":", 1)[0] for name in totals}
    return {case: totals[f"{case}:case"] - totals[f"{case}:probe"] for case in cases}, hub


def total_instructions(out: Path) -> int:
    """The `totals:` (or `summary:`) line of a callgrind output file: instructions executed (Ir)."""
    text = out.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{out}: no instruction total")
    return int(match.group(1))


def report(results: dict[str, Any], requests: int, visitors: tuple[str, ...] = WHO) -> None:
    """The table, each target beside its row, and the verdicts."""
    shares = {who: 100 * results[who]["hooks"] / results[who]["page without hooks"] for who in visitors}
    # The target: "the ten-flag page stays <= 1.1x of the same page with them off". What the
    # features add to the ten checks alone, over the checks with them off, is printed beside it (no target).
    page_ratios = {
        who: results[who]["ten-flag page, features on"] / results[who]["ten-flag page"] for who in visitors
    }
    ratios = {who: results[who]["ten, features on"] / results[who]["ten"] for who in visitors}
    outcome_ratios = {
        who: results[who]["ten-flag page, release"] / results[who]["ten-flag page, outcomes off"]
        for who in visitors
    }
    labels = {"anonymous": "anonymous", "signed-in": "signed in"}
    print(
        f"instructions per request (callgrind; {requests:,} test-client GETs per case, PYTHONHASHSEED=0,"
        " start-up removed by differencing cases; each the median of"
        f" {results['layouts']} runs with CPython's type versions shifted: see LAYOUTS)"
    )

    def each_run(key: str) -> list[str]:
        return [
            " ".join(f"{count / 1000:+,.1f}k" for count in results[f"{who} runs"][key]) for who in visitors
        ]

    def counts(key: str, sign: str = "") -> list[str]:
        return [f"{sign}{results[who][key]:,.0f}" for who in visitors]

    rows = [
        ["page that checks no flag (it loads the current user)", *counts("page"), ""],
        ["  the first flag check adds", *counts("first", "+"), f"<= {FIRST_CHECK_TARGET:,}"],
        ["    in each run", *each_run("first"), ""],
        ["    of which Flask's request proxy (any request.<name>)", *counts("proxy", "+"), ""],
        ["      in each run", *each_run("proxy"), ""],
        ["    the least any request.gk.ff() costs (one dict, no flag logic)", *counts("floor", "+"), ""],
        ["      in each run", *each_run("floor"), ""],
        ["    of which with exposures off", *counts("first, exposures off", "+"), ""],
        ["  ten different flags add", *counts("ten", "+"), f"<= {TEN_FLAGS_TARGET:,}"],
        ["    in each run", *each_run("ten"), ""],
        ["    of which with exposures off", *counts("ten, exposures off", "+"), ""],
        ["  gatekeeper's own request hooks add, no flag asked", *counts("hooks", "+"), ""],
        [
            "    as a share of the page without them",
            *(f"{shares[w]:.2f}%" for w in visitors),
            f"< {HOOK_SHARE_TARGET}%",
        ],
        ["  ten flags with this round's features on add", *counts("ten, features on", "+"), ""],
        [
            "    the ten-flag page, features on over off",
            *(f"{page_ratios[w]:.3f}x" for w in visitors),
            f"<= {FEATURES_RATIO_TARGET:.2f}x",
        ],
        ["    the ten checks alone, features on over off", *(f"{ratios[w]:.2f}x" for w in visitors), ""],
        ["    of which: values stored for the ten flags", *(["on"] * len(visitors)), ""],
        [
            f"    of which: {SEGMENTS} segments stored, {TARGETED[0]} targets one",
            *(["on"] * len(visitors)),
            "",
        ],
        ["    of which: a context with attributes (the user's, and 2 added)", *(["on"] * len(visitors)), ""],
        [
            "    of which: outcome recording (no release under way: nothing recorded)",
            *(["on"] * len(visitors)),
            "",
        ],
        [f"  ten flags add, features on and {RELEASED[0]} under a release", *counts("ten, release", "+"), ""],
        ["    the same with outcome recording off", *counts("ten, outcomes off", "+"), ""],
        [
            "    the ten-flag page, outcome recording on over off",
            *(f"{outcome_ratios[w]:.3f}x" for w in visitors),
            f"<= {FEATURES_RATIO_TARGET:.2f}x",
        ],
        [
            "    of which: OpenTelemetry, no exporter",
            *(["not counted" if results["telemetry"] else "on"] * len(visitors)),
            "",
        ],
    ]
    print_table(["", *(labels[who] for who in visitors), "target"], rows)
    if requests < 1000:
        print(f"  ({requests:,} GETs per case: fewer than the 1,000 the targets are stated for)")
    verdicts = {
        f"a first flag check adds <= {FIRST_CHECK_TARGET:,} instructions": all(
            results[who]["first"] <= FIRST_CHECK_TARGET for who in visitors
        ),
        f"ten different flags add <= {TEN_FLAGS_TARGET:,}": all(
            results[who]["ten"] <= TEN_FLAGS_TARGET for who in visitors
        ),
        f"gatekeeper's hooks cost < {HOOK_SHARE_TARGET}% of a page that checks no flag": all(
            shares[who] < HOOK_SHARE_TARGET for who in visitors
        ),
        f"the ten-flag page with this round's features on costs <= {FEATURES_RATIO_TARGET:.2f}x the same page"
        " with them off (of the features, those this build has)": all(
            page_ratios[who] <= FEATURES_RATIO_TARGET for who in visitors
        ),
        f"a ten-flag page recording outcomes costs <= {FEATURES_RATIO_TARGET:.2f}x one that does not": all(
            outcome_ratios[who] <= FEATURES_RATIO_TARGET for who in visitors
        ),
    }
    who = " and ".join(labels[who] for who in visitors)
    for label, met in verdicts.items():
        print(f"  target: {label}, {who}: {'met' if met else 'MISSED'}")
    print(f"  OpenTelemetry: {results['telemetry'] or 'counted'}")
    print(f"callgrind files: {OUT_DIR}/<who>-<checks>-<case>.out (callgrind_annotate: benchmarks/README.md)")
    for who in visitors:
        where(f"{who}-10-on", f"{who}-0-on", requests)


def where(case: str, base: str, requests: int, top: int = 12) -> None:
    """The C functions (CPython's, the C library's) whose instructions `case` adds to `base`, per request,
    from `callgrind_annotate` of both: where a page's flag checks go, below the Python they run."""
    if shutil.which("callgrind_annotate") is None:
        return
    per_function = [_self_costs(OUT_DIR / f"{name}.out") for name in (case, base)]
    added = {
        name: (per_function[0].get(name, 0) - per_function[1].get(name, 0)) / requests
        for name in per_function[0].keys() | per_function[1].keys()
    }
    total = sum(added.values())
    print(f"where {case} adds to {base}: {total:,.0f} instructions per request, the top functions")
    for name, count in sorted(added.items(), key=lambda item: -item[1])[:top]:
        print(f"  {count:>9,.0f}  {count / total:>4.0%}  {name}")


def _self_costs(out: Path) -> dict[str, int]:
    """Instructions per function (its own, not its callees'), summed over callgrind_annotate's lines."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True, check=True
    ).stdout
    costs: dict[str, int] = {}
    for match in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+(\S+)", text, re.MULTILINE):
        if match.group(2) != "PROGRAM":
            name = match.group(2).rsplit("/", 1)[-1]  # file:function, without the build's folder
            costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


if __name__ == "__main__":
    main()
