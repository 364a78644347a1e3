"""The detector's tail probabilities against textbook values."""

from __future__ import annotations

import math

import pytest

from bot.detection.stats import binomial_upper_tail, chi_square_upper_tail, poisson_upper_tail


@pytest.mark.parametrize(
    ("degrees_of_freedom", "critical", "chance"),
    [
        (2, 5.991, 0.05),
        (5, 11.070, 0.05),
        (10, 18.307, 0.05),
        (10, 23.209, 0.01),
        (30, 43.773, 0.05),
    ],
)
def test_chi_square_upper_tail_matches_the_critical_values_table(
    degrees_of_freedom: int, critical: float, chance: float
) -> None:
    assert chi_square_upper_tail(critical, degrees_of_freedom) == pytest.approx(chance, rel=0.05)


def test_chi_square_upper_tail_is_one_at_zero_and_falls_with_the_statistic() -> None:
    tails = [chi_square_upper_tail(x, 8) for x in (0.0, 4.0, 8.0, 16.0, 32.0)]
    assert tails[0] == 1.0
    assert tails == sorted(tails, reverse=True) and tails[-1] < 1e-3


def test_binomial_and_poisson_tails_match_exact_sums() -> None:
    exact_binomial = sum(math.comb(20, k) * 0.1**k * 0.9 ** (20 - k) for k in range(5, 21))
    assert binomial_upper_tail(5, 20, 0.1) == pytest.approx(exact_binomial, rel=1e-9)
    exact_poisson = 1.0 - sum(math.exp(-3.0) * 3.0**k / math.factorial(k) for k in range(7))
    assert poisson_upper_tail(7, 3.0) == pytest.approx(exact_poisson, rel=1e-4)
