"""Error counts and the statistics of comparing a candidate's rate with its baseline's.

The test is the exact conditional comparison of two rates: given the errors seen in both
versions, how surprising is the candidate's share if its rate were exactly at the boundary?
That accounts for the baseline's own uncertainty (an hour of a safe version is an estimate,
not the truth). Overdispersion is estimated from the baseline's step-to-step variability as
a beta-binomial correlation, and counts are scaled down to effective counts before testing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.detection.rules import RatioRule, StepSeries
from bot.detection.stats import binomial_upper_tail, poisson_upper_tail, regularized_beta

_MAX_CORRELATION = 0.2


@dataclass
class StepCounts:
    """Per-step counts; a step without a sample, traffic or a valid count has zero exposure."""

    events: list[float]
    exposure: list[float]
    present: list[bool]
    _excess: dict[float, list[float]] = field(default_factory=dict)

    @classmethod
    def read(cls, series: StepSeries, rule: RatioRule, steps: int) -> StepCounts:
        numerators, denominators = series.column(rule.numerator), series.column(rule.denominator)
        events, exposure, present = [], [], []
        for index in range(steps):
            numerator = numerators[index] if index < len(numerators) else None
            denominator = denominators[index] if index < len(denominators) else None
            # A negative count (a numerator such as `increase(a) - increase(b)` dipping below
            # zero) is no count at all: the step is missing data, as a scrape gap is.
            has_data = (
                numerator is not None
                and denominator is not None
                and denominator > 0
                and numerator >= 0
            )
            events.append(float(numerator) if has_data and numerator is not None else 0.0)
            exposure.append(float(denominator) if has_data and denominator is not None else 0.0)
            present.append(has_data)
        return cls(events=events, exposure=exposure, present=present)

    def excess(self, limit_rate: float) -> list[float]:
        """Events beyond what the limit rate allows, per step (memoised per limit)."""
        if limit_rate not in self._excess:
            self._excess[limit_rate] = [
                e - limit_rate * r for e, r in zip(self.events, self.exposure, strict=True)
            ]
        return self._excess[limit_rate]

    def totals(self, indices: Sequence[int]) -> tuple[float, float, float]:
        """Summed events, exposure and squared exposure over ``indices``."""
        return (
            sum(self.events[i] for i in indices),
            sum(self.exposure[i] for i in indices),
            sum(self.exposure[i] ** 2 for i in indices),
        )


@dataclass(frozen=True)
class Baseline:
    events: float
    exposure: float
    correlation: float
    exposure_squares: float

    @property
    def rate(self) -> float:
        return self.events / self.exposure

    def dispersion(self, exposure: float, exposure_squares: float) -> float:
        """Variance inflation of a summed count under the beta-binomial model."""
        if exposure <= 0:
            return 1.0
        return 1.0 + self.correlation * max(0.0, exposure_squares / exposure - 1.0)


def fit_baseline(steps: StepCounts) -> Baseline | None:
    indices = [i for i, has_data in enumerate(steps.present) if has_data]
    events, exposure, squares = steps.totals(indices)
    if exposure <= 0:
        return None
    rate = events / exposure
    spread = rate * (1.0 - rate)
    pairs = sum(steps.exposure[i] * (steps.exposure[i] - 1.0) for i in indices)
    correlation = 0.0
    if spread > 0 and pairs > 0:
        surplus = sum(
            (steps.events[i] - steps.exposure[i] * rate) ** 2 - steps.exposure[i] * spread
            for i in indices
        )
        correlation = min(_MAX_CORRELATION, max(0.0, surplus / (spread * pairs)))
    return Baseline(events, exposure, correlation, squares)


@dataclass(frozen=True)
class Limit:
    """One boundary of the rule, as a rate."""

    text: str
    rate: float
    ratio_to_baseline: float | None


def rate_limits(baseline: Baseline, rule: RatioRule) -> list[Limit]:
    limits = []
    ratio = rule.boundary.max_ratio_to_baseline
    if ratio is not None:
        limits.append(Limit(f"×{ratio:g}", ratio * baseline.rate, ratio))
    if rule.boundary.max_value is not None:
        limits.append(
            Limit(f"max {percent(rule.boundary.max_value)}", rule.boundary.max_value, None)
        )
    return limits


def _effective(
    baseline: Baseline, totals: tuple[float, float, float]
) -> tuple[float, float, float, float]:
    """Candidate events/exposure and baseline events/exposure, scaled for overdispersion."""
    events, exposure, squares = totals
    phi = baseline.dispersion(exposure, squares)
    phi_base = baseline.dispersion(baseline.exposure, baseline.exposure_squares)
    return events / phi, exposure / phi, baseline.events / phi_base, baseline.exposure / phi_base


def p_excess(baseline: Baseline, limit: Limit, totals: tuple[float, float, float]) -> float:
    """Chance of at least this much excess if the candidate sat exactly on the boundary."""
    events, exposure, base_events, base_exposure = _effective(baseline, totals)
    if limit.ratio_to_baseline is None:
        return poisson_upper_tail(events, limit.rate * exposure)
    ratio = limit.ratio_to_baseline
    share = ratio * exposure / (ratio * exposure + base_exposure)
    return binomial_upper_tail(events, events + base_events, share)


def doubt_within(baseline: Baseline, limit: Limit, totals: tuple[float, float, float]) -> float:
    """Posterior chance that the candidate is beyond the boundary."""
    events, exposure, base_events, base_exposure = _effective(baseline, totals)
    if limit.ratio_to_baseline is None:
        return 1.0 - poisson_upper_tail(events + 1.0, limit.rate * exposure)
    ratio = limit.ratio_to_baseline
    share = ratio * exposure / (ratio * exposure + base_exposure)
    return 1.0 - regularized_beta(share, events + 1.0, base_events + 0.5)


def baseline_cap(baseline: Baseline, limit: Limit, candidate_rate: float) -> float:
    """Chance of noise that endless candidate traffic at ``candidate_rate`` would still leave.

    An absolute limit has no such cap. Against a ratio to the baseline, the baseline's own
    count bounds the evidence: with the candidate's rate known exactly, what is left to ask
    is whether the baseline could have run at ``candidate_rate / ratio`` and still shown as
    few errors as it did.
    """
    if limit.ratio_to_baseline is None:
        return 0.0
    phi = baseline.dispersion(baseline.exposure, baseline.exposure_squares)
    expected = candidate_rate / limit.ratio_to_baseline * baseline.exposure / phi
    return 1.0 - poisson_upper_tail(baseline.events / phi + 1.0, expected)


def percent(rate: float) -> str:
    return f"{rate * 100:.2g}%" if rate < 0.001 else f"{rate * 100:.1f}%"
