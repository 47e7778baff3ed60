"""Percentage rollouts: deterministic, sticky, evenly spread and independent between flags."""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import (
    ANONYMOUS_COOKIE,
    FeatureFlagConfig,
    Gatekeeper,
    rollout_bucket,
)
from tests.bare_app import StaticStore, cookies_set, make_app

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def experiment(flag: str, weights: dict[str, float], salt: str = "") -> FeatureFlagConfig:
    class Experiment(FeatureFlagConfig):
        FLAG_NAME = flag
        VARIANTS_ENUM_STR = " ".join(weights)
        ROLLOUT_SALT = salt

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id, weights)

    return Experiment()


def assign(flag: str, weights: dict[str, float], ids: range, salt: str = "") -> list[str]:
    config = experiment(flag, weights, salt)
    return [config.rollout(unit_id, weights).name for unit_id in ids]


def test_rollout_follows_the_documented_algorithm():
    """bucket = first 8 bytes of sha256("FLAG:SALT:UNIT") as a big-endian int, mod 10000; ranges in order."""
    weights = {"A": 25, "B": 25, "C": 50}
    for unit_id in range(200):
        digest = hashlib.sha256(f"EXP:pepper:{unit_id}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") % 10000
        expected = "A" if bucket < 2500 else "B" if bucket < 5000 else "C"
        assert assign("EXP", weights, range(unit_id, unit_id + 1), salt="pepper") == [expected]


def test_rollout_bucket_is_the_documented_formula():
    """`rollout_bucket(key)`, public for analytics and migrations, is the bucket rollout() uses."""
    for key in ("EXP:pepper:1", "MY_FLAG::ann@example.com", "Ünïcode:salt:42"):
        digest = hashlib.sha256(key.encode()).digest()
        assert rollout_bucket(key) == int.from_bytes(digest[:8], "big") % 10000


def test_same_ids_get_same_variants_in_processes_with_different_hash_seeds():
    """Assignments do not depend on Python's per-process hash randomisation."""
    script = (
        "from tests.test_gatekeeper_rollout import assign;"
        "print(','.join(assign('EXP', {'A': 10, 'B': 10, 'C': 80}, range(2000))))"
    )
    outputs = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert outputs.pop().strip().split(",") == assign("EXP", {"A": 10, "B": 10, "C": 80}, range(2000))


@pytest.mark.parametrize(
    "weights", [{"A": 10, "B": 10, "C": 80}, {"ON": 50, "OFF": 50}, {"X": 33.3, "Y": 66.7}]
)
def test_shares_match_weights_within_one_point_over_100000_ids(weights):
    """Over 100,000 ids each variant's share is within one percentage point of its weight."""
    got = assign("SPREAD", weights, range(100_000))
    for variant, weight in weights.items():
        assert abs(got.count(variant) / 1000 - weight) < 1, variant


def test_raising_a_rollout_keeps_everyone_who_was_in():
    """Going from 10% to 20% only adds users: nobody who had the feature loses it."""
    before = assign("LAUNCH", {"ON": 10, "OFF": 90}, range(20_000))
    after = assign("LAUNCH", {"ON": 20, "OFF": 80}, range(20_000))
    was_in = {i for i, v in enumerate(before) if v == "ON"}
    now_in = {i for i, v in enumerate(after) if v == "ON"}
    assert was_in < now_in
    assert abs(len(now_in) / 20_000 - 0.20) < 0.01


def test_two_flags_bucket_independently():
    """Being in one flag's 50% says nothing about another's: about a quarter of ids are in both."""
    first = assign("FIRST", {"ON": 50, "OFF": 50}, range(40_000))
    second = assign("SECOND", {"ON": 50, "OFF": 50}, range(40_000))
    both = sum(1 for a, b in zip(first, second, strict=True) if a == b == "ON")
    assert abs(both / 40_000 - 0.25) < 0.01


def test_a_salt_reshuffles_a_flag():
    """Changing ROLLOUT_SALT gives the same flag a fresh, independent assignment."""
    plain = assign("SALTED", {"ON": 50, "OFF": 50}, range(20_000))
    salted = assign("SALTED", {"ON": 50, "OFF": 50}, range(20_000), salt="v2")
    agree = sum(1 for a, b in zip(plain, salted, strict=True) if a == b)
    assert abs(agree / 20_000 - 0.5) < 0.02


def in_code(flag: str, weights: dict[str, float]) -> FeatureFlagConfig:
    """A flag whose weights are its ROLLOUT, asked with `self.rollout(user_id)`."""

    class InCode(FeatureFlagConfig):
        FLAG_NAME = flag
        VARIANTS_ENUM_STR = " ".join(weights)
        ROLLOUT = weights

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return self.rollout(user_id)

    return InCode()


