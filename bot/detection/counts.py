"""Judging a rate given as counts (errors / requests) against its boundaries.

An excess counts as sustained when the whole window is beyond noise (see
:mod:`bot.detection.rates`), it survives setting aside the worst blip-length stretch, and it
is spread through the rest: no healthy-looking gap (short windows), or in long windows no
more healthy-looking parts than the noise of an even excess gives, which a cluster of blips
with healthy gaps between them fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.detection.evidence import DetectionState, MetricEvidence, format_chance, format_duration
from bot.detection.rates import (
    Baseline,
    Limit,
    StepCounts,
    baseline_cap,
    doubt_within,
    fit_baseline,
    p_excess,
    percent,
    rate_limits,
)
from bot.detection.rules import RatioRule, StepSeries
from bot.detection.stats import chi_square_upper_tail
from bot.detection.windows import (
    DetectorSettings,
    Window,
    candidate_windows,
    is_sustained,
    most_segments,
    no_healthy_gap,
    part_steps,
    remainder_segments,
    set_aside_steps,
    stretches,
    worst_stretch_start,
)


@dataclass(frozen=True)
class _Test:
    """One window's verdict on one boundary."""

    window: Window
    events: float
    exposure: float
    p_value: float
    spread_out: bool
    limit: Limit
    set_aside_steps: int = 0
    whole_p_value: float = 1.0
    gaps_visible: bool = False
    # Spread out although some parts look healthy: no more of them than noise gives.
    evenly: bool = False

    def sustained(self, settings: DetectorSettings) -> bool:
        """Whether this window alone is enough to call the version degraded."""
        return is_sustained(
            whole_p_value=self.whole_p_value,
            rest_p_value=self.p_value,
            no_gap=self.spread_out,
            gaps_visible=self.gaps_visible,
            settings=settings,
        )


def _cap_note(
    baseline: Baseline, limits: Sequence[Limit], candidate_rate: float, significance: float
) -> str:
    """Words for when waiting cannot settle it, because the baseline's count caps the evidence."""
    caps = [
        baseline_cap(baseline, limit, candidate_rate)
        for limit in limits
        if candidate_rate > limit.rate
    ]
    if not caps or min(caps) <= significance:
        return ""
    return (
        f"; the baseline's {baseline.events:,.0f} errors cap the evidence: even endless "
        f"traffic at {percent(candidate_rate)} would leave a chance of "
        f"{format_chance(min(caps))} that it is noise, which a longer baseline would lift"
    )


def _gap_view(
    steps: StepCounts, limit: Limit, part: Sequence[int], excess_rate: float
) -> bool | None:
    """Whether a stretch looks like a healthy gap; None when too little traffic to tell.

    The cut is where the Poisson likelihoods at the limit and at the excess rate are equal,
    so a gap between blips looks healthy even when noise lifts it a little over the limit.
    """
    events, exposure, _ = steps.totals(part)
    if limit.rate * exposure < 1.0:
        return None
    if excess_rate <= limit.rate:
        return events <= limit.rate * exposure
    return events <= exposure * (excess_rate - limit.rate) / math.log(excess_rate / limit.rate)


def _no_gap_in_longer_stretches(
    steps: StepCounts,
    limit: Limit,
    window: Window,
    part: int,
    blip_steps: int,
    rate: float,
    settings: DetectorSettings,
) -> bool:
    """Look for healthy gaps again where parts hold too little traffic to tell.

    Stretches grow part by part until one holds an error expected at the limit, up to a
    blip's length: a gap between blips that thin traffic hid from part-length stretches
    shows in longer ones. This only ever finds more gaps, never fewer.
    """
    _, exposure, _ = steps.totals(range(window.first, window.end))
    present = sum(steps.present[window.first : window.end])
    if present == 0 or exposure <= 0:
        return True
    per_step = exposure / present
    length = part
    while length < blip_steps and limit.rate * per_step * length < 1.0:
        length = min(blip_steps, length + part)
    if length == part or length >= window.length:
        return True
    quiet = [
        _gap_view(steps, limit, stretch, rate) is True
        for stretch in stretches(steps.present, window, length)
    ]
    return no_healthy_gap(quiet, length, settings)


