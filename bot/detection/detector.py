"""The degradation detector: pure, deterministic and causal.

It answers one question at one moment: given the safe version's samples and the candidate's
samples up to now, is the candidate beyond its rollback boundaries, for longer than a blip,
with enough evidence to act? Every metric is judged over several windows ending now (from a
little longer than a blip up to everything since deploy), and an excess only counts when it
survives setting aside the worst blip-length stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bot.detection.counts import judge_ratio
from bot.detection.evidence import Decision, MetricEvidence, most_severe
from bot.detection.gauges import judge_gauge
from bot.detection.rules import GaugeRule, MetricRule, StepSeries
from bot.detection.windows import DEFAULT_SETTINGS, DetectorSettings, sustain_steps


def detect(
    *,
    baseline: StepSeries,
    candidate: StepSeries,
    rules: Sequence[MetricRule],
    now: float,
    min_sustain_seconds: float,
    settings: DetectorSettings = DEFAULT_SETTINGS,
) -> Decision:
    """Judge the candidate at ``now`` using only samples complete by then.

    ``candidate`` starts at the deploy; ``baseline`` holds the safe version's samples before it.
    """
    candidate_steps = candidate.steps_ending_by(now)
    baseline_steps = baseline.steps_ending_by(min(now, candidate.start))
    blip_steps = sustain_steps(min_sustain_seconds, candidate.step_seconds)
    evidence: list[MetricEvidence] = []
    for rule in rules:
        if rule.boundary.is_empty():
            continue
        judge = partial(
            judge_gauge if isinstance(rule, GaugeRule) else judge_ratio,
            baseline_series=baseline,
            baseline_steps=baseline_steps,
            candidate=candidate,
            candidate_steps=candidate_steps,
            blip_steps=blip_steps,
            settings=settings,
        )
        evidence.append(judge(rule=rule))
    state = most_severe([item.state for item in evidence])
    return Decision(state=state, evaluated_at=now, metrics=tuple(evidence))
