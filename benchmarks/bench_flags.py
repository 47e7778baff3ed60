"""Gatekeeper against a dict lookup and four peer SDKs, on the same three flags, offline, in one process.

Scenarios, each over the same 10,000 user ids ("1" .. "10000", strings because the peers want strings):
(A) a flag on for everyone, (B) a 50% rollout, (C) a three-way experiment (33/33/34).

Every implementation is checked before it is timed (A all on, B about half, C three variants about a
third each); a wrong answer stops the run. Times are printed, never asserted.

Run through `make bench` (benchmarks/run.sh), which bakes the template and installs what this imports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from importlib.metadata import version
from itertools import accumulate
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from benchcommon import (
    bench_user,
    build_baked_app,
    check_offline,
    forbid_network,
    import_baked_package,
    interleaved_samples,
    log_in,
    median_per_item,
    print_table,
    project_argument,
)

forbid_network()  # before any SDK is imported

IDS = [str(number) for number in range(1, 10_001)]
SCENARIOS = ("A", "B", "C")
SCENARIO_TITLES = {"A": "(A) on for all", "B": "(B) 50% rollout", "C": "(C) 3-way exp."}
EXPERIMENT_VARIANTS = ("VARIANT_A", "VARIANT_B", "CONTROL")
REQUESTS_PER_SAMPLE = 300
IN_REQUEST_LOOPS = 5_000
PAGE_CHECKS = (0, 1, 10)  # flag checks on the page that loads the user: none, the first, ten different
FIRST_CHECK_TARGET_US = 3.0  # the first flag check of a real request adds at most this
TEN_CHECKS_TARGET_US = 15.0  # a page with ten different flags adds at most this, in total
GROWTHBOOK_TARGET = 5.0  # gatekeeper's first evaluation at least 5x faster than GrowthBook
REPEATED_TARGET = 3.0  # a repeated evaluation within 3x of a dict lookup
OVERHEAD_TARGET = 1.0  # percent added to a request that checks no flag


def per_scenario(*runs: Callable[[None], None]) -> dict[str, float]:
    """Median ns per user id of each scenario's loop, in the order A, B, C."""
    return {s: median_per_item(run, len(IDS)) for s, run in zip(SCENARIOS, runs, strict=True)}


# -- correctness, checked before anything is timed -------------------------------------------------------


def check_results(name: str, scenario: str, results: Iterable[Any]) -> None:
    """Stop the run if an implementation does not really evaluate the scenario."""
    counts = Counter(results)
    share = {value: count / len(IDS) for value, count in counts.items()}
    if scenario == "A":
        ok = counts == Counter({True: len(IDS)})
    elif scenario == "B":
        ok = set(counts) == {True, False} and abs(share[True] - 0.5) < 0.03
    else:
        expected = dict(zip(EXPERIMENT_VARIANTS, (0.33, 0.33, 0.34), strict=True))
        ok = set(counts) == set(expected) and all(abs(share[v] - w) < 0.03 for v, w in expected.items())
    if not ok:
        raise SystemExit(f"{name} gives wrong results in scenario {scenario}: {dict(counts)}")


# -- the floor -------------------------------------------------------------------------------------------


def dict_rows() -> dict[str, float]:
    """A plain dict lookup: the flag's value (A), or the id's precomputed variant (B, C)."""
    flags = {"BENCH_ON": True}
    rollout = {uid: int(uid) % 2 == 0 for uid in IDS}
    experiment = {uid: EXPERIMENT_VARIANTS[int(uid) % 3] for uid in IDS}

    def run_a(_: None) -> None:
        for _uid in IDS:
            flags["BENCH_ON"]

    def run_b(_: None) -> None:
        for uid in IDS:
            rollout[uid]

    def run_c(_: None) -> None:
        for uid in IDS:
            experiment[uid]

    return per_scenario(run_a, run_b, run_c)


class FloorEvaluator:
    """The least any per-request evaluator can be in CPython: an object built with two attributes and one
    method that answers from a dict, with no user, store, rule or memo. What it costs bounds from below
    what a first evaluation built this way (a new object per request, then one question) can cost."""

    __slots__ = ("answers", "user_id")

    def __init__(self, user_id: str, answers: dict[str, bool]) -> None:
        self.user_id = user_id
        self.answers = answers

    def ff(self, flag: str, variant: str) -> bool:
        return self.answers[flag]


def floor_evaluator_ns() -> float:
    answers = {"BENCH_ON": True}

    def run(_: None) -> None:
        for uid in IDS:
            FloorEvaluator(uid, answers).ff("BENCH_ON", "ON")

    return median_per_item(run, len(IDS))