def _even_excess(
    steps: StepCounts,
    baseline: Baseline,
    kept: Sequence[int],
    part: int,
    rate: float,
    settings: DetectorSettings,
) -> bool:
    """Whether the rest runs at one rate throughout, as a sustained excess does.

    A long window of a real excess only just over its limit has many parts that look healthy
    by noise alone; a cluster of blips has parts far above and far below the rest's rate. The
    parts' spread around that rate is compared with what the baseline's overdispersion allows.
    """
    chunks = [kept[start : start + part] for start in range(0, len(kept), part)]
    if len(chunks) < settings.parts_per_allowed_gap or not 0.0 < rate < 1.0:
        return False
    statistic, terms = 0.0, 0
    for chunk in chunks:
        events, exposure, squares = steps.totals(chunk)
        if exposure <= 0:
            continue
        variance = baseline.dispersion(exposure, squares) * rate * (1.0 - rate) * exposure
        statistic += (events - rate * exposure) ** 2 / variance
        terms += 1
    if terms < 2:
        return False
    return chi_square_upper_tail(statistic, terms - 1) > settings.evenness_significance


def _test_window(
    steps: StepCounts,
    baseline: Baseline,
    limit: Limit,
    window: Window,
    blip_steps: int,
    settings: DetectorSettings,
) -> _Test | None:
    """Set aside the worst blip-length stretch, then test what is left and its segments."""
    excess = steps.excess(limit.rate)
    if sum(excess[window.first : window.end]) <= 0:
        # Setting a stretch aside only lowers the excess, so this window cannot show one.
        return None
    aside = set_aside_steps(blip_steps, settings)
    if window.length <= aside:
        return None
    start = worst_stretch_start(excess, window, aside)
    segments = remainder_segments(steps.present, window, range(start, start + aside), blip_steps)
    kept = [index for segment in segments for index in segment]
    totals = steps.totals(kept)
    if totals[1] <= 0:
        return None
    sums = [steps.totals(segment) for segment in segments]
    spread_out = most_segments([n > 0 and e > limit.rate * n for e, n, _ in sums])
    part = part_steps(blip_steps, settings)
    rate = totals[0] / totals[1]
    views = [
        _gap_view(steps, limit, stretch, rate) for stretch in stretches(steps.present, window, part)
    ]
    gap_free = no_healthy_gap([view is True for view in views], part, settings)
    if gap_free and None in views:
        gap_free = _no_gap_in_longer_stretches(
            steps, limit, window, part, blip_steps, rate, settings
        )
    even = not gap_free and _even_excess(steps, baseline, kept, part, rate, settings)
    spread_out = spread_out and (gap_free or even)
    # The laxer rest threshold needs a window whose gaps were looked for and not found.
    visible = gap_free and sum(view is not None for view in views) * 2 >= len(views) > 0
    p_value = p_excess(baseline, limit, totals)
    whole = p_excess(baseline, limit, steps.totals(range(window.first, window.end)))
    return _Test(
        window, totals[0], totals[1], p_value, spread_out, limit, aside, whole, visible, even
    )


def _plain_test(steps: StepCounts, baseline: Baseline, limit: Limit, window: Window) -> _Test:
    """The window as it is, nothing set aside."""
    totals = steps.totals(range(window.first, window.end))
    p_value = p_excess(baseline, limit, totals) if totals[1] > 0 else 1.0
    return _Test(window, totals[0], totals[1], p_value, False, limit)


