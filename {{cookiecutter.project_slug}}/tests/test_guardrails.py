"""Guarded releases' statistics: the anytime-valid test that rolls a release back, checked by simulation.

Each simulated release ramps through the default milestones (1, 5, 25, 50, 100 % treatment) with a due
check after every 2,500 requests, exactly as a release plan asks `decide()`: roll back, hold, advance or
complete. Equal arms must roll back at most alpha of the time however often they are looked at; a real
regression must roll back in at least 95% of releases, by the sample `sample_to_detect()` predicts.
"""

from __future__ import annotations

import math
import random

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control.guardrails import (
    ArmStats,
    Guardrail,
    Plan,
    compare,
    decide,
    radius,
    sample_to_detect,
    summarise,
)

RELEASES = 2_000
REQUESTS_PER_CHECK = 2_500
ALPHA = 0.05
# Three standard errors of a share measured over RELEASES simulated releases, at alpha.
SIMULATION_ERROR = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RELEASES)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Successes in n trials of probability p, by waiting times between successes (fast for small p)."""
    if p <= 0 or n <= 0:
        return 0
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    count, position, log_q = 0, 0, math.log1p(-p)
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


def normal_sample(rng: random.Random, n: int, mean: float, sd: float) -> ArmStats:
    """Totals of n normal observations, drawn exactly: a normal mean and a scaled chi-square variance."""
    if n < 2:
        return summarise([rng.gauss(mean, sd) for _ in range(n)])
    sample_mean = rng.gauss(mean, sd / math.sqrt(n))
    sample_variance = sd * sd * rng.gammavariate((n - 1) / 2, 2) / (n - 1)
    return ArmStats(n, sample_mean * n, sample_variance * (n - 1) + n * sample_mean * sample_mean)


def simulate_release(plan: Plan, rng: random.Random, draw) -> tuple[str, int]:
    """One release from its first milestone to its end: ("rollback" or "complete", treatment's requests)."""
    step, at_step = 0, 0
    control = treatment = ArmStats(binary=True) if draw is None else ArmStats()
    for _ in range(10_000):
        share = plan.milestones[step]
        n_treatment = round(REQUESTS_PER_CHECK * share / 100)
        n_control = REQUESTS_PER_CHECK - n_treatment
        more_control, more_treatment = draw(rng, n_control, n_treatment)
        control, treatment = control + more_control, treatment + more_treatment
        at_step += min(n_control, n_treatment)
        metric = plan.guardrails[0].metric
        decision = decide(
            plan, step, {metric: (control, treatment)}, sample_at_step=at_step, seconds_at_step=3600
        )
        if decision.action in ("rollback", "complete"):
            return decision.action, treatment.n
        if decision.action == "advance":
            step, at_step = step + 1, 0
    raise AssertionError("a simulated release neither completed nor rolled back")


def error_rates(control_rate: float, treatment_rate: float):
    def draw(rng, n_control, n_treatment):
        return (
            ArmStats.of_rate(binomial(rng, n_control, control_rate), n_control),
            ArmStats.of_rate(binomial(rng, n_treatment, treatment_rate), n_treatment),
        )

    return draw


def latencies(control: tuple[float, float], treatment: tuple[float, float]):
    def draw(rng, n_control, n_treatment):
        return normal_sample(rng, n_control, *control), normal_sample(rng, n_treatment, *treatment)

    return draw


def run_releases(plan: Plan, draw) -> list[tuple[str, int]]:
    rng = random.Random(20261202)
    return [simulate_release(plan, rng, draw) for _ in range(RELEASES)]


ERRORS_PLAN = Plan(min_sample=500, min_seconds=0, alpha=ALPHA)
LATENCY_PLAN = Plan(min_sample=500, min_seconds=0, alpha=ALPHA, guardrails=(Guardrail("latency_ms"),))


def rollback_share(outcomes: list[tuple[str, int]]) -> float:
    return sum(action == "rollback" for action, _ in outcomes) / len(outcomes)


def ninety_fifth_percentile_of_rollbacks(outcomes: list[tuple[str, int]]) -> int:
    samples = sorted(n for action, n in outcomes if action == "rollback")
    return samples[math.ceil(0.95 * len(samples)) - 1]


def test_equal_error_rates_roll_back_at_most_alpha_of_releases():
    outcomes = run_releases(ERRORS_PLAN, error_rates(0.01, 0.01))
    assert rollback_share(outcomes) <= ALPHA + SIMULATION_ERROR


def test_three_percent_errors_against_one_percent_roll_back_95_percent_of_releases_by_the_predicted_sample():
    outcomes = run_releases(ERRORS_PLAN, error_rates(0.01, 0.03))
    predicted = sample_to_detect(
        ERRORS_PLAN, (0.01, 0.01 * 0.99), (0.03, 0.03 * 0.97), requests_per_check=REQUESTS_PER_CHECK
    )
    assert rollback_share(outcomes) >= 0.95
    assert predicted is not None
    assert ninety_fifth_percentile_of_rollbacks(outcomes) <= predicted


def test_equal_latencies_roll_back_at_most_alpha_of_releases():
    outcomes = run_releases(LATENCY_PLAN, latencies((100.0, 40.0), (100.0, 40.0)))
    assert rollback_share(outcomes) <= ALPHA + SIMULATION_ERROR


def test_a_30_percent_latency_regression_rolls_back_in_95_percent_of_releases_by_the_predicted_sample():
    outcomes = run_releases(LATENCY_PLAN, latencies((100.0, 40.0), (130.0, 52.0)))
    predicted = sample_to_detect(
        LATENCY_PLAN, (100.0, 40.0**2), (130.0, 52.0**2), requests_per_check=REQUESTS_PER_CHECK
    )
    assert rollback_share(outcomes) >= 0.95
    assert predicted is not None
    assert ninety_fifth_percentile_of_rollbacks(outcomes) <= predicted


def test_a_drop_in_a_metric_where_higher_is_better_is_a_regression():
    conversions = Guardrail("checkout_completed", direction="higher")
    comparison = compare(conversions, ArmStats.of_rate(2_000, 10_000), ArmStats.of_rate(1_400, 10_000))
    assert comparison.regressed


def test_a_regression_within_the_tolerance_is_not_one():
    latency = Guardrail("latency_ms", tolerance=0.10)
    control = normal_sample(random.Random(1), 20_000, 100.0, 20.0)
    treatment = normal_sample(random.Random(2), 20_000, 105.0, 20.0)
    assert not compare(latency, control, treatment).regressed


def test_an_arm_below_thirty_requests_decides_nothing():
    comparison = compare(Guardrail("errors"), ArmStats.of_rate(0, 10_000), ArmStats.of_rate(29, 29))
    assert not comparison.regressed
    assert comparison.low == -math.inf


def test_an_arm_with_no_errors_yet_is_not_certain():
    assert ArmStats.of_rate(0, 1_000).variance > 0


def test_the_radius_shrinks_as_the_sample_grows():
    assert radius(1e-4, 1e-4, ALPHA) > radius(1e-5, 1e-4, ALPHA) > radius(1e-6, 1e-4, ALPHA)


def test_a_regression_rolls_back_to_zero_with_the_evidence_in_words():
    arms = {"errors": (ArmStats.of_rate(10, 5_000), ArmStats.of_rate(60, 1_000))}
    decision = decide(ERRORS_PLAN, 1, arms, sample_at_step=900, seconds_at_step=60)
    assert (decision.action, decision.share) == ("rollback", 0.0)
    assert decision.reason.startswith(
        "rolled back from 5%: errors: treatment 0.06 over 1,000, control 0.002 over 5,000"
    )


def test_a_step_holds_until_its_minimum_sample_and_time_and_says_what_it_waits_for():
    plan = Plan(min_sample=500, min_seconds=600)
    arms = {"errors": (ArmStats.of_rate(10, 5_000), ArmStats.of_rate(2, 200))}
    decision = decide(plan, 0, arms, sample_at_step=200, seconds_at_step=120)
    assert decision.action == "hold"
    assert (
        decision.reason
        == "holding at 1%: 200 of 500 requests in the smaller arm, 2 min of 10 min at this step"
    )


def test_a_step_with_its_sample_and_time_and_no_regression_advances_to_the_next_milestone():
    arms = {"errors": (ArmStats.of_rate(23, 2_310), ArmStats.of_rate(11, 2_287))}
    decision = decide(Plan(), 2, arms, sample_at_step=2_287, seconds_at_step=900)
    assert (decision.action, decision.share) == ("advance", 50.0)
    assert decision.reason.startswith("advanced to 50%: 2,287 and 2,310 requests")
    assert decision.reason.endswith("no regression")


def test_the_last_step_before_100_completes_the_release():
    arms = {"errors": (ArmStats.of_rate(20, 5_000), ArmStats.of_rate(20, 5_000))}
    decision = decide(Plan(), 3, arms, sample_at_step=5_000, seconds_at_step=900)
    assert (decision.action, decision.share) == ("complete", 100.0)


def test_a_sample_ratio_mismatch_holds_the_release_and_says_why():
    arms = {"errors": (ArmStats.of_rate(20, 5_000), ArmStats.of_rate(20, 5_000))}
    decision = decide(
        Plan(),
        3,
        arms,
        sample_at_step=5_000,
        seconds_at_step=900,
        ratio_mismatch="the split is 62/38, not 50/50",
    )
    assert decision.action == "hold"
    assert decision.reason == "holding at 50%: the split is 62/38, not 50/50"


def test_no_traffic_holds_the_release():
    decision = decide(Plan(), 0, {}, sample_at_step=0, seconds_at_step=900)
    assert decision.action == "hold"
    assert "no traffic" in decision.reason


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"milestones": (5.0, 1.0, 100.0)}, "milestones must rise"),
        ({"milestones": (1.0, 50.0)}, "the last milestone must be 100"),
        ({"alpha": 0.7}, "alpha must be above 0 and below 0.5"),
        ({"min_sample": 0}, "the minimum sample 1 or more"),
        ({"guardrails": ()}, "at least one guardrail"),
    ],
)
def test_a_plan_that_cannot_work_is_refused_with_what_to_change(settings, message):
    with pytest.raises(ValueError, match=message):
        Plan(**settings)


def test_a_guardrail_with_an_unknown_direction_is_refused():
    with pytest.raises(ValueError, match="direction must be 'lower' or 'higher'"):
        Guardrail("errors", direction="down")  # type: ignore[arg-type]
