"""Guarded releases' statistics: is the treatment worse than the control, by a test one may look at often?

A release compares two arms of one flag (the treatment variant and the control variant) on each guardrail
metric: the error rate of the requests each arm served, their mean latency, or a metric the app tracks. It
looks at the running totals every few seconds, so an ordinary fixed-sample test would be wrong: checked
again and again it finds a "significant" difference between equal arms far more often than its alpha says.
The test here stays valid however often it is looked at: a mixture sequential probability ratio test
(mSPRT; Robbins 1970; Johari, Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017) on the
difference of the two arms' means, with the normal approximation and plug-in variances, and the confidence
sequence it inverts into. docs/design.md gives the formulas, the defaults and the references.

Everything here is arithmetic on counts, sums and sums of squares: no tables, no I/O, no Flask. The release
plans (milestones, the timer, the weights they set) build on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["lower", "higher"]
Action = Literal["hold", "advance", "complete", "rollback"]

DEFAULT_ALPHA = 0.05
DEFAULT_MILESTONES: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
# Before this many observations in each arm the normal approximation is not trusted, and nothing is decided.
MIN_SAMPLE_FOR_TEST = 30
# The mixture's spread, as a share of the metric's pooled mean: the size of regression the test is tuned to.
TAU_SHARE = 0.5
# A floor for the mixture's spread and for an arm's variance, so that an arm with no errors yet (variance 0)
# neither divides by zero nor looks infinitely sure.
_TINY = 1e-12


@dataclass(frozen=True)
class ArmStats:
    """One arm's running totals for one metric: how many observations, their sum and their sum of squares."""

    n: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    # A 0/1 metric (an error, a conversion): its variance is smoothed so that no events yet is not "certain".
    binary: bool = False

    @classmethod
    def of_rate(cls, events: int, n: int) -> ArmStats:
        """A 0/1 metric: `events` ones among `n` observations."""
        return cls(n=n, total=float(events), total_squares=float(events), binary=True)

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(
            self.n + other.n,
            self.total + other.total,
            self.total_squares + other.total_squares,
            binary=self.binary and other.binary,
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance, smoothed for 0/1 metrics so that no events yet is not "no variance"."""
        if self.n < 2:
            return 0.0
        variance = (self.total_squares - self.total * self.total / self.n) / (self.n - 1)
        if self.binary:
            smoothed = (self.total + 0.5) / (self.n + 1.0)
            variance = max(variance, smoothed * (1.0 - smoothed))
        return max(variance, 0.0)


@dataclass(frozen=True)
class Guardrail:
    """A metric the release must not make worse: by more than `tolerance` (a share of the control's mean)."""

    metric: str
    direction: Direction = "lower"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"direction must be 'lower' or 'higher', not {self.direction!r}")
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"tolerance must be a share from 0 up to 1, not {self.tolerance!r}")


@dataclass(frozen=True)
class Comparison:
    """The evidence on one guardrail: both arms, the difference and its anytime-valid interval."""

    guardrail: Guardrail
    control: ArmStats
    treatment: ArmStats
    # How far the treatment is beyond the control's tolerated bound (positive: worse), in the metric's unit.
    difference: float
    low: float
    high: float
    regressed: bool

    def describe(self) -> str:
        worse = "higher" if self.guardrail.direction == "lower" else "lower"
        return (
            f"{self.guardrail.metric}: treatment {_number(self.treatment.mean)} over {self.treatment.n:,}, "
            f"control {_number(self.control.mean)} over {self.control.n:,}; {worse} by "
            f"{_number(self.difference)} beyond the tolerance "
            f"(interval {_number(self.low)} to {_number(self.high)})"
        )


def _number(value: float) -> str:
    return f"{value:.4g}"


def radius(variance: float, tau_squared: float, alpha: float) -> float:
    """The half-width of the mSPRT's confidence sequence for an estimate whose variance is `variance`.

    The mixture likelihood ratio of a normal estimate D with variance V against a N(0, tau^2) mixture is
    sqrt(V / (V + tau^2)) * exp(tau^2 D^2 / (2 V (V + tau^2))); it crosses 1/alpha exactly when
    |D| > sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V))), which is this radius.
    """
    variance = max(variance, _TINY)
    tau_squared = max(tau_squared, _TINY)
    spread = variance + tau_squared
    return math.sqrt(
        variance * spread / tau_squared * (2.0 * math.log(1.0 / alpha) + math.log(spread / variance))
    )