def empty_loop_ns() -> float:
    def run(_: None) -> None:
        for _uid in IDS:
            pass

    return median_per_item(run, len(IDS))


# -- gatekeeper ------------------------------------------------------------------------------------------


def bench_flag_configs(gatekeeper: ModuleType) -> dict[str, Any]:
    """The three scenario flags, plus five more so a page can check ten different flags."""

    class BenchOnFFConfig(gatekeeper.FeatureFlagConfig):
        FLAG_NAME = "BENCH_ON"
        VARIANTS_ENUM_STR = "ON OFF"
        DEFAULT_VARIANT = "OFF"
        DESCRIPTION = "Benchmark (A): on for everyone."

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.variants_enum.ON

    class BenchRolloutFFConfig(gatekeeper.FeatureFlagConfig):
        FLAG_NAME = "BENCH_ROLLOUT"
        VARIANTS_ENUM_STR = "ON OFF"
        DEFAULT_VARIANT = "OFF"
        DESCRIPTION = "Benchmark (B): a 50% rollout by user id."

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id, {"ON": 50, "OFF": 50})

    class BenchExperimentFFConfig(gatekeeper.FeatureFlagConfig):
        FLAG_NAME = "BENCH_EXPERIMENT"
        VARIANTS_ENUM_STR = "VARIANT_A VARIANT_B CONTROL"
        DEFAULT_VARIANT = "CONTROL"
        DESCRIPTION = "Benchmark (C): a three-way experiment by user id."

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id, {"VARIANT_A": 33, "VARIANT_B": 33, "CONTROL": 34})

    configs: dict[str, Any] = {
        "BENCH_ON": BenchOnFFConfig(),
        "BENCH_ROLLOUT": BenchRolloutFFConfig(),
        "BENCH_EXPERIMENT": BenchExperimentFFConfig(),
    }
    for number in range(1, 6):
        base = BenchOnFFConfig if number % 2 else BenchRolloutFFConfig
        name = f"BENCH_EXTRA_{number}"
        configs[name] = type(f"BenchExtra{number}FFConfig", (base,), {"FLAG_NAME": name})()
    return configs


SCENARIO_FLAGS = {
    "A": ("BENCH_ON", "ON"),
    "B": ("BENCH_ROLLOUT", "ON"),
    "C": ("BENCH_EXPERIMENT", "VARIANT_A"),
}
TEN_FLAGS = (
    ("BENCH_ON", "ON"),
    ("BENCH_ROLLOUT", "ON"),
    ("BENCH_EXPERIMENT", "VARIANT_A"),
    ("MY_NEW_FEATURE", "VISIBLE"),
    ("HOMEPAGE_EXPERIMENT", "VARIANT_A"),
    *((f"BENCH_EXTRA_{number}", "ON") for number in range(1, 6)),
)


def gatekeeper_rows(gatekeeper: ModuleType, app: Any) -> dict[str, dict[str, float]]:
    """Per scenario: first evaluation, its two parts, and a repeated evaluation; rows keyed by kind."""
    rows: dict[str, dict[str, float]] = {"first": {}, "construct": {}, "evaluate": {}, "repeat": {}}
    for scenario, (flag, variant) in SCENARIO_FLAGS.items():
        for kind, value in gatekeeper_scenario(gatekeeper.Gatekeeper, app, scenario, flag, variant).items():
            rows[kind][scenario] = value
    return rows


def gatekeeper_scenario(
    Gatekeeper: Any, app: Any, scenario: str, flag: str, variant: str
) -> dict[str, float]:
    """A request builds one Gatekeeper and asks it; a later question in that request hits its memo."""
    if scenario == "C":
        check_results("gatekeeper", scenario, [Gatekeeper(uid, app).ff_variant(flag) for uid in IDS])
    else:
        check_results("gatekeeper", scenario, [Gatekeeper(uid, app).ff(flag, variant) for uid in IDS])

    def first(_: None) -> None:
        for uid in IDS:
            Gatekeeper(uid, app).ff(flag, variant)

    def construct(_: None) -> None:
        for uid in IDS:
            Gatekeeper(uid, app)

    def fresh() -> list[Any]:
        return [Gatekeeper(uid, app) for uid in IDS]

    def evaluate(gatekeepers: list[Any]) -> None:
        for gk in gatekeepers:
            gk.ff(flag, variant)

    def evaluated() -> list[Any]:
        gatekeepers = fresh()
        evaluate(gatekeepers)
        return gatekeepers

    return {
        "first": median_per_item(first, len(IDS)),
        "construct": median_per_item(construct, len(IDS)),
        "evaluate": median_per_item(evaluate, len(IDS), setup=fresh),
        "repeat": median_per_item(evaluate, len(IDS), setup=evaluated),
    }


