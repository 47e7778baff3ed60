"""What the flag page shows of a flag's exposures (`exposures.py` records and stores them): the hourly
series per variant, each variant's share of the distinct units, and the ratio check of that split against
the weights (chi-square; a p-value under SRM_P_VALUE is a sample ratio mismatch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .guardrails import chi_square_p_value

SRM_P_VALUE = 0.001


@dataclass(frozen=True)
class VariantShare:
    """One variant's distinct units over the window, its share of them, and the share its weight expects."""

    variant: str
    units: int
    share: float
    expected: float | None


@dataclass(frozen=True)
class ExposureReport:
    """A flag's exposures per variant over the last CHART_HOURS hours, and its split of distinct units."""

    flag: str
    hours: list[datetime]  # the start of each hour, oldest first
    series: dict[str, list[int]]  # variant -> exposures in each of those hours
    shares: list[VariantShare]
    chi_square: float | None  # None: no weights, or too few units for the test
    p_value: float | None

    @property
    def total(self) -> int:
        return sum(sum(counts) for counts in self.series.values())

    @property
    def peak(self) -> int:
        return max((max(counts) for counts in self.series.values()), default=0)

    @property
    def sample_ratio_mismatch(self) -> bool:
        return self.p_value is not None and self.p_value < SRM_P_VALUE

    def points(self, variant: str, width: float = 480, height: float = 120) -> str:
        """The SVG polyline points of one variant's hourly counts in a width x height box."""
        counts, peak = self.series[variant], max(self.peak, 1)
        step = width / max(len(counts) - 1, 1)
        return " ".join(
            f"{index * step:.1f},{height - count * height / peak:.1f}" for index, count in enumerate(counts)
        )


def split_of_units(
    variants: list[str], units: Mapping[str, int], weights: Mapping[str, float] | None
) -> tuple[list[VariantShare], float | None, float | None]:
    """Each variant's share of the units, and the chi-square statistic and p-value against `weights`
    (None when there are no weights, or when any variant expects fewer than 5 units: too few to test)."""
    total = sum(units.get(variant, 0) for variant in variants)
    shares = [
        VariantShare(
            variant,
            units.get(variant, 0),
            units.get(variant, 0) / total if total else 0.0,
            weights.get(variant, 0) / 100 if weights else None,
        )
        for variant in variants
    ]
    if not weights or not total:
        return shares, None, None
    tested = [share for share in shares if share.expected]
    if len(tested) < 2 or any(total * share.expected < 5 for share in tested):
        return shares, None, None
    statistic = sum(
        (share.units - total * share.expected) ** 2 / (total * share.expected) for share in tested
    )
    return shares, statistic, chi_square_p_value(statistic, len(tested) - 1)


def rollout_weights(config: Any) -> Mapping[str, float] | None:
    """The ROLLOUT a flag's config declares, if any (the weights its split is checked against)."""
    weights = getattr(config, "ROLLOUT", None)
    return weights if isinstance(weights, Mapping) and weights else None
