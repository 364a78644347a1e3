"""The detector on crafted series: one test per decision it must get right."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from bot.detection.detector import detect
from bot.detection.evidence import Decision, DetectionState
from bot.detection.rules import (
    Boundary,
    Direction,
    GaugeRule,
    MetricRule,
    RatioRule,
    StepSeries,
)
from bot.detection.scenario import load_scenario, replay
from bot.detection.windows import DEFAULT_SETTINGS, set_aside_steps, sustain_steps

DATA = Path(__file__).parent / "data"
STEP = 15.0
BASELINE_STEPS = 240
DEPLOY_AT = 1_767_229_200.0
SUSTAIN = 180.0
ERROR_RULE = RatioRule(name="error_rate", boundary=Boundary(max_ratio_to_baseline=1.5))
LATENCY_RULE = GaugeRule(
    name="latency_p99_seconds",
    boundary=Boundary(max_ratio_to_baseline=1.3),
    series="latency_p99_seconds",
    unit="s",
)

Column = list[float | None]


def _errors(rng: random.Random, requests: Sequence[float | None], rate: float) -> Column:
    return [
        None if r is None else float(sum(rng.random() < rate for _ in range(int(r))))
        for r in requests
    ]


def _traffic(rng: random.Random, steps: int, per_step: float) -> Column:
    return [float(max(0, round(rng.gauss(per_step, per_step**0.5)))) for _ in range(steps)]


def _series(start: float, columns: dict[str, Column]) -> StepSeries:
    return StepSeries(start=start, step_seconds=STEP, columns=columns)


def _baseline(rng: random.Random, per_step: float = 75.0, rate: float = 0.01) -> StepSeries:
    requests = _traffic(rng, BASELINE_STEPS, per_step)
    latency: Column = [0.2 * rng.lognormvariate(0, 0.08) for _ in range(BASELINE_STEPS)]
    columns = {"requests": requests, "errors": _errors(rng, requests, rate)}
    columns["latency_p99_seconds"] = latency
    return _series(DEPLOY_AT - BASELINE_STEPS * STEP, columns)


def _candidate(
    rng: random.Random,
    steps: int,
    rates: Sequence[float],
    *,
    per_step: float = 75.0,
    latency_factor: float = 1.0,
) -> StepSeries:
    requests = _traffic(rng, steps, per_step)
    errors: Column = []
    for index, r in enumerate(requests):
        errors.extend(_errors(rng, [r], rates[index]))
    latency: Column = [0.2 * latency_factor * rng.lognormvariate(0, 0.08) for _ in range(steps)]
    return _series(
        DEPLOY_AT, {"requests": requests, "errors": errors, "latency_p99_seconds": latency}
    )


def _judge(
    baseline: StepSeries,
    candidate: StepSeries,
    rules: Sequence[MetricRule] = (ERROR_RULE,),
    *,
    minutes: float,
) -> Decision:
    return detect(
        baseline=baseline,
        candidate=candidate,
        rules=rules,
        now=DEPLOY_AT + minutes * 60,
        min_sustain_seconds=SUSTAIN,
    )


def test_a_healthy_candidate_is_healthy() -> None:
    rng = random.Random(1)
    candidate = _candidate(rng, 240, [0.01] * 240)
    decision = _judge(_baseline(rng), candidate, (ERROR_RULE, LATENCY_RULE), minutes=60)
    assert decision.state == DetectionState.HEALTHY
    assert "within its boundary" in decision.explain()


def test_a_sustained_fourfold_error_rate_is_degraded_with_checkable_numbers() -> None:
    rng = random.Random(2)
    candidate = _candidate(rng, 80, [0.04] * 80)
    decision = _judge(_baseline(rng), candidate, minutes=15)
    assert decision.state == DetectionState.DEGRADED
    evidence = decision.metrics[0]
    assert evidence.ratio_to_baseline is not None and evidence.ratio_to_baseline > 2.5
    assert evidence.boundary == "×1.5"
    assert evidence.p_value is not None and evidence.p_value < 1e-3
    text = decision.explain()
    assert "vs baseline" in text and "boundary ×1.5" in text and "→ degraded" in text


def test_an_excess_shorter_than_the_sustain_time_is_only_suspect() -> None:
    rng = random.Random(3)
    # Healthy for 20 minutes, then ten times the error rate for the last two minutes.
    rates = [0.01] * 72 + [0.10] * 8
    decision = _judge(_baseline(rng), _candidate(rng, 80, rates), minutes=20)
    assert decision.state == DetectionState.SUSPECT


def test_a_blip_that_ended_is_ignored() -> None:
    rng = random.Random(4)
    rates = [0.01] * 40 + [0.10] * 8 + [0.01] * 72
    decision = _judge(_baseline(rng), _candidate(rng, 120, rates), minutes=30)
    assert decision.state != DetectionState.DEGRADED


def test_two_blips_with_a_healthy_gap_between_are_not_degraded() -> None:
    rng = random.Random(13)
    baseline = _baseline(rng)
    # Two 2-minute blips ten times the error rate, 2 minutes apart: no stretch longer than
    # the sustain time is beyond the boundary, at any moment of the cluster.
    rates = [0.01] * 40 + [0.10] * 8 + [0.01] * 8 + [0.10] * 8 + [0.01] * 40
    candidate = _candidate(rng, len(rates), rates)
    for steps in range(48, len(rates) + 1):
        decision = _judge(baseline, candidate, minutes=steps * STEP / 60)
        assert decision.state != DetectionState.DEGRADED, steps


def test_regular_blips_at_high_traffic_stay_uneven_however_long_the_window() -> None:
    rng = random.Random(15)
    baseline = _baseline(rng, per_step=750.0)
    # A one-minute blip every four minutes for two hours: on average far over the boundary,
    # but never beyond it for longer than the sustain time, and with healthy gaps throughout.
    rates = ([0.01] * 12 + [0.10] * 4) * 30
    candidate = _candidate(rng, len(rates), rates, per_step=750.0)
    for minutes in range(20, 121, 10):
        decision = _judge(baseline, candidate, minutes=minutes)
        assert decision.state != DetectionState.DEGRADED, minutes


def test_a_strong_excess_is_degraded_soon_after_the_sustain_time() -> None:
    rng = random.Random(14)
    baseline = _baseline(rng)
    # Healthy for half an hour, then four times the error rate.
    rates = [0.01] * 120 + [0.04] * 40
    candidate = _candidate(rng, len(rates), rates, per_step=750.0)
    assert _judge(baseline, candidate, minutes=33).state != DetectionState.DEGRADED
    decision = _judge(baseline, candidate, minutes=34)
    assert decision.state == DetectionState.DEGRADED
    assert decision.metrics[0].window_seconds is not None
    assert decision.metrics[0].window_seconds < 2 * SUSTAIN
    assert "chance a blip explains it" in decision.explain()


def test_no_candidate_data_is_inconclusive_not_degraded() -> None:
    rng = random.Random(5)
    missing: Column = [None] * 40
    candidate = _series(DEPLOY_AT, {"requests": missing, "errors": missing})
    decision = _judge(_baseline(rng), candidate, minutes=10)
    assert decision.state == DetectionState.INCONCLUSIVE
    assert "no candidate traffic" in decision.explain()


def test_zero_traffic_is_inconclusive_not_degraded() -> None:
    rng = random.Random(6)
    zeros: Column = [0.0] * 40
    candidate = _series(DEPLOY_AT, {"requests": zeros, "errors": zeros})
    decision = _judge(_baseline(rng), candidate, minutes=10)
    assert decision.state == DetectionState.INCONCLUSIVE


def test_a_negative_count_is_missing_data_not_a_count() -> None:
    # A numerator such as `increase(a) - increase(b)` can dip below zero; such a step says
    # nothing, exactly as a scrape gap says nothing.
    rng = random.Random(8)
    baseline, candidate = _baseline(rng), _candidate(rng, 80, [0.04] * 80)
    errors, requests = list(candidate.column("errors")), list(candidate.column("requests"))
    errors[70] = -5.0
    glitched = _series(DEPLOY_AT, {"requests": requests, "errors": errors})
    gap = _series(
        DEPLOY_AT,
        {
            "requests": [*requests[:70], None, *requests[71:]],
            "errors": [*errors[:70], None, *errors[71:]],
        },
    )

    judged, expected = _judge(baseline, glitched, minutes=20), _judge(baseline, gap, minutes=20)

    assert judged.state == expected.state == DetectionState.DEGRADED
    assert judged.explain() == expected.explain()


def test_very_low_traffic_reports_inconclusive_with_numbers() -> None:
    rng = random.Random(7)
    baseline = _baseline(rng, per_step=2.0, rate=0.01)
    candidate = _candidate(rng, 20, [0.015] * 20, per_step=2.0)
    decision = _judge(baseline, candidate, minutes=5)
    assert decision.state == DetectionState.INCONCLUSIVE
    assert "requests" in decision.explain()


def test_a_baseline_too_small_to_ever_tell_says_so_and_what_would_help() -> None:
    rng = random.Random(16)
    # An hour of half a request per step: a handful of baseline errors. The candidate runs at
    # 2.5 % for four hours, beyond ×1.5 of the true 1 %, but no amount of its own traffic
    # can show that against so few baseline errors.
    baseline = _baseline(rng, per_step=2.0, rate=0.01)
    candidate = _candidate(rng, 960, [0.025] * 960, per_step=2.0)
    decision = _judge(baseline, candidate, minutes=240)
    assert decision.state in {DetectionState.SUSPECT, DetectionState.INCONCLUSIVE}
    text = decision.explain()
    assert "errors cap the evidence: even endless traffic at" in text
    assert "a longer baseline would lift" in text


def test_a_baseline_with_enough_errors_claims_no_cap() -> None:
    rng = random.Random(17)
    candidate = _candidate(rng, 40, [0.02] * 40)
    decision = _judge(_baseline(rng), candidate, minutes=10)
    assert decision.state != DetectionState.HEALTHY
    assert "cap the evidence" not in decision.explain()


def test_doubled_latency_is_degraded() -> None:
    rng = random.Random(8)
    candidate = _candidate(rng, 60, [0.01] * 60, latency_factor=2.0)
    decision = _judge(_baseline(rng), candidate, (ERROR_RULE, LATENCY_RULE), minutes=15)
    assert decision.state == DetectionState.DEGRADED
    assert [e.metric for e in decision.deciding_metrics] == ["latency_p99_seconds"]


def _minute_latency(rng: random.Random, start: float, factors: Sequence[float]) -> StepSeries:
    values: Column = [0.2 * factor * rng.lognormvariate(0, 0.08) for factor in factors]
    return StepSeries(start=start, step_seconds=60.0, columns={"latency_p99_seconds": values})


def _minute_verdict(baseline: StepSeries, candidate: StepSeries, minutes: int) -> DetectionState:
    decision = detect(
        baseline=baseline,
        candidate=candidate,
        rules=(LATENCY_RULE,),
        now=DEPLOY_AT + minutes * 60,
        min_sustain_seconds=SUSTAIN,
    )
    return decision.state


def test_doubled_latency_at_one_minute_steps_is_degraded_after_seven_minutes() -> None:
    rng = random.Random(18)
    baseline = _minute_latency(rng, DEPLOY_AT - 3600, [1.0] * 60)
    candidate = _minute_latency(rng, DEPLOY_AT, [2.0] * 30)
    # A blip under three minutes can touch four one-minute steps, which are set aside; the
    # median of the rest needs three samples.
    assert _minute_verdict(baseline, candidate, 6) != DetectionState.DEGRADED
    assert _minute_verdict(baseline, candidate, 7) == DetectionState.DEGRADED


def test_a_blip_touches_one_step_more_than_it_fills_only_coarse_steps_set_it_aside() -> None:
    # Three minutes of sustain: twelve 15 s steps, six 30 s steps, three one-minute steps.
    assert set_aside_steps(sustain_steps(SUSTAIN, 15.0), DEFAULT_SETTINGS) == 12
    assert set_aside_steps(sustain_steps(SUSTAIN, 30.0), DEFAULT_SETTINGS) == 7
    assert set_aside_steps(sustain_steps(SUSTAIN, 60.0), DEFAULT_SETTINGS) == 4


def test_a_170s_blip_over_four_one_minute_steps_proposes_nothing() -> None:
    # Recorded: 1.5 requests/s, 2% errors, a ×10 blip from 2,145 to 2,315 s after the deploy,
    # summed to minutes. Its first and last minutes hold 15 s and 35 s of it; with three
    # minutes set aside, the one left looked like a sustained excess at 2,400 s.
    scenario = load_scenario(DATA / "blip-170s-at-minute-steps.json")

    result = replay(scenario)

    assert result.proposed_at is None, result.decision.explain()


def test_latency_blips_with_one_minute_gaps_at_one_minute_steps_are_not_degraded() -> None:
    rng = random.Random(19)
    baseline = _minute_latency(rng, DEPLOY_AT - 3600, [1.0] * 60)
    # Two-minute blips of 2.5 times the latency, each followed by a healthy minute.
    factors = [1.0] * 10 + ([2.5, 2.5, 1.0] * 6) + [1.0] * 20
    candidate = _minute_latency(rng, DEPLOY_AT, factors)
    for minutes in range(6, len(factors) + 1):
        assert _minute_verdict(baseline, candidate, minutes) != DetectionState.DEGRADED, minutes


def test_a_lower_is_worse_gauge_degrades_when_it_drops() -> None:
    rng = random.Random(9)
    rule = GaugeRule(
        name="mean_confidence",
        boundary=Boundary(min_ratio_to_baseline=0.9),
        series="mean_confidence",
        direction=Direction.LOWER_IS_WORSE,
    )
    base: Column = [0.8 + rng.gauss(0, 0.01) for _ in range(BASELINE_STEPS)]
    dropped: Column = [0.6 + rng.gauss(0, 0.01) for _ in range(60)]
    risen: Column = [0.95 + rng.gauss(0, 0.01) for _ in range(60)]
    baseline = _series(DEPLOY_AT - BASELINE_STEPS * STEP, {"mean_confidence": base})
    worse = _judge(baseline, _series(DEPLOY_AT, {"mean_confidence": dropped}), (rule,), minutes=15)
    better = _judge(baseline, _series(DEPLOY_AT, {"mean_confidence": risen}), (rule,), minutes=15)
    assert worse.state == DetectionState.DEGRADED
    assert better.state == DetectionState.HEALTHY


def test_an_absolute_maximum_applies_even_when_the_ratio_is_fine() -> None:
    rng = random.Random(10)
    rule = RatioRule(
        name="error_rate", boundary=Boundary(max_ratio_to_baseline=3.0, max_value=0.02)
    )
    baseline = _baseline(rng, rate=0.03)
    candidate = _candidate(rng, 80, [0.035] * 80)
    decision = _judge(baseline, candidate, (rule,), minutes=20)
    assert decision.state == DetectionState.DEGRADED
    assert decision.metrics[0].boundary == "max 2.0%"


def test_future_samples_never_change_a_past_decision() -> None:
    rng = random.Random(11)
    baseline = _baseline(rng)
    full = _candidate(rng, 200, [0.01] * 60 + [0.08] * 140)
    for minutes in (5, 12, 16, 20):
        steps = int(minutes * 60 / STEP)
        truncated = _series(DEPLOY_AT, {k: list(v[:steps]) for k, v in full.columns.items()})
        past = _judge(baseline, truncated, (ERROR_RULE, LATENCY_RULE), minutes=minutes)
        now = _judge(baseline, full, (ERROR_RULE, LATENCY_RULE), minutes=minutes)
        assert past == now


def test_a_metric_without_baseline_data_is_inconclusive() -> None:
    rng = random.Random(12)
    empty: Column = [None] * BASELINE_STEPS
    baseline = _series(DEPLOY_AT - BASELINE_STEPS * STEP, {"requests": empty, "errors": empty})
    decision = _judge(baseline, _candidate(rng, 40, [0.05] * 40), minutes=10)
    assert decision.state == DetectionState.INCONCLUSIVE
    assert "no baseline traffic" in decision.explain()


def test_blips_minutes_apart_at_two_requests_a_second_propose_nothing() -> None:
    # Generated by a reviewer: 2 requests/s, 0.5% errors, ×20 and ×10 blips of 158 s and
    # 168 s fifteen minutes apart (then two more). One-minute parts held under one error at
    # the limit, too few to see the healthy minutes between the blips, and an 18-minute
    # window proposed at 6,915 s; stretches long enough to hold an error see the gap.
    scenario = load_scenario(DATA / "blip-cluster-2rps.json")

    result = replay(scenario)

    assert result.proposed_at is None, result.decision.explain()
