"""Small, dependency-free statistics the detector needs: tail probabilities and robust spreads."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Beyond this many expected events a normal approximation is exact enough and far cheaper.
_NORMAL_APPROXIMATION_VARIANCE = 400.0
_CONTINUED_FRACTION_ITERATIONS = 5000
_TINY = 1e-300


def normal_upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_quantile_upper(p: float) -> float:
    """The z with P(Z >= z) = p, by bisection (only used to phrase evidence)."""
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if normal_upper_tail(middle) > p:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's continued fraction for the incomplete beta function."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _CONTINUED_FRACTION_ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            delta = c * d
            result *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return result


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def binomial_upper_tail(successes: float, trials: float, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), continuous in its arguments.

    Non-integer counts are allowed because overdispersed counts are scaled down to
    "effective" counts before testing.
    """
    if successes <= 0.0:
        return 1.0
    if successes > trials:
        return 0.0
    variance = trials * probability * (1.0 - probability)
    if variance >= _NORMAL_APPROXIMATION_VARIANCE:
        z = (successes - 0.5 - trials * probability) / math.sqrt(variance)
        return normal_upper_tail(z)
    return regularized_beta(probability, successes, trials - successes + 1.0)


def binomial_lower_tail(successes: float, trials: float, probability: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, probability), continuous in its arguments."""
    if successes >= trials:
        return 1.0
    return 1.0 - binomial_upper_tail(successes + 1.0, trials, probability)


def poisson_upper_tail(events: float, mean: float) -> float:
    """P(X >= events) for X ~ Poisson(mean): a binomial with a vanishing success chance."""
    if events <= 0.0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    trials = max(events, mean) * 1e6
    return binomial_upper_tail(events, trials, mean / trials)


def chi_square_upper_tail(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square, by the Wilson-Hilferty cube-root approximation."""
    if statistic <= 0.0:
        return 1.0
    k = float(degrees_of_freedom)
    spread = 2.0 / (9.0 * k)
    z = ((statistic / k) ** (1.0 / 3.0) - (1.0 - spread)) / math.sqrt(spread)
    return normal_upper_tail(z)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def standard_error_of_median(values: Sequence[float]) -> float:
    """Standard error of the sample median, from the MAD so one wild sample cannot inflate it."""
    if len(values) < 2:
        return math.inf
    centre = median(values)
    robust_sd = 1.4826 * median([abs(value - centre) for value in values])
    # 1.2533 = sqrt(pi / 2): the median's efficiency relative to the mean for normal data.
    return 1.2533 * robust_sd / math.sqrt(len(values))