def judge_ratio(
    *,
    rule: RatioRule,
    baseline_series: StepSeries,
    baseline_steps: int,
    candidate: StepSeries,
    candidate_steps: int,
    blip_steps: int,
    settings: DetectorSettings,
) -> MetricEvidence:
    """Decide one count-based metric's state from the baseline and the candidate so far."""
    name = rule.label
    baseline = fit_baseline(StepCounts.read(baseline_series, rule, baseline_steps))
    if baseline is None:
        summary = f"{name}: no baseline traffic to compare with"
        return MetricEvidence(rule.name, name, DetectionState.INCONCLUSIVE, summary)
    steps = StepCounts.read(candidate, rule, candidate_steps)
    if not any(steps.present):
        summary = f"{name}: no candidate traffic since deploy"
        return MetricEvidence(rule.name, name, DetectionState.INCONCLUSIVE, summary)
    limits = rate_limits(baseline, rule)
    report = _Reporter(rule, baseline, candidate.step_seconds)
    step = candidate.step_seconds
    set_aside = format_duration(blip_steps * step)

    tests = [
        test
        for window in candidate_windows(candidate_steps, blip_steps, settings)
        for limit in limits
        if (test := _test_window(steps, baseline, limit, window, blip_steps, settings)) is not None
    ]
    sustained = [t for t in tests if t.sustained(settings)]
    if sustained:
        test = min(sustained, key=lambda t: t.p_value)
        spread = (
            "runs evenly through it, its healthy-looking parts no more than noise gives"
            if test.evenly
            else "with no healthy gap between blips"
        )
        wording = (
            f"a blip cannot explain it: the excess holds in most {set_aside} stretches of "
            f"the rest, {spread} (chance a blip explains it: "
            f"{format_chance(test.p_value)}, chance the whole "
            f"{format_duration(test.window.length * step)} is noise: "
            f"{format_chance(test.whole_p_value)})"
        )
        return report(DetectionState.DEGRADED, test, wording)
    totals = steps.totals(range(candidate_steps))
    candidate_rate = totals[0] / totals[1]
    weakest = min(tests, key=lambda t: t.p_value, default=None)
    if weakest is not None and weakest.p_value <= settings.suspect_significance:
        wording = (
            "not sustained enough to act on (chance it is noise: "
            f"{format_chance(weakest.p_value)})"
            f"{_cap_note(baseline, limits, candidate_rate, settings.significance)}"
        )
        return report(DetectionState.SUSPECT, weakest, wording)

    recent = Window(max(0, candidate_steps - blip_steps), candidate_steps)
    excursions = [_plain_test(steps, baseline, limit, recent) for limit in limits]
    excursion = min(excursions, key=lambda t: t.p_value)
    if excursion.p_value <= settings.significance:
        wording = f"an excursion no longer than a {set_aside} blip so far"
        return report(DetectionState.SUSPECT, excursion, wording)
    since_deploy = Window(0, candidate_steps)
    overall = [_plain_test(steps, baseline, limit, since_deploy) for limit in limits]
    if excursion.exposure <= 0:
        return report(
            DetectionState.INCONCLUSIVE, overall[0], f"no traffic in the last {set_aside}"
        )
    doubt = max(doubt_within(baseline, test.limit, totals) for test in overall)
    if doubt <= settings.healthy_doubt:
        return report(DetectionState.HEALTHY, overall[0], "within its boundary")
    wording = (
        f"too little evidence to tell yet (baseline {baseline.events:,.0f} errors in "
        f"{baseline.exposure:,.0f} requests; chance it is beyond the boundary {doubt:.0%})"
        f"{_cap_note(baseline, limits, candidate_rate, settings.significance)}"
    )
    return report(DetectionState.INCONCLUSIVE, overall[0], wording)


@dataclass(frozen=True)
class _Reporter:
    """Turns a window's test into evidence a person can check."""

    rule: RatioRule
    baseline: Baseline
    step_seconds: float

    def __call__(self, state: DetectionState, test: _Test, wording: str) -> MetricEvidence:
        rate = test.events / test.exposure if test.exposure > 0 else 0.0
        base = self.baseline.rate
        ratio = rate / base if base > 0 else None
        shown_ratio = f"×{ratio:.1f}" if ratio is not None else "baseline had no errors"
        seconds = test.window.length * self.step_seconds
        without = test.set_aside_steps * self.step_seconds
        trimmed = f" without its worst {format_duration(without)}" if without else ""
        summary = (
            f"{self.rule.label} {percent(rate)} vs baseline {percent(base)} "
            f"({shown_ratio}, boundary {test.limit.text}) over the last "
            f"{format_duration(seconds)}{trimmed}, {test.exposure:,.0f} requests, "
            f"{test.events:,.0f} errors; {wording}"
        )
        return MetricEvidence(
            metric=self.rule.name,
            label=self.rule.label,
            state=state,
            summary=summary,
            baseline_value=base,
            candidate_value=rate,
            ratio_to_baseline=ratio,
            boundary=test.limit.text,
            limit_value=test.limit.rate,
            window_seconds=seconds,
            sample_count=test.exposure,
            event_count=test.events,
            p_value=test.p_value,
            blip_robust=test.spread_out if state == DetectionState.DEGRADED else None,
        )