def evaluation_parts(gatekeeper: ModuleType, app: Any) -> dict[str, dict[str, float]]:
    """What a first ff() is made of, timed piece by piece: the store's snapshot and the flag's own rule.

    The rest of the first ff() (memo, override checks, the Evaluation, the signal) is what the engine adds.
    """
    state = gatekeeper.get_state(app)
    parts: dict[str, dict[str, float]] = {"snapshot": {}, "rule": {}}
    for scenario, (flag, _variant) in SCENARIO_FLAGS.items():
        rule = state.config_map[flag]._get_variant

        def snapshot(_: None) -> None:
            for _uid in IDS:
                state.store.snapshot()

        def run_rule(_: None, rule: Any = rule) -> None:
            for uid in IDS:
                rule(user_id=uid, app=app, request=None, session=None)

        parts["snapshot"][scenario] = median_per_item(snapshot, len(IDS)) if state.store is not None else 0.0
        parts["rule"][scenario] = median_per_item(run_rule, len(IDS))
    return parts


# -- the peers -------------------------------------------------------------------------------------------


def growthbook_rows() -> tuple[dict[str, float], dict[str, float]]:
    """GrowthBook two ways: one instance reused, per user `set_attributes` then evaluate; and a new instance
    per request, as its docs say web frameworks should."""
    from growthbook import GrowthBook

    features = {
        "bench-on": {"defaultValue": True},
        "bench-rollout": {
            "defaultValue": False,
            "rules": [{"force": True, "coverage": 0.5, "hashAttribute": "id"}],
        },
        "bench-experiment": {
            "defaultValue": "CONTROL",
            "rules": [
                {
                    "key": "bench-experiment",
                    "variations": list(EXPERIMENT_VARIANTS),
                    "weights": [0.33, 0.33, 0.34],
                    "hashAttribute": "id",
                }
            ],
        },
    }
    gb = GrowthBook(features=features)

    def value(uid: str, key: str) -> Any:
        gb.set_attributes({"id": uid})
        return gb.get_feature_value(key, None) if key == "bench-experiment" else gb.is_on(key)

    for scenario, key in zip(SCENARIOS, ("bench-on", "bench-rollout", "bench-experiment"), strict=True):
        check_results("GrowthBook", scenario, [value(uid, key) for uid in IDS])

    def run_a(_: None) -> None:
        for uid in IDS:
            gb.set_attributes({"id": uid})
            gb.is_on("bench-on")

    def run_b(_: None) -> None:
        for uid in IDS:
            gb.set_attributes({"id": uid})
            gb.is_on("bench-rollout")

    def run_c(_: None) -> None:
        for uid in IDS:
            gb.set_attributes({"id": uid})
            gb.get_feature_value("bench-experiment", "CONTROL")

    # GrowthBook's docs, for web frameworks (Flask included): a new instance for every incoming request.
    def per_request_a(_: None) -> None:
        for uid in IDS:
            GrowthBook(attributes={"id": uid}, features=features).is_on("bench-on")

    def per_request_b(_: None) -> None:
        for uid in IDS:
            GrowthBook(attributes={"id": uid}, features=features).is_on("bench-rollout")

    def per_request_c(_: None) -> None:
        for uid in IDS:
            gb_c = GrowthBook(attributes={"id": uid}, features=features)
            gb_c.get_feature_value("bench-experiment", "CONTROL")

    reused = per_scenario(run_a, run_b, run_c)
    per_request = {
        s: median_per_item(run, len(IDS), repeats=3)
        for s, run in zip(SCENARIOS, (per_request_a, per_request_b, per_request_c), strict=True)
    }
    return reused, per_request