def mixture_spread(control: ArmStats, treatment: ArmStats) -> float:
    """tau: the spread of the mixture over regressions, TAU_SHARE of the pooled mean (both arms together)."""
    return max(TAU_SHARE * abs((control + treatment).mean), _TINY)


def compare(
    guardrail: Guardrail, control: ArmStats, treatment: ArmStats, *, alpha: float = DEFAULT_ALPHA
) -> Comparison:
    """Is the treatment significantly worse than the control on this guardrail, beyond its tolerance?

    For a metric where lower is better the tested difference is D = mean_T - (1 + tolerance) * mean_C (for
    higher is better, (1 - tolerance) * mean_C - mean_T), with variance V = s_T^2 / n_T + c^2 s_C^2 / n_C. The
    treatment has regressed when the whole interval D +/- radius lies above zero: a one-sided decision on the
    two-sided sequence, so its false alarms stay under alpha.
    """
    factor = 1.0 + guardrail.tolerance if guardrail.direction == "lower" else 1.0 - guardrail.tolerance
    if guardrail.direction == "lower":
        difference = treatment.mean - factor * control.mean
    else:
        difference = factor * control.mean - treatment.mean
    if min(control.n, treatment.n) < MIN_SAMPLE_FOR_TEST:
        return Comparison(guardrail, control, treatment, difference, -math.inf, math.inf, regressed=False)
    variance = treatment.variance / treatment.n + factor * factor * control.variance / control.n
    tau = mixture_spread(control, treatment)
    half_width = radius(variance, tau * tau, alpha)
    low, high = difference - half_width, difference + half_width
    return Comparison(guardrail, control, treatment, difference, low, high, regressed=low > 0.0)


@dataclass(frozen=True)
class Plan:
    """How a release ramps: its milestones (treatment's share, %), and what each needs before the next."""

    milestones: tuple[float, ...] = DEFAULT_MILESTONES
    min_seconds: float = 600.0
    min_sample: int = 500
    alpha: float = DEFAULT_ALPHA
    guardrails: tuple[Guardrail, ...] = (Guardrail("errors"),)

    def __post_init__(self) -> None:
        steps = self.milestones
        if not steps or any(not 0.0 < step <= 100.0 for step in steps) or list(steps) != sorted(set(steps)):
            raise ValueError(
                "milestones must rise, each above 0 and at most 100, for example 1, 5, 25, 50, 100"
            )
        if steps[-1] != 100.0:
            raise ValueError("the last milestone must be 100 (the treatment for everyone)")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError("alpha must be above 0 and below 0.5, for example 0.05")
        if self.min_seconds < 0 or self.min_sample < 1:
            raise ValueError("the minimum time must be 0 or more and the minimum sample 1 or more")
        if not self.guardrails:
            raise ValueError("a release needs at least one guardrail, for example the error rate")


@dataclass(frozen=True)
class Decision:
    """What a due check decided, and why in words an admin can read in the decision log."""

    action: Action
    reason: str
    share: float
    evidence: tuple[Comparison, ...] = field(default=())


