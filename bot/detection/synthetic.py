"""Synthetic degradation scenarios, to check the detector on more than the shared files.

Same recipe as the shared set: Poisson requests, overdispersed (beta-binomial-like) errors,
lognormal p99 latency, and steps, ramps, blips, diurnal traffic and gaps on top. Each
scenario's truth follows the shared definition: the first moment from which the noise-free
error rate or p99 latency stays beyond its boundary for longer than the sustain time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP_SECONDS = 15
BASELINE_STEPS = 240
CANDIDATE_STEPS = 960
START = 1_767_225_600
ERROR_RATIO_BOUNDARY = 1.5
LATENCY_RATIO_BOUNDARY = 1.3
MIN_SUSTAIN_SECONDS = 180
# Per-request error correlation inside one step; gives the dispersion seen in the shared set.
ERROR_CORRELATION = 0.0035
# The shared blips are at least ~20 minutes apart; closer clusters are a separate stress test.
BLIP_SPACING_SECONDS = 1200.0
# Clustered blips: each shorter than the sustain time, with short healthy gaps between them.
CLUSTER_BLIP_SECONDS = (30.0, 60.0, 90.0, 120.0)
CLUSTER_GAP_SECONDS = (120.0, 600.0)


@dataclass(frozen=True)
class Recipe:
    """What happens to the candidate, as multipliers over time since deploy."""

    name: str
    kind: str
    rps: float
    seed: int
    p0: float = 0.01
    lat0: float = 0.2
    error_multiplier: float = 1.0
    latency_multiplier: float = 1.0
    change_after_seconds: float = 0.0
    ramp_seconds: float = 0.0
    blips: tuple[float, ...] = ()
    blip_seconds: float = 0.0
    # Blips with their own lengths, (start, seconds) since deploy; used by clustered blips.
    blip_spans: tuple[tuple[float, float], ...] = ()
    diurnal_amplitude: float = 0.0
    gaps: tuple[tuple[float, float], ...] = ()
    zero_traffic: tuple[tuple[float, float], ...] = ()
    # How much of the safe version's history precedes the deploy (the shared set has an hour).
    baseline_steps: int = BASELINE_STEPS
    extra: dict[str, Any] = field(default_factory=dict)


def _multiplier(recipe: Recipe, target: float, since_deploy: np.ndarray) -> np.ndarray:
    """Noise-free multiplier of a step or ramp change (1 before it starts)."""
    elapsed = since_deploy - recipe.change_after_seconds
    if recipe.ramp_seconds > 0:
        progress = np.clip(elapsed / recipe.ramp_seconds, 0.0, 1.0)
    else:
        progress = (elapsed >= 0).astype(float)
    return 1.0 + (target - 1.0) * progress


def _truth(recipe: Recipe) -> float | None:
    deploy_at = START + recipe.baseline_steps * STEP_SECONDS
    candidates = []
    for target, boundary in (
        (recipe.error_multiplier, ERROR_RATIO_BOUNDARY),
        (recipe.latency_multiplier, LATENCY_RATIO_BOUNDARY),
    ):
        if target <= boundary:
            continue
        crossing = recipe.ramp_seconds * (boundary - 1.0) / (target - 1.0)
        candidates.append(deploy_at + recipe.change_after_seconds + crossing)
    return min(candidates) if candidates else None


def _by_period(
    seed: np.random.SeedSequence,
    baseline_steps: int,
    total_steps: int,
    draw: Callable[[np.random.Generator, np.ndarray], np.ndarray],
) -> np.ndarray:
    """``draw(generator, steps)`` for the candidate forwards and the baseline backwards.

    Each period has its own stream and the baseline is drawn from the deploy back, so the
    candidate and the hour before the deploy are the same however much history is generated.
    """
    before, after = (np.random.default_rng(child) for child in seed.spawn(2))
    backwards = np.arange(baseline_steps)[::-1]
    forwards = np.arange(baseline_steps, total_steps)
    values = np.empty(total_steps)
    values[backwards] = draw(before, backwards)
    values[forwards] = draw(after, forwards)
    return values


def generate(recipe: Recipe) -> dict[str, Any]:
    """One scenario document in the shared format."""
    phase_seed, *seeds = np.random.SeedSequence(recipe.seed).spawn(5)
    steps = recipe.baseline_steps + CANDIDATE_STEPS

    def noise(
        seed: np.random.SeedSequence, draw: Callable[[np.random.Generator, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        return _by_period(seed, recipe.baseline_steps, steps, draw)

    since_deploy = (np.arange(steps) - recipe.baseline_steps) * STEP_SECONDS
    after = since_deploy >= 0
    load = np.ones(steps)
    if recipe.diurnal_amplitude:
        phase = np.random.default_rng(phase_seed).uniform(0, 2 * math.pi)
        load = 1.0 + recipe.diurnal_amplitude * np.sin(2 * math.pi * since_deploy / 18000 + phase)
    error_mult = np.where(after, _multiplier(recipe, recipe.error_multiplier, since_deploy), 1.0)
    latency_mult = np.where(
        after, _multiplier(recipe, recipe.latency_multiplier, since_deploy), 1.0
    )
    spans = [(at, recipe.blip_seconds) for at in recipe.blips] + list(recipe.blip_spans)
    for blip_at, seconds in spans:
        inside = (since_deploy >= blip_at) & (since_deploy < blip_at + seconds)
        error_mult = np.where(inside, error_mult * 10.0, error_mult)
        latency_mult = np.where(inside, latency_mult * 2.5, latency_mult)
    mean_requests = recipe.rps * STEP_SECONDS * load
    requests = noise(seeds[0], lambda g, at: g.poisson(mean_requests[at]))
    for begin, end in recipe.zero_traffic:
        requests[(since_deploy >= begin) & (since_deploy < end)] = 0
    shape = np.clip(recipe.p0 * error_mult, 1e-9, 0.5) / ERROR_CORRELATION
    step_rate = np.clip(
        noise(seeds[1], lambda g, at: g.gamma(shape[at], ERROR_CORRELATION)), 0.0, 1.0
    )
    errors = noise(seeds[2], lambda g, at: g.binomial(requests[at].astype(int), step_rate[at]))
    standard_normal = noise(seeds[3], lambda g, at: g.standard_normal(len(at)))
    spread = 0.06 + 0.073 / math.sqrt(recipe.rps)
    level = recipe.lat0 * latency_mult * (1.0 + 0.07 * (load - 1.0))
    latency = level * np.exp(spread * standard_normal)
    gap = np.zeros(steps, dtype=bool)
    for begin, end in recipe.gaps:
        gap |= (since_deploy >= begin) & (since_deploy < end)

    def column(values: np.ndarray, missing: np.ndarray, digits: int) -> list[float | None]:
        return [
            None if m else round(float(v), digits) for v, m in zip(values, missing, strict=True)
        ]

    return {
        "name": f"{recipe.name}-s{recipe.seed}",
        "kind": recipe.kind,
        "step_seconds": STEP_SECONDS,
        "start": START,
        "deploy_at": START + recipe.baseline_steps * STEP_SECONDS,
        "baseline_version": "1",
        "candidate_version": "2",
        "boundaries": {
            "error_rate": {"max_ratio_to_baseline": ERROR_RATIO_BOUNDARY},
            "latency_p99_seconds": {"max_ratio_to_baseline": LATENCY_RATIO_BOUNDARY},
        },
        "min_sustain_seconds": MIN_SUSTAIN_SECONDS,
        "series": {
            "requests": column(requests, gap, 0),
            "errors": column(errors, gap, 0),
            "latency_p99_seconds": column(latency, gap | (requests == 0), 4),
        },
        "truth": {"degraded_from": _truth(recipe)},
        "generator": {"rps": recipe.rps, "p0": recipe.p0, "lat0": recipe.lat0, "seed": recipe.seed},
    }


def _spaced_blips(rng: np.random.Generator, latest: float, spacing: float) -> tuple[float, ...]:
    """Three to five blip start times at least ``spacing`` apart, as in the shared set."""
    count = int(rng.integers(3, 6))
    while True:
        starts = sorted(float(x) for x in rng.uniform(0, latest, count))
        if all(later - earlier >= spacing for earlier, later in itertools.pairwise(starts)):
            return tuple(starts)


def recipes(seed: int = 7000, repeats: int = 1) -> Iterator[Recipe]:
    """A mix of every kind the shared set has, with fresh seeds and some unseen parameters."""
    seeds = itertools.count(seed)
    horizon = CANDIDATE_STEPS * STEP_SECONDS
    for _ in range(repeats):
        for rps, p0, mult in itertools.product((0.5, 5, 50), (0.005, 0.02), (1.0, 1.2)):
            yield Recipe(
                f"healthy-m{mult}-r{rps}-p{p0}",
                "healthy",
                rps,
                next(seeds),
                p0,
                error_multiplier=mult,
            )
        for rps, mult in itertools.product((0.5, 5, 50), (2.0, 2.5, 4.0, 10.0)):
            yield Recipe(f"step-m{mult}-r{rps}", "step", rps, next(seeds), error_multiplier=mult)
        for rps in (5, 50):
            yield Recipe(
                f"step-m4-r{rps}-after30m",
                "step",
                rps,
                next(seeds),
                error_multiplier=4.0,
                change_after_seconds=1800,
            )
        for rps, (target, ramp) in itertools.product(
            (5, 50), ((5.0, 1800), (5.0, 7200), (3.0, 3600))
        ):
            yield Recipe(
                f"ramp-to{target:g}-{ramp // 60:.0f}m-r{rps}",
                "ramp",
                rps,
                next(seeds),
                error_multiplier=target,
                ramp_seconds=ramp,
            )
        for rps, seconds in itertools.product((5, 50), (30, 60, 120, 170)):
            spacing = BLIP_SPACING_SECONDS
            starts = _spaced_blips(np.random.default_rng(next(seeds)), horizon - seconds, spacing)
            yield Recipe(
                f"blip-x10-{seconds}s-r{rps}",
                "blip",
                rps,
                next(seeds),
                blips=starts,
                blip_seconds=seconds,
            )
        for rps, amplitude in itertools.product((5, 50), (0.3, 0.6)):
            yield Recipe(
                f"diurnal-a{amplitude}-r{rps}",
                "diurnal",
                rps,
                next(seeds),
                diurnal_amplitude=amplitude,
            )
        yield Recipe(
            "nodata-gaps-r5",
            "nodata",
            5,
            next(seeds),
            gaps=((120, 420), (2500, 3400), (9000, 9300)),
        )
        yield Recipe(
            "nodata-zero-r5", "nodata", 5, next(seeds), zero_traffic=((120, 300), (2650, 3250))
        )
        yield Recipe("nodata-gaps-r0.5", "nodata", 0.5, next(seeds), gaps=((0, 600), (4000, 4900)))
        for rps, mult in itertools.product((0.5, 5, 50), (1.5, 2.0)):
            yield Recipe(
                f"latency-x{mult}-r{rps}", "latency", rps, next(seeds), latency_multiplier=mult
            )
        for rps in (0.5, 5, 50):
            yield Recipe(
                f"latency-x1.15-r{rps}", "healthy", rps, next(seeds), latency_multiplier=1.15
            )


def _blip_cluster(rng: np.random.Generator, first: float) -> list[tuple[float, float]]:
    """Two or three blips of 30-120 s from ``first``, separated by 2-10 minute healthy gaps."""
    spans, at = [], first
    for _ in range(int(rng.integers(2, 4))):
        seconds = float(rng.choice(CLUSTER_BLIP_SECONDS))
        spans.append((at, seconds))
        at += seconds + float(rng.uniform(*CLUSTER_GAP_SECONDS))
    return spans


def clustered_blip_recipes(seed: int = 9000, repeats: int = 1) -> Iterator[Recipe]:
    """Healthy versions with clusters of blips: no rollback is expected on any of them.

    Each scenario holds two clusters an hour apart, at 0.5, 5 and 50 rps and both error rates;
    one cluster of two 120 s blips with a 2-minute gap is the hardest case of the kind.
    """
    seeds = itertools.count(seed)
    for _ in range(repeats):
        for rps, p0 in itertools.product((0.5, 5, 50), (0.005, 0.02)):
            recipe_seed = next(seeds)
            rng = np.random.default_rng(recipe_seed + 500_000)
            first = float(rng.uniform(300, 3000))
            spans = _blip_cluster(rng, first) + _blip_cluster(rng, first + 4800)
            yield Recipe(
                f"blip-cluster-r{rps}-p{p0}",
                "blip",
                rps,
                recipe_seed,
                p0,
                blip_spans=tuple(spans),
            )
        for rps in (5, 50):
            tight = ((900.0, 120.0), (1140.0, 120.0), (6000.0, 120.0), (6240.0, 120.0))
            yield Recipe(f"blip-cluster-tight-r{rps}", "blip", rps, next(seeds), blip_spans=tight)
