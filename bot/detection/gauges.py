"""Judging a sampled gauge (p99 latency, confidence, drift) against its boundaries.

Per-step gauges such as p99 latency are noisy and skewed, so versions are compared by their
medians, with the median's uncertainty taken from the spread (MAD) of the samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.detection.evidence import DetectionState, MetricEvidence, format_chance, format_duration
from bot.detection.rules import Direction, GaugeRule, StepSeries
from bot.detection.stats import median, normal_upper_tail, standard_error_of_median
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
class _Baseline:
    median: float
    standard_error: float
    relative_spread: float
    count: int


@dataclass(frozen=True)
class _Limit:
    """One boundary as a value, with the uncertainty it inherits from the baseline."""

    text: str
    value: float
    standard_error: float
    ratio_to_baseline: float | None


@dataclass(frozen=True)
class _Test:
    window: Window
    value: float
    count: int
    p_value: float
    spread_out: bool
    limit: _Limit
    set_aside_steps: int = 0
    whole_p_value: float = 1.0

    def sustained(self, settings: DetectorSettings) -> bool:
        """Whether this window alone is enough to call the version degraded."""
        return is_sustained(
            whole_p_value=self.whole_p_value,
            rest_p_value=self.p_value,
            no_gap=self.spread_out,
            gaps_visible=True,
            settings=settings,
        )


def _read(series: StepSeries, name: str, steps: int) -> list[float | None]:
    column = series.column(name)
    return [
        None if index >= len(column) or column[index] is None else float(column[index] or 0.0)
        for index in range(steps)
    ]


def _fit_baseline(values: Sequence[float]) -> _Baseline | None:
    if len(values) < 2:
        return None
    centre = median(values)
    spread = 1.4826 * median([abs(value - centre) for value in values])
    relative = spread / abs(centre) if centre else 0.0
    return _Baseline(centre, standard_error_of_median(values), relative, len(values))


def _limits(baseline: _Baseline, rule: GaugeRule) -> list[_Limit]:
    boundary, limits = rule.boundary, []
    higher = rule.direction == Direction.HIGHER_IS_WORSE
    ratio = boundary.max_ratio_to_baseline if higher else boundary.min_ratio_to_baseline
    if ratio is not None:
        value = ratio * baseline.median
        text = f"×{ratio:g}"
        limits.append(_Limit(text, value, ratio * baseline.standard_error, ratio))
    absolute = boundary.max_value if higher else boundary.min_value
    if absolute is not None:
        limits.append(_Limit(f"{'max' if higher else 'min'} {absolute:g}", absolute, 0.0, None))
    return limits


class _GaugeJudge:
    """Tests windows of one gauge against one baseline."""

    def __init__(
        self,
        rule: GaugeRule,
        baseline: _Baseline,
        values: list[float | None],
        settings: DetectorSettings,
    ) -> None:
        self.rule, self.baseline, self.values, self.settings = rule, baseline, values, settings
        self.min_samples = settings.min_gauge_samples
        self.min_sustain_fraction = settings.min_gauge_sustain_fraction
        self.sign = 1.0 if rule.direction == Direction.HIGHER_IS_WORSE else -1.0
        self.present = [value is not None for value in values]
        self._excess: dict[float, list[float]] = {}

    def beyond(self, value: float, limit: _Limit) -> bool:
        return self.sign * (value - limit.value) > 0

    def p_excess(self, kept: Sequence[float], limit: _Limit) -> float:
        """Chance of a median this far beyond the limit if the truth sat on the limit."""
        centre = median(kept)
        own = standard_error_of_median(kept)
        # A handful of samples can have an accidentally tiny spread; never trust less
        # spread than the baseline showed at the same level.
        floor = 1.2533 * self.baseline.relative_spread * abs(centre) / math.sqrt(len(kept))
        error = math.hypot(max(own, floor), limit.standard_error)
        if error <= 0:
            return 0.0 if self.beyond(centre, limit) else 1.0
        return normal_upper_tail(self.sign * (centre - limit.value) / error)

    def kept_values(self, indices: Sequence[int]) -> list[float]:
        return [value for index in indices if (value := self.values[index]) is not None]

    def excess(self, limit: _Limit) -> list[float]:
        """How far each sample is beyond the limit (negative when within), memoised per limit."""
        if limit.value not in self._excess:
            self._excess[limit.value] = [
                0.0 if v is None else self.sign * (v - limit.value) for v in self.values
            ]
        return self._excess[limit.value]

    def test_window(self, window: Window, limit: _Limit, blip_steps: int) -> _Test | None:
        excess = self.excess(limit)
        within = window.length - sum(self.present[window.first : window.end])
        beyond = sum(value > 0 for value in excess[window.first : window.end])
        if beyond * 2 <= window.length - within:
            # The median is not beyond the limit, and setting a stretch aside cannot change that.
            return None
        aside = set_aside_steps(blip_steps, self.settings)
        if window.length <= aside:
            return None
        start = worst_stretch_start(excess, window, aside)
        segments = remainder_segments(self.present, window, range(start, start + aside), blip_steps)
        kept = self.kept_values([index for segment in segments for index in segment])
        needed = max(self.min_samples, math.ceil(blip_steps * self.min_sustain_fraction))
        if len(kept) < needed:
            return None
        spread_out = most_segments(
            [
                bool(values := self.kept_values(segment)) and self.beyond(median(values), limit)
                for segment in segments
            ]
        )
        if spread_out:
            part = part_steps(blip_steps, self.settings)
            parts = stretches(self.present, window, part)
            # A part of one step is judged by its one sample; longer ones need two.
            quiet = [
                len(values := self.kept_values(stretch)) >= min(2, part)
                and not self.beyond(median(values), limit)
                for stretch in parts
            ]
            spread_out = no_healthy_gap(quiet, part, self.settings)
        p_value = self.p_excess(kept, limit)
        whole = self.p_excess(self.kept_values(range(window.first, window.end)), limit)
        return _Test(window, median(kept), len(kept), p_value, spread_out, limit, aside, whole)

    def plain_test(self, window: Window, limit: _Limit) -> _Test | None:
        kept = self.kept_values(range(window.first, window.end))
        if len(kept) < 2:
            return None
        return _Test(window, median(kept), len(kept), self.p_excess(kept, limit), False, limit)


def _report(
    rule: GaugeRule,
    baseline: _Baseline,
    step: float,
    state: DetectionState,
    test: _Test,
    wording: str,
) -> MetricEvidence:
    ratio = test.value / baseline.median if baseline.median else None
    seconds = test.window.length * step
    unit = f" {rule.unit}" if rule.unit else ""
    shown_ratio = f"×{ratio:.2f}" if ratio is not None else "baseline is zero"
    without = test.set_aside_steps * step
    trimmed = f" without its worst {format_duration(without)}" if without else ""
    summary = (
        f"{rule.display_name} median {test.value:.3g}{unit} "
        f"vs baseline {baseline.median:.3g}{unit} ({shown_ratio}, boundary {test.limit.text}) "
        f"over the last {format_duration(seconds)}{trimmed}, {test.count} samples; {wording}"
    )
    return MetricEvidence(
        metric=rule.name,
        label=rule.display_name,
        state=state,
        summary=summary,
        baseline_value=baseline.median,
        candidate_value=test.value,
        ratio_to_baseline=ratio,
        boundary=test.limit.text,
        limit_value=test.limit.value,
        window_seconds=seconds,
        sample_count=test.count,
        p_value=test.p_value,
        blip_robust=test.spread_out if state == DetectionState.DEGRADED else None,
    )


def judge_gauge(
    *,
    rule: GaugeRule,
    baseline_series: StepSeries,
    baseline_steps: int,
    candidate: StepSeries,
    candidate_steps: int,
    blip_steps: int,
    settings: DetectorSettings,
) -> MetricEvidence:
    """Decide one gauge's state from the baseline and the candidate so far."""
    name = rule.display_name
    known = [v for v in _read(baseline_series, rule.series, baseline_steps) if v is not None]
    baseline = _fit_baseline(known)
    if baseline is None:
        summary = f"{name}: not enough baseline samples to compare with"
        return MetricEvidence(rule.name, name, DetectionState.INCONCLUSIVE, summary)
    values = _read(candidate, rule.series, candidate_steps)
    if all(value is None for value in values):
        summary = f"{name}: no candidate samples since deploy"
        return MetricEvidence(rule.name, name, DetectionState.INCONCLUSIVE, summary)
    judge = _GaugeJudge(rule, baseline, values, settings)
    limits = _limits(baseline, rule)
    step = candidate.step_seconds
    set_aside = format_duration(blip_steps * step)

    tests = [
        test
        for window in candidate_windows(candidate_steps, blip_steps, settings)
        for limit in limits
        if (test := judge.test_window(window, limit, blip_steps)) is not None
    ]
    sustained = [t for t in tests if t.sustained(settings)]
    if sustained:
        test = min(sustained, key=lambda t: t.p_value)
        wording = (
            f"a blip cannot explain it: the excess holds in most {set_aside} stretches of "
            "the rest, with no healthy gap between blips (chance a blip explains it: "
            f"{format_chance(test.p_value)}, chance the whole "
            f"{format_duration(test.window.length * step)} is noise: "
            f"{format_chance(test.whole_p_value)})"
        )
        return _report(rule, baseline, step, DetectionState.DEGRADED, test, wording)
    weakest = min(tests, key=lambda t: t.p_value, default=None)
    if weakest is not None and weakest.p_value <= settings.suspect_significance:
        wording = (
            f"not sustained enough to act on (chance it is noise: {format_chance(weakest.p_value)})"
        )
        return _report(rule, baseline, step, DetectionState.SUSPECT, weakest, wording)

    recent = Window(max(0, candidate_steps - blip_steps), candidate_steps)
    excursions = [t for limit in limits if (t := judge.plain_test(recent, limit)) is not None]
    excursion = min(excursions, key=lambda t: t.p_value, default=None)
    if excursion is not None and excursion.p_value <= settings.significance:
        wording = f"an excursion no longer than a {set_aside} blip so far"
        return _report(rule, baseline, step, DetectionState.SUSPECT, excursion, wording)
    since_deploy = Window(0, candidate_steps)
    overall = [t for limit in limits if (t := judge.plain_test(since_deploy, limit)) is not None]
    if not overall:
        summary = f"{name}: too few samples since deploy to compare"
        return MetricEvidence(rule.name, name, DetectionState.INCONCLUSIVE, summary)
    if excursion is None:
        wording = f"no samples in the last {set_aside}"
        return _report(rule, baseline, step, DetectionState.INCONCLUSIVE, overall[0], wording)
    # The doubt is the chance the truth lies beyond the limit: the p-value of the other side.
    doubt = max(1.0 - test.p_value for test in overall)
    if doubt <= settings.healthy_doubt:
        return _report(
            rule, baseline, step, DetectionState.HEALTHY, overall[0], "within its boundary"
        )
    wording = f"too little evidence to tell yet (chance it is beyond the boundary {doubt:.0%})"
    return _report(rule, baseline, step, DetectionState.INCONCLUSIVE, overall[0], wording)