def test_rollout_weights_give_the_same_variants_as_weights_passed_in_the_call():
    """ROLLOUT (whose ranges are worked out once) and the same weights written in the call agree."""
    weights = {"A": 10.5, "B": 22.25, "C": 67.25}
    config = in_code("SAME", weights)
    assert [config.rollout(unit_id).name for unit_id in range(5_000)] == assign("SAME", weights, range(5_000))


def test_a_new_rollout_on_the_class_takes_effect_at_once(monkeypatch):
    """Giving the class a new ROLLOUT (as a deploy, or a test, does) moves units by the new weights."""
    config = in_code("RAMPED", {"ON": 10, "OFF": 90})
    before = [config.rollout(unit_id).name for unit_id in range(2_000)]
    monkeypatch.setattr(type(config), "ROLLOUT", {"ON": 50, "OFF": 50})
    after = [config.rollout(unit_id).name for unit_id in range(2_000)]
    assert after == assign("RAMPED", {"ON": 50, "OFF": 50}, range(2_000))
    assert after.count("ON") > before.count("ON") * 3


def test_weights_that_do_not_add_up_to_100_serve_the_default():
    """A rollout with bad weights is a broken rule: the default variant is served."""
    config = experiment("BAD_WEIGHTS", {"ON": 60, "OFF": 60})
    app = make_app({"BAD_WEIGHTS": config})
    with app.app_context():
        assert Gatekeeper(user_id=1, app=app).explain("BAD_WEIGHTS")[1:3] == ("OFF", "default")


def test_anonymous_visitors_get_a_sticky_id_cookie():
    """A visitor who is not logged in is bucketed by a long-lived cookie, so their variant sticks."""
    app = make_app()
    client = app.test_client()
    first = client.get("/explain/HALF")
    cookie = cookies_set(first)[ANONYMOUS_COOKIE]
    assert len(cookie.value) == 32
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) >= 365 * 24 * 3600
    answers = {client.get("/explain/HALF").text for _ in range(5)}
    assert answers == {first.text}
    assert ANONYMOUS_COOKIE not in cookies_set(client.get("/explain/HALF"))


def test_anonymous_visitors_are_spread_across_variants():
    """Different visitors land in different variants."""
    app = make_app()
    seen = {app.test_client().get("/explain/HALF").text for _ in range(40)}
    assert seen == {"IN rule", "OUT rule"}


def test_no_anonymous_cookie_when_no_rollout_needs_it():
    """Requests that bucket nobody set no cookie."""
    app = make_app()
    assert ANONYMOUS_COOKIE not in cookies_set(app.test_client().get("/explain/ON_OFF"))


def test_a_tampered_anonymous_id_is_replaced():
    """An anonymous id cookie that is not 32 hex characters is ignored and replaced."""
    app = make_app()
    client = app.test_client()
    client.set_cookie(ANONYMOUS_COOKIE, "<script>")
    response = client.get("/explain/HALF")
    assert response.status_code == 200
    assert len(cookies_set(response)[ANONYMOUS_COOKIE].value) == 32


@dataclass
class WeightsStore(StaticStore):
    """A store whose snapshot holds weights set at runtime."""

    weights: dict[str, dict[str, float]] = field(default_factory=dict)


def test_a_rule_that_asks_another_flags_rollout_obeys_that_flags_stored_weights():
    """A flag with no weights of its own whose rule asks another flag's `rollout()` gets that flag's weights
    set at runtime, in a request and in a job alike."""
    inner = experiment("INNER", {"IN": 50, "OUT": 50})

    class Outer(FeatureFlagConfig):
        FLAG_NAME = "OUTER"
        VARIANTS_ENUM_STR = "ON OFF"
        DEFAULT_VARIANT = "OFF"

        def _get_variant(self, user_id=None, app=None, request=None, session=None):
            return "ON" if inner.rollout(user_id).name == "IN" else "OFF"

    store = WeightsStore(weights={"INNER": {"IN": 100, "OUT": 0}})
    app = make_app({"INNER": inner, "OUTER": Outer()}, store=store)
    client = app.test_client()
    assert {client.get("/explain/OUTER").text for _ in range(20)} == {"ON rule"}
    with app.app_context():
        assert {Gatekeeper(user_id=n).ff_variant("OUTER") for n in range(50)} == {"ON"}


def test_a_requests_stored_weights_end_with_it():
    """The weights a request's rules obeyed are not those of the next request in the same thread, here one
    of an app whose store holds none: it splits by the weights in code again."""
    half = {"HALF": experiment("HALF", {"IN": 50, "OUT": 50})}
    weighted = make_app(half, store=WeightsStore(weights={"HALF": {"IN": 100, "OUT": 0}}))
    plain = make_app(half, store=WeightsStore())
    assert weighted.test_client().get("/explain/HALF").text == "IN rule"
    new_visitors = {plain.test_client().get("/explain/HALF").text for _ in range(40)}
    assert new_visitors == {"IN rule", "OUT rule"}