def decide(
    plan: Plan,
    step: int,
    arms: Mapping[str, tuple[ArmStats, ArmStats]],
    *,
    sample_at_step: int,
    seconds_at_step: float,
    ratio_mismatch: str | None = None,
) -> Decision:
    """One due check of a release at milestone `step`: roll back, hold, advance or complete.

    `arms` maps each guardrail's metric to (control, treatment) totals since the release started: the test
    uses everything seen, so that evidence is never thrown away at a milestone. `sample_at_step` is the
    smaller arm's requests since this milestone began: each milestone needs `min_sample` of its own (and
    `min_seconds`) before the next. `ratio_mismatch` is the exposure ratio check's finding, if it found one:
    a split that does not match the weights means the comparison cannot be trusted, so the plan holds and
    says why. Each guardrail is tested at alpha / (number of guardrails), so that the release as a whole
    keeps its false alarms under alpha.
    """
    share = plan.milestones[step]
    alpha = plan.alpha / len(plan.guardrails)
    evidence = tuple(
        compare(guardrail, *arms.get(guardrail.metric, (ArmStats(), ArmStats())), alpha=alpha)
        for guardrail in plan.guardrails
    )
    regressions = [comparison for comparison in evidence if comparison.regressed]
    if regressions:
        words = "; ".join(comparison.describe() for comparison in regressions)
        return Decision("rollback", f"rolled back from {share:g}%: {words}", 0.0, evidence)
    if ratio_mismatch:
        return Decision("hold", f"holding at {share:g}%: {ratio_mismatch}", share, evidence)
    if sample_at_step == 0:
        return Decision(
            "hold", f"holding at {share:g}%: no traffic in one arm at this step yet", share, evidence
        )
    waiting = []
    if sample_at_step < plan.min_sample:
        waiting.append(f"{sample_at_step:,} of {plan.min_sample:,} requests in the smaller arm")
    if seconds_at_step < plan.min_seconds:
        waiting.append(f"{_duration(seconds_at_step)} of {_duration(plan.min_seconds)} at this step")
    if waiting:
        return Decision("hold", f"holding at {share:g}%: " + ", ".join(waiting), share, evidence)
    first = evidence[0]
    counts = f"{first.treatment.n:,} and {first.control.n:,} requests"
    summary = "; ".join(
        f"{c.guardrail.metric} {_number(c.treatment.mean)} vs {_number(c.control.mean)}" for c in evidence
    )
    following = plan.milestones[step + 1] if step + 1 < len(plan.milestones) else 100.0
    if following >= 100.0:
        return Decision("complete", f"completed at 100%: {counts}, {summary}, no regression", 100.0, evidence)
    return Decision(
        "advance", f"advanced to {following:g}%: {counts}, {summary}, no regression", following, evidence
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def sample_to_detect(
    plan: Plan,
    control: tuple[float, float],
    treatment: tuple[float, float],
    *,
    requests_per_check: int,
    power: float = 0.95,
) -> int | None:
    """The treatment arm's requests by which a release rolls back with probability about `power`.

    `control` and `treatment` are each arm's (mean, variance) per request. The prediction walks the plan's
    ramp on expected counts (`requests_per_check` requests between due checks, split by the milestone's
    share) and returns the treatment's requests at the first check where the expected difference, less
    `power`'s normal quantile times its standard error, clears the confidence sequence's radius; None when
    the release would complete first (the regression is too small for this plan to catch).
    """
    z = _normal_quantile(power)
    alpha = plan.alpha / len(plan.guardrails)
    gap = treatment[0] - control[0]
    tau = max(TAU_SHARE * (control[0] + treatment[0]) / 2, _TINY)
    n_t = n_c = 0.0
    for share in plan.milestones[:-1]:
        at_step = 0.0
        while at_step < plan.min_sample:
            n_t += requests_per_check * share / 100
            n_c += requests_per_check * (100 - share) / 100
            at_step += requests_per_check * min(share, 100 - share) / 100
            if min(n_t, n_c) < MIN_SAMPLE_FOR_TEST:
                continue
            variance = treatment[1] / n_t + control[1] / n_c
            if gap - z * math.sqrt(variance) > radius(variance, tau * tau, alpha):
                return math.ceil(n_t)
    return None


def _normal_quantile(p: float) -> float:
    """The standard normal's p-quantile (bisection on the error function: exact enough, and no SciPy)."""
    low, high = -10.0, 10.0
    for _ in range(80):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def summarise(values: Sequence[float]) -> ArmStats:
    """Totals of a list of observations (the tests' and the dashboard's small samples)."""
    return ArmStats(len(values), float(sum(values)), float(sum(v * v for v in values)))


def chi_square_p_value(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X chi-square distributed: the regularized upper incomplete gamma function
    Q(k/2, x/2), by its series below a + 1 and its continued fraction above (Numerical Recipes, 6.2)."""
    if statistic <= 0:
        return 1.0
    a, x = degrees_of_freedom / 2, statistic / 2
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b, c, d = x + 1 - a, 1 / tiny, 1 / (x + 1 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_prefix) * h