def launchdarkly_rows(workdir: Path) -> dict[str, float]:
    """The LaunchDarkly client on its file data source: no streaming, no polling, no events."""
    import ldclient
    from ldclient import Context
    from ldclient.config import Config
    from ldclient.integrations import Files

    def flag(key: str, variations: list[Any], fallthrough: dict[str, Any]) -> dict[str, Any]:
        return {
            "key": key,
            "version": 1,
            "on": True,
            "salt": key,
            "variations": variations,
            "offVariation": len(variations) - 1,
            "fallthrough": fallthrough,
            "targets": [],
            "rules": [],
            "prerequisites": [],
        }

    def rollout(*weights: int) -> dict[str, Any]:
        return {"rollout": {"variations": [{"variation": i, "weight": w} for i, w in enumerate(weights)]}}

    data = {
        "flags": {
            "bench-on": flag("bench-on", [True, False], {"variation": 0}),
            "bench-rollout": flag("bench-rollout", [True, False], rollout(50_000, 50_000)),
            "bench-experiment": flag(
                "bench-experiment", list(EXPERIMENT_VARIANTS), rollout(33_000, 33_000, 34_000)
            ),
        }
    }
    path = workdir / "launchdarkly-flags.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    config = Config(
        "bench-offline-key",
        update_processor_class=Files.new_data_source(paths=[str(path)]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = ldclient.LDClient(config=config)
    if not client.is_initialized():
        raise SystemExit("LaunchDarkly did not load its flag file")
    try:
        defaults = {"bench-on": False, "bench-rollout": False, "bench-experiment": "CONTROL"}
        for scenario, key in zip(SCENARIOS, defaults, strict=True):
            results = [client.variation(key, Context.create(uid), defaults[key]) for uid in IDS]
            check_results("LaunchDarkly", scenario, results)

        def run_a(_: None) -> None:
            for uid in IDS:
                client.variation("bench-on", Context.create(uid), False)

        def run_b(_: None) -> None:
            for uid in IDS:
                client.variation("bench-rollout", Context.create(uid), False)

        def run_c(_: None) -> None:
            for uid in IDS:
                client.variation("bench-experiment", Context.create(uid), "CONTROL")

        return per_scenario(run_a, run_b, run_c)
    finally:
        client.close()


def unleash_rows(workdir: Path) -> dict[str, float]:
    """The Unleash client bootstrapped from a dict: no registration, no fetching, no metrics."""
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    def variant(name: str, weight: int) -> dict[str, Any]:
        return {"name": name, "weight": weight, "weightType": "fix", "stickiness": "userId"}

    rollout = {"rollout": "50", "stickiness": "userId", "groupId": "bench-rollout"}
    features = {
        "version": 1,
        "features": [
            {"name": "bench-on", "enabled": True, "strategies": [{"name": "default"}]},
            {
                "name": "bench-rollout",
                "enabled": True,
                "strategies": [{"name": "flexibleRollout", "parameters": rollout}],
            },
            {
                "name": "bench-experiment",
                "enabled": True,
                "strategies": [{"name": "default"}],
                "variants": [
                    variant(v, w) for v, w in zip(EXPERIMENT_VARIANTS, (330, 330, 340), strict=True)
                ],
            },
        ],
    }
    cache = FileCache("bench", directory=str(workdir / "unleash-cache"))
    cache.bootstrap_from_dict(features)
    # The url is never contacted: registration and metrics are off and toggles come from the cache only.
    client = UnleashClient(
        url="http://127.0.0.1:9/api",
        app_name="bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    try:
        check_results("Unleash", "A", [client.is_enabled("bench-on", {"userId": uid}) for uid in IDS])
        check_results("Unleash", "B", [client.is_enabled("bench-rollout", {"userId": uid}) for uid in IDS])
        results = [client.get_variant("bench-experiment", {"userId": uid})["name"] for uid in IDS]
        check_results("Unleash", "C", results)

        def run_a(_: None) -> None:
            for uid in IDS:
                client.is_enabled("bench-on", {"userId": uid})

        def run_b(_: None) -> None:
            for uid in IDS:
                client.is_enabled("bench-rollout", {"userId": uid})

        def run_c(_: None) -> None:
            for uid in IDS:
                client.get_variant("bench-experiment", {"userId": uid})

        return per_scenario(run_a, run_b, run_c)
    finally:
        client.destroy()


def openfeature_rows() -> dict[str, float]:
    """The OpenFeature SDK with its in-memory provider.

    The in-memory provider has no rollouts, so B and C use a context evaluator that buckets the same way
    gatekeeper does (sha256 of flag and id, 10,000 buckets): the difference is the SDK's own machinery.
    """
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    def weighted(key: str, weights: dict[str, int]) -> Callable[[Any, Any], Any]:
        edges = list(zip(weights, accumulate(weight * 100 for weight in weights.values()), strict=True))

        def evaluate(flag: Any, context: Any) -> Any:
            digest = hashlib.sha256(f"{key}::{context.targeting_key}".encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % 10_000
            name = next(name for name, edge in edges if bucket < edge)
            return FlagResolutionDetails(value=flag.variants[name], variant=name, reason=Reason.SPLIT)

        return evaluate

    experiment = dict(zip(EXPERIMENT_VARIANTS, (33, 33, 34), strict=True))
    api.set_provider(
        InMemoryProvider(
            {
                "bench-on": InMemoryFlag("on", {"on": True, "off": False}),
                "bench-rollout": InMemoryFlag(
                    "off",
                    {"on": True, "off": False},
                    context_evaluator=weighted("bench-rollout", {"on": 50, "off": 50}),
                ),
                "bench-experiment": InMemoryFlag(
                    "CONTROL",
                    {name: name for name in EXPERIMENT_VARIANTS},
                    context_evaluator=weighted("bench-experiment", experiment),
                ),
            }
        )
    )
    client = api.get_client()

    def context(uid: str) -> Any:
        return EvaluationContext(targeting_key=uid)

    check_results(
        "OpenFeature", "A", [client.get_boolean_value("bench-on", False, context(uid)) for uid in IDS]
    )
    check_results(
        "OpenFeature", "B", [client.get_boolean_value("bench-rollout", False, context(uid)) for uid in IDS]
    )
    results = [client.get_string_value("bench-experiment", "CONTROL", context(uid)) for uid in IDS]
    check_results("OpenFeature", "C", results)

    def run_a(_: None) -> None:
        for uid in IDS:
            client.get_boolean_value("bench-on", False, EvaluationContext(targeting_key=uid))

    def run_b(_: None) -> None:
        for uid in IDS:
            client.get_boolean_value("bench-rollout", False, EvaluationContext(targeting_key=uid))

    def run_c(_: None) -> None:
        for uid in IDS:
            client.get_string_value("bench-experiment", "CONTROL", EvaluationContext(targeting_key=uid))

    return per_scenario(run_a, run_b, run_c)


# -- requests through the Flask test client --------------------------------------------------------------


def bench_blueprint(flask: ModuleType) -> Any:
    """Routes that exist only in the benchmark's own app, never in the template."""
    bp = flask.Blueprint("bench", __name__)

    @bp.get("/bench/none")
    def no_flag() -> str:
        return "ok"

    @bp.get("/bench/ten-flags")
    def ten_flags() -> str:
        gk = flask.request.gk
        return ",".join("1" if gk.ff(flag, variant) else "0" for flag, variant in TEN_FLAGS)

    # A page that loads the current user either way, as any layout with a login link does: the difference
    # between these three is what flag checks cost inside a real request.
    from flask_login import current_user

    @bp.get("/bench/page/<int:checks>")
    def page(checks: int) -> str:
        who = current_user.get_id() or "anonymous"
        gk = flask.request.gk
        answers = ["1" if gk.ff(flag, variant) else "0" for flag, variant in TEN_FLAGS[:checks]]
        return f"{who}:{','.join(answers)}"

    return bp


def build_apps(package: ModuleType, workdir: Path) -> dict[str, Any]:
    """A bare Flask app, the baked app with the bench routes, and the same app without gatekeeper."""
    import flask

    bare = flask.Flask("bare")

    @bare.get("/bench/none")
    def bare_view() -> str:
        return "ok"

    def baked(name: str) -> Any:
        app = build_baked_app(package, workdir / f"{name}.db")
        app.register_blueprint(bench_blueprint(flask))
        return app

    apps = {"bare": bare, "gatekeeper": baked("with-gatekeeper")}
    # The same factory with gatekeeper.init_app made a no-op: everything else in the app stays.
    with mock.patch.object(package.gatekeeper, "init_app", lambda *args, **kwargs: None):
        apps["no-gatekeeper"] = baked("without-gatekeeper")
    return apps


def request_rows(package: ModuleType, apps: dict[str, Any]) -> tuple[dict[str, float], float]:
    """µs per GET through the test client, and the median per-round % that gatekeeper adds to no-flag GETs."""

    # One client per case, all but bare Flask's carrying the same anonymous-id cookie, as a returning
    # visitor's browser would: the cases differ only in what the app does, not in what the client sends.
    def new_client(name: str) -> Any:
        test_client = apps[name].test_client()
        if name != "bare":
            test_client.set_cookie(package.gatekeeper.ANONYMOUS_COOKIE, "0123456789abcdef0123456789abcdef")
        return test_client

    signed_in = new_client("gatekeeper")
    log_in(signed_in, bench_user(package, apps["gatekeeper"]))
    cases = {
        "bare": (new_client("bare"), "/bench/none"),
        "gatekeeper": (new_client("gatekeeper"), "/bench/none"),
        "ten-flags": (new_client("gatekeeper"), "/bench/ten-flags"),
        "no-gatekeeper": (new_client("no-gatekeeper"), "/bench/none"),
        **{
            f"{who} {checks}": (client, f"/bench/page/{checks}")
            for who, client in (("anonymous", new_client("gatekeeper")), ("signed-in", signed_in))
            for checks in PAGE_CHECKS
        },
    }

    evaluated: list[str] = []
    with package.gatekeeper.flag_evaluated.connected_to(
        lambda sender, **info: evaluated.append(info["flag"]), apps["gatekeeper"]
    ):
        for client, path in cases.values():
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}")
    expected = [flag for checks in (10, *PAGE_CHECKS, *PAGE_CHECKS) for flag, _ in TEN_FLAGS[:checks]]
    if sorted(evaluated) != sorted(expected):
        raise SystemExit(f"the flag pages evaluated {sorted(evaluated)}, not each of their flags once")
    if signed_in.get("/bench/page/0").text.startswith("anonymous:"):
        raise SystemExit("the signed-in client is not signed in")

    def loop(client: Any, path: str) -> Callable[[], None]:
        def run() -> None:
            for _ in range(REQUESTS_PER_SAMPLE):
                client.get(path)

        return run

    runs = {name: loop(client, path) for name, (client, path) in cases.items()}
    samples = interleaved_samples(runs, REQUESTS_PER_SAMPLE)
    medians = {name: statistics.median(values) / 1000 for name, values in samples.items()}
    pairs = zip(samples["gatekeeper"], samples["no-gatekeeper"], strict=True)
    paired = statistics.median(with_gk / without - 1 for with_gk, without in pairs) * 100
    return medians, paired


def in_request_us(package: ModuleType, app: Any, session_id: str) -> dict[str, dict[Any, float]]:
    """µs that the first flag check, and ten different flags, add inside one real request context.

    The context is built from the cookies a browser would send (the session of a signed-in user, or none,
    and the returning visitor's anonymous id); the before-request hooks run, and the page loads the current
    user, as a layout does. Then each loop builds a fresh request Gatekeeper (what every request does,
    flag or no flag) and asks it 0, 1 or 10 flags: the difference to 0 is what the checks add.
    """
    from flask import request, session
    from flask_login import current_user

    gatekeeper = package.gatekeeper
    Gatekeeper = gatekeeper.Gatekeeper
    signed_in = app.test_client()
    log_in(signed_in, session_id)
    session_cookie = signed_in.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    anonymous = f"{gatekeeper.ANONYMOUS_COOKIE}=0123456789abcdef0123456789abcdef"
    visitors = {"anonymous": anonymous, "signed-in": f"{anonymous}; session={session_cookie.value}"}
    added: dict[str, dict[Any, float]] = {}
    for who, cookie in visitors.items():
        with app.test_request_context("/bench/page/0", headers={"Cookie": cookie}):
            app.preprocess_request()
            if (current_user.get_id() is None) != (who == "anonymous"):
                raise SystemExit(f"the {who} request context has the wrong user: {current_user!r}")
            real_request = request._get_current_object()

            def page(checks: int, real_request: Any = real_request, real_session: Any = session) -> Any:
                flags = TEN_FLAGS[:checks]

                def run(_: None) -> None:
                    for _ in range(IN_REQUEST_LOOPS):
                        gk = Gatekeeper(None, app, real_request, real_session)
                        for flag, variant in flags:
                            gk.ff(flag, variant)

                return run

            times = {checks: median_per_item(page(checks), IN_REQUEST_LOOPS) / 1000 for checks in PAGE_CHECKS}
            # The floor for the ten-flag page: its ten rules alone, called as the engine calls them, for the
            # same user in the same request, with no engine around them (no memo, overrides or user hook).
            state = gatekeeper.get_state(app)
            rules = [state.config_map[flag]._get_variant for flag, _ in TEN_FLAGS]
            user_id = Gatekeeper(None, app, real_request, session).user_id

            def rules_alone(_: None, rules: Any = rules, uid: Any = user_id, req: Any = real_request) -> None:
                for _ in range(IN_REQUEST_LOOPS):
                    for rule in rules:
                        rule(uid, app, req, session)

            rules_us = median_per_item(rules_alone, IN_REQUEST_LOOPS) / 1000
        added[who] = {checks: times[checks] - times[0] for checks in PAGE_CHECKS if checks}
        added[who]["rules"] = rules_us
    return added


def hook_cost_us(apps: dict[str, Any]) -> float:
    """Gatekeeper's own work per request that checks no flag: the before-request functions `init_app` adds
    (those the app without it lacks), timed alone in a request context.

    Timing the app's whole `preprocess_request()` with and without them does not work: the app's other hooks
    (CSRF, Flask-Limiter's check, tens of µs) vary from run to run by more than gatekeeper's whole share.
    """
    others = {f.__qualname__ for f in apps["no-gatekeeper"].before_request_funcs.get(None, [])}
    app = apps["gatekeeper"]
    own = [f for f in app.before_request_funcs.get(None, []) if f.__qualname__ not in others]
    if not own:  # `request.gk` is made on first use: nothing runs for a request that asks no flag
        return 0.0
    with app.test_request_context("/bench/none"):

        def run(_: None) -> None:
            for _uid in IDS:
                for hook in own:
                    hook()

        return median_per_item(run, len(IDS)) / 1000


# -- the report ------------------------------------------------------------------------------------------


def ns(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def main() -> None:
    project = project_argument(__doc__.splitlines()[0])
    package = import_baked_package(project)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    package.gatekeeper_config.FF_CONFIG_MAP.update(bench_flag_configs(package.gatekeeper))
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-") as tmp:
        workdir = Path(tmp)
        apps = build_apps(package, workdir)
        with apps["gatekeeper"].app_context():
            floor, loop, least = dict_rows(), empty_loop_ns(), floor_evaluator_ns()
            gk = gatekeeper_rows(package.gatekeeper, apps["gatekeeper"])
            parts = evaluation_parts(package.gatekeeper, apps["gatekeeper"])
            if not package.gatekeeper_control.store.store.available:
                raise SystemExit(
                    f"the override store is unavailable: {package.gatekeeper_control.store.store.error}"
                )
        growthbook, growthbook_per_request = growthbook_rows()
        peers = {
            f"GrowthBook {version('growthbook')}": growthbook,
            f"LaunchDarkly {version('launchdarkly-server-sdk')}": launchdarkly_rows(workdir),
            f"Unleash {version('UnleashClient')}": unleash_rows(workdir),
            f"OpenFeature {version('openfeature-sdk')}": openfeature_rows(),
        }
        requests, paired_overhead = request_rows(package, apps)
        in_request = in_request_us(
            package, apps["gatekeeper"], bench_user(package, apps["gatekeeper"], "c@x.io")
        )
        hook = hook_cost_us(apps)
    evaluations = (floor, loop, least, gk, parts, peers, growthbook_per_request)
    report(*evaluations, requests, paired_overhead, hook, in_request)
    check_offline()


PEER_CALLS = {
    "GrowthBook": "set_attributes + is_on / get_feature_value",
    "LaunchDarkly": "Context.create + variation",
    "Unleash": "is_enabled / get_variant",
    "OpenFeature": "EvaluationContext + get_*_value",
}


def report(
    floor: dict[str, float],
    loop: float,
    least: float,
    gk: dict[str, dict[str, float]],
    parts: dict[str, dict[str, float]],
    peers: dict[str, dict[str, float]],
    growthbook_per_request: dict[str, float],
    requests: dict[str, float],
    paired_overhead: float,
    hook: float,
    in_request: dict[str, dict[Any, float]],
) -> None:
    """One table (ns per evaluation, then µs per request), then the ratios the issues set targets for."""
    growthbook_name = next(iter(peers))

    engine_rest = {s: gk["evaluate"][s] - parts["snapshot"][s] - parts["rule"][s] for s in SCENARIOS}

    def row(label: str, times: dict[str, float]) -> list[str]:
        return [label, *(ns(times[s]) for s in SCENARIOS)]

    def request_row(label: str, name: str) -> list[str]:
        return [label, f"{requests[name]:.1f} µs", "", ""]

    rows = [
        row("dict lookup (the floor)", floor),
        row("gatekeeper: first evaluation in a request", gk["first"]),
        row("  = new Gatekeeper(uid, app)", gk["construct"]),
        row("  + its first ff() (pure evaluation)", gk["evaluate"]),
        row("      of which store.snapshot()", parts["snapshot"]),
        row("      of which the flag's rule (_get_variant)", parts["rule"]),
        row("      the rest: memo, overrides, result", engine_rest),
        row("gatekeeper: repeated ff(), same request", gk["repeat"]),
        *(row(f"{name} ({PEER_CALLS[name.split()[0]]})", times) for name, times in peers.items()),
        row(f"  {growthbook_name}, new GrowthBook() per request (its docs' way)", growthbook_per_request),
        ["the floor: new 2-attribute object + 1 method (any per-request evaluator)", ns(least), "", ""],
        ["µs per request through the Flask test client (GET, median of 21 rounds of 300):"],
        request_row("bare Flask app", "bare"),
        request_row("baked app without gatekeeper.init_app", "no-gatekeeper"),
        request_row("baked app, gatekeeper, no flag checked", "gatekeeper"),
        request_row("baked app, gatekeeper, ten flag checks", "ten-flags"),
    ]
    print(f"ns per evaluation, median of 7 loops over {len(IDS):,} user ids (gc off); one run, one process")
    print_table(["", *(SCENARIO_TITLES[s] for s in SCENARIOS)], rows)
    print(f"(every ns figure includes the for-loop step around it: {loop:.1f} ns)")

    print()
    print("Ratios")
    growthbook = peers[growthbook_name]
    for name, times in peers.items():
        ratios = "  ".join(f"{s} {times[s] / gk['first'][s]:5.1f}x" for s in SCENARIOS)
        print(f"  {name:<21} / gatekeeper first evaluation: {ratios}")
    ratios = "  ".join(f"{s} {growthbook_per_request[s] / gk['first'][s]:5.1f}x" for s in SCENARIOS)
    print(f"  {growthbook_name + ', per request':<21} / gatekeeper first evaluation: {ratios}")
    for usage, times in (("reused, set_attributes", growthbook), ("new per request", growthbook_per_request)):
        worst = min(times[s] / gk["first"][s] for s in SCENARIOS)
        verdict = "met" if worst >= GROWTHBOOK_TARGET else "MISSED"
        target = f"at least {GROWTHBOOK_TARGET:.0f}x faster than GrowthBook ({usage}) in A, B, C"
        print(f"    target: {target}: {verdict}")
    bound = growthbook["A"] / least
    print(
        f"    bound: the floor evaluator is {bound:.1f}x faster than reused GrowthBook in A; a per-request "
        f"evaluator{' cannot' if bound < GROWTHBOOK_TARGET else ' can'} reach {GROWTHBOOK_TARGET:.0f}x there"
    )
    repeat = "  ".join(f"{s} {gk['repeat'][s] / floor[s]:5.1f}x" for s in SCENARIOS)
    print(f"  gatekeeper repeated ff() / dict lookup:       {repeat}")
    worst = max(gk["repeat"][s] / floor[s] for s in SCENARIOS)
    verdict = "met" if worst <= REPEATED_TARGET else "MISSED"
    print(f"    target: within {REPEATED_TARGET:.0f}x of a dict lookup: {verdict}")

    baseline = requests["no-gatekeeper"]
    print(
        f"  gatekeeper on a request that checks no flag: {paired_overhead:+.2f}% (median of the per-round "
        f"ratios; {requests['gatekeeper']:.1f} vs {baseline:.1f} µs without gatekeeper.init_app)"
    )
    print(
        f"    measured directly: gatekeeper's before-request hooks take {hook:.2f} µs "
        f"= {hook / baseline * 100:.2f}% of a request without gatekeeper"
    )
    direct = hook / baseline * 100
    verdict = "met" if direct < OVERHEAD_TARGET else "MISSED"
    print(
        f"    target: under {OVERHEAD_TARGET:.0f}%, on the direct measure (whole GETs of the two apps differ "
        f"from round to round by more than the hook costs): {verdict}"
    )
    extra = requests["ten-flags"] - requests["gatekeeper"]
    print(f"  ten flag checks add {extra:.1f} µs to a request ({extra * 100:.0f} ns per check)")
    print("  in a real request, on a page that loads the current user either way (µs added to the same")
    print(
        "  page checking no flag; whole GETs through the test client, where the page alone varies by more):"
    )
    for who in ("anonymous", "signed-in"):
        base = requests[f"{who} 0"]
        first, ten = requests[f"{who} 1"] - base, requests[f"{who} 10"] - base
        print(f"    {who:<9}  first check {first:6.1f} µs   ten flags {ten:6.1f} µs   [page {base:.0f} µs]")
    print("  the same, timed inside one real request context (cookies, session and Flask-Login user as the")
    print(f"  page has them; median of 7 loops of {IN_REQUEST_LOOPS:,} fresh request Gatekeepers):")
    for who, added in in_request.items():
        first, ten = added[1], added[10]
        print(
            f"    {who:<9}  first check {first:5.2f} µs (target ≤ {FIRST_CHECK_TARGET_US:.0f}: "
            f"{'met' if first <= FIRST_CHECK_TARGET_US else 'MISSED'})   ten different flags {ten:5.2f} µs "
            f"(target ≤ {TEN_CHECKS_TARGET_US:.0f}: {'met' if ten <= TEN_CHECKS_TARGET_US else 'MISSED'})"
        )
        rules = added["rules"]
        print(
            f"    {'':<9}  of the ten: their rules alone (no engine) {rules:5.2f} µs, "
            f"{rules / TEN_CHECKS_TARGET_US:.0%} of the target; the engine adds {ten - rules:5.2f} µs"
        )


if __name__ == "__main__":
    main()
